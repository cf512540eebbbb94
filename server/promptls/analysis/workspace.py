"""The workspace folders on disk, confined: what exists, what may be read, and nothing outside.

Every path the analysis touches goes through `Workspace`. A path outside the folders (lexically,
or through a symlink) is never opened; neither is anything but a regular file (FIFOs and devices
would block or never end). Open editor buffers (`overlay`) win over the disk.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from promptls.analysis.kinds import kind_of, matches


class Status(enum.Enum):
    """What a path is, as far as promptls may know without reading it."""

    FILE = "file"
    DIRECTORY = "directory"
    MISSING = "missing"
    OUTSIDE = "outside"
    """Outside every workspace folder, itself or through a symlink."""
    LOOP = "loop"
    """A symlink loop."""
    SPECIAL = "special"
    """A FIFO, socket or device: never opened."""


class OutsideWorkspace(PermissionError):
    """Raised on an attempt to read a path that is not a regular file inside the workspace."""


class FileTooLarge(OSError):
    """Raised when a file is larger than the caller's limit: it is not read (not all of it)."""


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _case_sensitive(folder: str) -> bool:
    """Whether names in `folder` are case-sensitive (the folder's own name, case swapped, is
    then another path, which does not exist or is another file)."""
    parent, name = os.path.split(folder)
    swapped = name.swapcase()
    if swapped == name:
        return False  # no letters to tell by: assume not
    try:
        other = os.stat(os.path.join(parent, swapped))
    except OSError:
        return True
    return not os.path.samestat(other, os.stat(folder))


class Workspace:
    """One or more workspace folders, with a cache of what the last scan saw."""

    def __init__(
        self,
        folders: Sequence[str | Path],
        kinds: Mapping[str, Sequence[str]],
        exclude: Sequence[str] = (),
    ) -> None:
        self.folders = tuple(os.path.realpath(os.fspath(f)) for f in folders)
        self._prefixes = tuple(f.rstrip(os.sep) + os.sep for f in self.folders)
        """What every path inside a folder starts with (`contains`: one `str.startswith`)."""
        self.kinds = kinds
        self.exclude = tuple(exclude)
        self.overlay: dict[str, str] = {}
        self._status: dict[str, Status] = {}
        self._scanned: set[str] = set()
        """Folders whose every entry the last scan recorded: what is not there is missing."""
        self._relative: dict[str, str] = {}
        self._kinds: dict[str, str] = {}
        self.generation = 0
        """Bumped whenever the known set of files may have changed."""

    # -- where things are ---------------------------------------------------------------------
    def folder_of(self, path: str) -> str | None:
        """The (innermost) workspace folder holding the absolute, normalised `path`."""
        best: str | None = None
        for folder in self.folders:
            if _inside(path, folder) and (best is None or len(folder) > len(best)):
                best = folder
        return best

    def contains(self, path: str) -> bool:
        """Whether the normalised absolute `path` lies lexically inside a workspace folder."""
        return path.startswith(self._prefixes) or path in self.folders

    def relative(self, path: str) -> str:
        """`path` relative to its workspace folder, with forward slashes."""
        known = self._relative.get(path)
        if known is not None:
            return known
        folder = self.folder_of(path)
        if folder is None:
            return Path(path).as_posix()
        # (Lexically inside `folder`, both normalised: what follows its prefix, as `relpath`
        # would say it, without its system calls and normalising.)
        known = path[len(folder.rstrip(os.sep)) + 1 :] if path != folder else ""
        if os.sep != "/":
            known = known.replace(os.sep, "/")
        if len(self._relative) > 100_000:
            self._relative.clear()
        self._relative[path] = known
        return known

    def kind(self, path: str) -> str:
        """The kind of the file at `path` (by its path relative to its folder)."""
        known = self._kinds.get(path)
        if known is None:
            if len(self._kinds) > 100_000:
                self._kinds.clear()
            known = self._kinds[path] = kind_of(self.relative(path), self.kinds)
        return known

    def excluded(self, path: str) -> bool:
        """Whether `path` matches an `exclude` glob."""
        return bool(self.exclude) and matches(self.relative(path), self.exclude)

    # -- what exists ----------------------------------------------------------------------------
    def scan(self) -> list[str]:
        """Walk every folder (not following symlinked folders); return the files, cache statuses."""
        files: list[str] = []
        self.generation += 1
        for folder in self.folders:
            self._status[folder] = Status.DIRECTORY
            # On a case-insensitive file system `Foo.md` exists when the scan saw `foo.md`: the
            # scan's listing then says nothing about what is missing.
            listed = _case_sensitive(folder)
            stack = [folder]
            while stack:
                current = stack.pop()
                try:
                    entries = list(os.scandir(current))
                except OSError:
                    continue
                complete = True
                for entry in entries:
                    path = entry.path
                    try:
                        if entry.is_symlink():
                            status = self._probe(path)
                        elif entry.is_dir(follow_symlinks=False):
                            status = Status.DIRECTORY
                        elif entry.is_file(follow_symlinks=False):
                            status = Status.FILE
                        else:
                            status = Status.SPECIAL
                    except OSError:
                        complete = False
                        continue
                    self._status[path] = status
                    if status is Status.DIRECTORY and not entry.is_symlink():
                        if not self.excluded(path + "/"):
                            stack.append(path)
                    elif status is Status.FILE and not self.excluded(path):
                        files.append(path)
                if complete and listed:
                    self._scanned.add(current)
        files.sort()
        return files

    def status(self, path: str) -> Status:
        """What `path` (absolute, normalised) is; never opens it."""
        if path in self.overlay:
            return Status.FILE
        if not self.contains(path):
            return Status.OUTSIDE
        cached = self._status.get(path)
        if cached is None:
            cached = Status.MISSING if self._known_missing(path) else self._probe(path)
            self._status[path] = cached
            if cached is Status.FILE:
                self.generation += 1
        return cached

    def _known_missing(self, path: str) -> bool:
        """Whether `path` certainly does not exist, without a system call: its folder was
        listed by the scan and it was not there, or its folder is itself missing (or a file)."""
        parent = os.path.dirname(path)
        if parent == path or not self.contains(parent):
            return False
        if parent in self._scanned:
            return True
        return self.status(parent) in (Status.MISSING, Status.FILE)

    def _probe(self, path: str) -> Status:
        try:
            real = os.path.realpath(path)
            if not self.contains(real):
                return Status.OUTSIDE
            info = os.stat(path)
        except OSError as exc:
            return Status.LOOP if exc.errno == errno.ELOOP else Status.MISSING
        except ValueError:
            # A NUL (`%00`) or a lone surrogate in a reference: no such file can exist.
            return Status.MISSING
        if stat.S_ISREG(info.st_mode):
            return Status.FILE
        if stat.S_ISDIR(info.st_mode):
            return Status.DIRECTORY
        return Status.SPECIAL

    def forget(self, paths: Iterable[str] = ()) -> None:
        """Drop cached statuses (of `paths`, or all): the disk changed."""
        self.generation += 1
        if paths:
            for path in paths:
                self._status.pop(path, None)
                # Its folder may hold new entries now (and folders once missing may exist).
                folder = os.path.dirname(path)
                while self._status.get(folder) is Status.MISSING:
                    self._status.pop(folder)
                    folder = os.path.dirname(folder)
                self._scanned.discard(folder)
        else:
            self._status.clear()
            self._scanned.clear()

    def known_files(self) -> Iterator[str]:
        """Every file seen by the last scan or opened in the editor."""
        for path, status in self._status.items():
            if status is Status.FILE:
                yield path
        yield from (p for p in self.overlay if p not in self._status)

    # -- reading --------------------------------------------------------------------------------
    def read_text(self, path: str) -> str:
        """The text of `path`: the editor's buffer if open, else the file decoded as UTF-8."""
        return self.read_stamped(path)[0]

    def read_stamped(self, path: str) -> tuple[str, tuple[object, ...]]:
        """The text of `path` and its content version: `("buffer", hash)` for an editor
        buffer, `("disk", mtime_ns, size)` for a file."""
        buffer = self.overlay.get(path)
        if buffer is not None:
            return buffer, ("buffer", hash(buffer), len(buffer))
        data, info = self._read(path)
        return data.decode("utf-8", errors="replace"), ("disk", info.st_mtime_ns, info.st_size)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The bytes of a regular file inside the workspace; raises OutsideWorkspace otherwise,
        and FileTooLarge when it has more than `limit` bytes."""
        return self._read(path, limit)[0]

    def _read(self, path: str, limit: int | None = None) -> tuple[bytes, os.stat_result]:
        status = self.status(path)
        if status is not Status.FILE:
            raise OutsideWorkspace(f"{path}: {status.value}, not read")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OutsideWorkspace(f"{path}: not a regular file, not read")
            if limit is not None and info.st_size > limit:
                raise FileTooLarge(f"{path}: {info.st_size:,} bytes, over the {limit:,} limit")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size > limit:  # it grew since fstat
                    raise FileTooLarge(f"{path}: over the {limit:,}-byte limit")
            return b"".join(chunks), info
        finally:
            os.close(fd)
