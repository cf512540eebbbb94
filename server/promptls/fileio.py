"""Writing files without ever losing a byte: temporary file, fsync, rename, mode kept, and a
refusal when the file changed since it was read. A symlink is written through: its target is
replaced, the link stays."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass


class ChangedOnDisk(RuntimeError):
    """The file changed between reading it and writing it: nothing was written."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A file as it was read: its bytes' digest, size and modification time."""

    path: str
    digest: bytes
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str, data: bytes) -> Snapshot:
        """A snapshot of `data`, just read from `path`."""
        info = os.stat(path)
        return cls(path, hashlib.sha256(data).digest(), info.st_size, info.st_mtime_ns)


def read_snapshot(path: str) -> tuple[bytes, Snapshot]:
    """The bytes of `path` and a snapshot to check against before writing."""
    with open(path, "rb") as handle:
        data = handle.read()
    return data, Snapshot.of(path, data)


def atomic_write(snapshot: Snapshot, data: bytes) -> None:
    """Replace the file with `data` atomically, keeping its mode; refuse (ChangedOnDisk) when it
    is no longer what `snapshot` saw. A crash leaves either the old or the new file, whole.
    When the path is a symlink, its target (resolved now) is replaced and the link kept."""
    path = os.path.realpath(snapshot.path)
    info = os.stat(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".promptls-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, stat.S_IMODE(info.st_mode))
        with open(path, "rb") as current:
            now = current.read()
        after = os.stat(path)
        if (
            hashlib.sha256(now).digest() != snapshot.digest
            or after.st_size != snapshot.size
            or after.st_mtime_ns != snapshot.mtime_ns
        ):
            raise ChangedOnDisk(f"{path} changed since it was read; not written")
        os.replace(temp, path)
        temp = ""
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if temp and os.path.exists(temp):
            os.unlink(temp)
