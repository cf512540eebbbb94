"""The workspace index: every prompt file analysed once, references resolved, load sets and costs.

Built for incremental updates: `update(path)` re-reads one file (the editor's buffer wins over the
disk), re-counts only its changed chunks, and drops exactly the cached load sets and graph findings
that can have changed. The CLI and the language server share it.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import gc
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, count, pairwise
from typing import TYPE_CHECKING

from promptls.analysis.cache import Cost, CostCache, FileKey, SizedLRU, Stamp, SyncLRU
from promptls.analysis.document import (
    STRIPPED_FRONTMATTER,
    Document,
    PackedDocument,
    RegionCache,
    is_xml_path,
    parse_document,
    parse_packed,
    unpack_document,
)
from promptls.analysis.duplicates import Block, blocks, find_duplicates
from promptls.analysis.findings import Finding, Related, Severity
from promptls.analysis.incremental import (
    TextEdit,
    region_references,
    reparse_region,
    shift_document,
    text_edit,
)
from promptls.analysis.processes import ForkedWorkers
from promptls.analysis.references import Reference, Resolution, Resolver, extract_references
from promptls.analysis.rules import (
    apply_overrides,
    budget_finding,
    cap_findings,
    file_range,
    frontmatter_findings,
    reference_findings,
    xml_findings,
)
from promptls.analysis.text import first_line_break, over_utf8_size, utf8_size
from promptls.analysis.tokens import (
    TokenCounter,
    calibrate,
    is_safe_break,
    next_safe_break,
    split_chunks,
)
from promptls.analysis.workspace import OutsideWorkspace, Workspace
from promptls.analysis.xml import PackedElements, resume_from
from promptls.config import Settings

if TYPE_CHECKING:  # compress.py is imported when first needed (it is slow to import)
    from promptls.analysis.compress import CompressionPool, Level, RegionEdit, RegionResults

#: Kinds Claude Code loads on their own: their load cost is checked against the load budget.
ENTRY_KINDS = frozenset({"memory", "command", "agent", "skill", "output-style"})
#: Kinds whose `<context_budget>` is an estimate of their own load cost (in PROJECT_CONFIG.xml it
#: is a framework setting, not an estimate).
BUDGET_DECLARING_KINDS = ENTRY_KINDS | {"module", "component"}
_BATCHES = count()
"""Numbers the batches of `analyse_many`, whose jobs go to the worker processes as
(batch, path)."""


@dataclass(frozen=True, slots=True)
class FileAnalysis:
    """One file, analysed: its document, counts, resolved references and its own findings."""

    path: str
    rel: str
    kind: str
    doc: Document
    raw_tokens: int
    tokens: int
    resolutions: tuple[Resolution, ...]
    findings: tuple[Finding, ...]
    """Findings that depend only on this file and what exists (not on other files' contents)."""
    version: int | None = None
    elapsed: float = 0.0
    """Seconds spent reading, parsing, counting and resolving it."""
    stamp: Stamp = ()
    """The content version it was made from (see `cache.Stamp`)."""

    @property
    def edges(self) -> tuple[str, ...]:
        """Files this one loads, in reference order, each once."""
        return tuple(dict.fromkeys(r.path for r in self.resolutions if r.loads and r.path))


@dataclass(frozen=True, slots=True)
class LoadSet:
    """A file plus everything it loads, transitively, each file once (breadth-first order)."""

    root: str
    files: tuple[str, ...]
    cut: tuple[tuple[str, Reference, int], ...] = ()
    """(file, @import reference, hops) not followed because of the import depth limit."""


@dataclass(slots=True)
class _Graph:
    cycles: dict[str, list[Finding]] = field(default_factory=dict)
    built: bool = False


_CHECKS_MIN, _CHECKS_MAX = 4_000_000, 16_000_000
"""Bounds of the XML-check cache, in characters of region text."""
#: The smallest chunk an edited file is cut into for counting again (`_recount`): a keystroke
#: encodes the chunk it lies in, a few lines (its cost is the encoder's first lookups after a
#: pause, which grow with the chunk's tokens); the files' counts are unchanged, cut anywhere.
_RECOUNT_CHUNK = 128

_PAUSE_LOCK = threading.Lock()
_pauses = [0, False]
"""How many builds have the cyclic garbage collector paused, and whether it was on before."""


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while an index is built (and back as it was after the
    last of concurrent builds): the objects a build makes are kept, not garbage, yet each
    collection of the older generations walks all of them made so far (in a server's cold index
    of a million tokens, 120 collections and 0.1 s). Reference counting still frees the rest."""
    with _PAUSE_LOCK:
        if _pauses[0] == 0:
            _pauses[1] = gc.isenabled()
            gc.disable()
        _pauses[0] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses[0] -= 1
            if _pauses[0] == 0 and _pauses[1]:
                gc.enable()


class WorkspaceIndex:
    """All prompt files of a workspace, and the files they load."""

    def __init__(
        self,
        workspace: Workspace,
        settings: Settings,
        counter: TokenCounter | None = None,
        workers: ForkedWorkers | None = None,
    ) -> None:
        self.workspace = workspace
        self.workers = workers
        """Worker processes parsing the files `analyse_many` reads (`parse_on_worker`): the
        language server's, forked when it started."""
        self.settings = settings
        self.counter = counter or TokenCounter(settings.encoding)
        self.resolver = Resolver(workspace, settings.search_roots, settings.loadable_extensions)
        self.files: dict[str, FileAnalysis] = {}
        self.errors: dict[str, str] = {}
        """Files that could not be read, with why."""
        self._load_sets: dict[str, LoadSet] = {}
        self._graph = _Graph()
        self.costs = CostCache()
        """Load costs per content version (hit, miss and eviction counters in its stats)."""
        self._blocks: dict[str, tuple[FileAnalysis, list[Block]]] = {}
        self._dups: dict[str, dict[str, list[Finding]]] = {}
        self._compressions: dict[str, tuple[FileAnalysis, list[RegionEdit]]] = {}
        self._compressing: CompressionPool | None = None
        """Worker processes computing compressions during `index` (the command line)."""
        self._settling: bool | None = None
        """While `changes()` runs: whether files appeared or vanished meanwhile (the references
        are then resolved again, and what they name pulled in, once at its end)."""
        self._region_compressions: RegionResults = SyncLRU(maxsize=8_000_000, sizeof=_region_chars)
        """Compressions by region (at most 8 M characters of region text): an edit compresses
        again only the region it touched."""
        self._dependents: dict[str, frozenset[str]] = {}
        """`dependents` by path, while no load set changes."""
        self._memories: list[str] | None = None
        """The indexed files of kind "memory" (None: to list again, a file came or went)."""
        self._chunk_bounds: dict[tuple[str, str], tuple[str, list[int], int, int]] = {}
        """Open buffers being edited, by (path, "file" or "loaded"): the text last counted (the
        file's, or what of it loads), its chunk bounds, the chunk last edited and its count."""
        self._loaded_counts: dict[str, tuple[str, str, int]] = {}
        """path -> (a file's text, what of it loads, that count): for a memory file with block
        comments being edited (see `_recount_loaded`)."""
        self._region_checks: RegionCache = SyncLRU(maxsize=_CHECKS_MAX, sizeof=_region_chars)
        """XML checks by region text (at most 16 M characters of it, fewer once the workspace is
        indexed: see `_size_region_checks`): an edit re-checks only the region it touched."""
        self._lock = threading.RLock()
        self.edits = {"shifted": 0, "region": 0, "parsed": 0}
        """Edits of open buffers by how they were analysed: the previous analysis shifted, one
        XML region checked again (the rest shifted), or the file parsed again."""

    # -- building --------------------------------------------------------------------------------
    def prompt_files(self, paths: Iterable[str]) -> list[str]:
        """The paths among `paths` whose kind is not `other`."""
        return [p for p in paths if self.workspace.kind(p) != "other"]

    def index(
        self,
        threads: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        *,
        processes: int = 1,
    ) -> None:
        """Scan the workspace folders and analyse every prompt file and every file they load.

        With `processes` > 1 (the command line, which reports every file's findings), the
        compressions behind `xml-compressible` (unless it is turned off) are computed at the
        same time, on that many worker processes, each file as soon as it is read (see
        `compress.CompressionPool`);
        `compressions` and `prepare_compressions` take them from there. The workers must be
        started before any thread: a process running other threads is never forked, and then
        the compressions are computed here when asked for."""
        on_read: Callable[[str, str], None] | None = None
        if processes > 1 and self.compression_hints:
            from promptls.analysis.compress import CompressionPool

            pool = CompressionPool(
                processes,
                self.counter.name,
                self._compression_level(),
                self.settings.compression.remove_comments,
            )
            if pool.running:
                self._compressing = pool
                on_read = self._send_to_compress
        try:
            with _collector_paused():
                paths = self.prompt_files(self.workspace.scan())
                self.analyse_many(paths, threads=threads, progress=progress, on_read=on_read)
                self._pull_referenced(threads, on_read)
        except BaseException:
            self._stop_compressing()
            raise
        if self._compressing is not None:
            self._compressing.done_submitting()
        self._size_region_checks()

    def _size_region_checks(self) -> None:
        """Bound the XML-check cache by twice the workspace's XML (between 4 and 16 M
        characters): room for every region and as much again for the versions an editor makes.
        A cached character of region text holds about 12 bytes of checks: filled to 16 M by
        4,000 random edits in a framework with 1.6 M characters of XML, the server sat at
        306 MB, where 4 M holds it at 187 MB."""
        xml = sum(r.end - r.start for fa in list(self.files.values()) for r in fa.doc.regions)
        wanted = min(_CHECKS_MAX, max(_CHECKS_MIN, 2 * xml))
        cache = self._region_checks
        if isinstance(cache, SizedLRU) and wanted < cache.maxsize:
            self._region_checks = cache.resized(wanted)

    def _stop_compressing(self) -> None:
        if self._compressing is not None:
            self._compressing.close()
            self._compressing = None

    def _send_to_compress(self, path: str, text: str) -> None:
        pool = self._compressing
        # Only what may hold an XML region, and what will not be reduced.
        wanted = "<" in text and not over_utf8_size(text, self.settings.max_file_bytes)
        if pool is not None and wanted:
            pool.submit(path, text, self.workspace.kind(path), is_xml_path(path))

    def _pull_referenced(
        self, threads: int | None, on_read: Callable[[str, str], None] | None = None
    ) -> None:
        while True:
            wanted = {
                r.path
                for fa in list(self.files.values())
                for r in fa.resolutions
                if r.path and self._to_pull(r)
            }
            if not wanted:
                return
            self.analyse_many(sorted(wanted), threads=threads, on_read=on_read)

    def _to_pull(self, r: Resolution) -> bool:
        """Whether `r` names a file to analyse with the workspace that is not analysed yet: what a
        file loads, and what a `{project-root}/` path names (not loaded with it, but read when a
        step or a menu item asks, so it must exist and parse all the same)."""
        if not r.path or r.path in self.files or r.path in self.errors:
            return False
        return r.loads or (
            r.ref.form == "project-root"
            and r.status == "resolved"
            and self.resolver.loadable_file(r.path)
        )

    def analyse_many(
        self,
        paths: Sequence[str],
        threads: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_read: Callable[[str, str], None] | None = None,
    ) -> None:
        """Analyse `paths`: counting runs on worker threads (tiktoken releases the GIL) while
        this thread parses (or the worker processes, when there are, and this thread resolves).
        `on_read(path, text)` is called for each file read, before it is analysed."""
        total = len(paths)
        checkers = self.workers if self.workers is not None and self.workers.running else None
        batch = next(_BATCHES)
        # Every file read first, then the work handed out: reading while the counting threads
        # run, each system call waits for the interpreter back (a tenth of a second for 600
        # files, against a hundredth alone).
        read: list[tuple[str, str, Stamp, float]] = []
        for path in paths:
            started = time.perf_counter()
            try:
                text, stamp = self.workspace.read_stamped(path)
            except (OSError, OutsideWorkspace) as exc:
                self._record_error(path, exc)
                continue
            read.append((path, text, stamp, time.perf_counter() - started))
        counters = threads or os.cpu_count() or 1
        with ThreadPoolExecutor(
            max_workers=counters,
            initializer=_yielding if checkers is not None else None,  # (see `_yielding`)
        ) as pool:
            pending: list[tuple[str, str, Stamp, float, Future[list[int]], bool]] = []
            counting = _CountBatches(pool, counters, self.counter, len(read))
            for path, text, stamp, spent in read:
                if on_read is not None:
                    on_read(path, text)
                kind = self.workspace.kind(path)
                future = counting.add(_count_pieces(text, kind, self.settings))
                # Parsed on a worker process meanwhile (what may hold XML: the rest is cheap).
                sent = (
                    checkers is not None
                    and "<" in text
                    and not over_utf8_size(text, self.settings.max_file_bytes)
                    and checkers.submit((batch, path), (text, kind, is_xml_path(path)), len(text))
                )
                pending.append((path, text, stamp, spent, future, sent))
            counting.flush()
            # Parse everything first: the counts may wait for the encoding, still loading
            # on another thread when the server starts (it hands the GIL over meanwhile).
            parsed: list[tuple[FileAnalysis, Future[list[int]]]] = []
            try:
                for done, (path, text, stamp, spent, future, sent) in enumerate(pending, 1):
                    done_there = None
                    if checkers is not None and sent:
                        found = checkers.result((batch, path))
                        if isinstance(found, tuple):  # (None: it failed there; parsed here)
                            done_there = (
                                unpack_document(
                                    text,
                                    self.workspace.kind(path),
                                    found[0],
                                    self._region_checks,
                                    is_xml_path(path),
                                ),
                                [Reference(*r) for r in found[1]],
                            )
                    parsed.append((self._parse(path, text, None, spent, stamp, done_there), future))
                    if progress is not None and done < total:
                        progress(done, total)
            finally:  # (what no one took, when this failed half way)
                if checkers is not None:
                    checkers.forget((batch, p[0]) for p in pending if p[5])
            for analysis, future in parsed:
                finished = self._finish(analysis, future)
                with self._lock:
                    self._store(finished)
            if progress is not None and parsed:
                progress(total, total)

    def _record_error(self, path: str, exc: BaseException) -> None:
        with self._lock:
            self.errors[path] = str(exc)
            self.files.pop(path, None)
            self._memories = None
            self._invalidate(path)

    def update(self, path: str, version: int | None = None) -> set[str]:
        """Re-analyse one file (after an edit, a save or a change on disk); return every file
        whose findings or load cost may have changed.

        An edit of an open buffer that provably keeps the file's structure (see `incremental`)
        shifts the previous analysis and re-counts only the chunk it touched."""
        previous = self.files.get(path)
        if previous is None or path not in self.workspace.overlay:
            self.workspace.forget([path])  # (an open buffer is a file whatever the disk says)
        started = time.perf_counter()
        try:
            text, stamp = self.workspace.read_stamped(path)
        except (OSError, OutsideWorkspace) as exc:
            return (
                self.remove(path) if not os.path.exists(path) else self._error_affected(path, exc)
            )
        if version is not None and stamp[0] == "buffer":
            stamp = ("buffer", version, *stamp[1:])
        analysis = None
        if previous is not None and stamp[0] == "buffer":
            analysis = self._analyse_edit(previous, text, version, stamp, started)
            if analysis is None and text != previous.doc.text:
                self.edits["parsed"] += 1
        if analysis is None:
            pieces = _count_pieces(text, self.workspace.kind(path), self.settings)
            future: Future[list[int]] = Future()
            future.set_result(self.counter.count_many(pieces))
            spent = time.perf_counter() - started
            analysis = self._analyse(path, text, version, future, spent, stamp)
        with self._lock:
            old = self.files.get(path)
            created = old is None
            affected = self.dependents(path)
            self._store(analysis)
            if created:
                affected |= self._resolve_again()
        if created or any(self._to_pull(r) for r in analysis.resolutions):
            self._pull_again()
        return affected | {path}

    def _analyse_edit(
        self, old: FileAnalysis, text: str, version: int | None, stamp: Stamp, started: float
    ) -> FileAnalysis | None:
        """The analysis of `text`, an edit of `old`'s text, by shifting `old` (None when the
        edit may change the structure: then the file is analysed from scratch)."""
        if old.doc.reduced or over_utf8_size(text, self.settings.max_file_bytes):
            return None
        edit = text_edit(old.doc.text, text)
        shifted = shift_document(old.doc, text, edit, [r.ref for r in old.resolutions])
        refs: list[Reference] | None = None
        how = "shifted"
        if shifted is not None:
            doc, refs = shifted
        else:
            rechecked = reparse_region(old.doc, text, edit, self._region_checks)
            if rechecked is None:
                return None
            doc, how = rechecked, "region"
            refs = region_references(old.doc, doc, edit, [r.ref for r in old.resolutions])
        if refs is not None:
            resolutions = tuple(
                res.moved(ref) for res, ref in zip(old.resolutions, refs, strict=True)
            )
        else:
            resolutions = tuple(self.resolver.resolve(old.path, r) for r in extract_references(doc))
        change = self._recount((old.path, "file"), old.doc.text, text, edit)
        if change is None:
            return None
        raw = old.raw_tokens + change
        pieces = _count_pieces(text, old.kind, self.settings)
        loaded: int | None = raw
        if len(pieces) == 3 and doc.frontmatter is not None:
            head, _, loaded_head = pieces
            loaded = raw - self.counter.count(head) + self.counter.count(loaded_head)
        elif doc.kind == "memory" and doc.comments:
            loaded = self._recount_loaded(old, doc, edit)
        elif doc.loaded_text() is not doc.text:
            loaded = None
        if loaded is None:
            return None
        fa = FileAnalysis(
            path=old.path,
            rel=old.rel,
            kind=old.kind,
            doc=doc,
            raw_tokens=raw,
            tokens=calibrate(loaded, self.settings.calibration),
            resolutions=resolutions,
            findings=(),
            version=version,
            elapsed=time.perf_counter() - started,
            stamp=stamp,
        )
        self.edits[how] += 1
        return _with_local_findings(fa, self.settings)

    def _recount_loaded(self, old: FileAnalysis, doc: Document, edit: TextEdit) -> int | None:
        """The loaded count of `doc`, a memory file with block comments (what loads is the text
        between them), after `edit` of `old`: the same edit, moved back by the comments before
        it, re-counts one chunk of the loaded text. None when the edit touches a comment."""
        removed = 0
        for span in old.doc.unloaded():
            if span.end <= edit.start:
                removed += span.end - span.start
            elif span.start < edit.old_end:
                return None
        known = self._loaded_counts.get(old.path)
        if known is not None and known[0] is old.doc.text:
            before, total = known[1], known[2]
        else:
            before = old.doc.loaded_text()
            total = self.counter.count(before)
        after = doc.loaded_text()
        moved = TextEdit(edit.start - removed, edit.old_end - removed, edit.new_end - removed)
        change = self._recount((old.path, "loaded"), before, after, moved)
        if change is None:
            return None
        self._loaded_counts[old.path] = (doc.text, after, total + change)
        return total + change

    def _recount(self, key: tuple[str, str], before: str, text: str, edit: TextEdit) -> int | None:
        """How many tokens `edit` of `before` (giving `text`) added (negative: removed),
        counting only the chunks it touches: the one it lies in, widened to its neighbours
        where the edit took away a safe break (two lines joined at a cut) and cut again into
        chunks of the usual size. `key` keeps the chunk bounds for the next edit. (None only
        when `before` and `text` are not what the edit says.)"""
        known = self._chunk_bounds.get(key)
        last, last_count = -1, 0
        if known is not None and known[0] is before:
            bounds, last, last_count = known[1], known[2], known[3]
        else:
            bounds = [0]
            for chunk in split_chunks(before, _RECOUNT_CHUNK):
                bounds.append(bounds[-1] + len(chunk))
        if bounds[-1] != len(before) or edit.old_end > len(before):
            return None
        # The chunks [k, j) hold the edit (typing at the very end: the last chunk).
        k = min(bisect.bisect_right(bounds, edit.start), len(bounds) - 1) - 1
        j = bisect.bisect_left(bounds, edit.old_end, k + 1)
        delta = edit.delta
        while k > 0 and not is_safe_break(text, bounds[k]):
            k -= 1
        while j < len(bounds) - 1 and not is_safe_break(text, bounds[j] + delta):
            j += 1
        low, new_high = bounds[k], bounds[j] + delta
        if j == k + 1 and k == last:  # typing on in the same chunk: the count it made
            before_count = last_count
        else:
            before_count = sum(
                self.counter.count(before[a:b]) for a, b in pairwise(bounds[k : j + 1])
            )
        # Chunks joined: cut them again.
        pieces = (
            [text[low:new_high]] if j == k + 1 else split_chunks(text[low:new_high], _RECOUNT_CHUNK)
        )
        counts = [self.counter.count(piece) for piece in pieces]
        middle = list(accumulate((len(piece) for piece in pieces[:-1]), initial=low))
        moved = [*bounds[:k], *middle, *(b + delta for b in bounds[j:])]
        if len(pieces) == 1:
            self._chunk_bounds[key] = (text, moved, k, counts[0])
        else:
            self._chunk_bounds[key] = (text, moved, -1, 0)
        return sum(counts) - before_count

    def analyse_alone(self, path: str, version: int | None = None) -> FileAnalysis | None:
        """Analyse one file on its own, without storing it: what the file itself and the file
        system tell (syntax, frontmatter, its own tokens, references resolved against the disk).
        For a file opened before the index is complete; None when it cannot be read."""
        try:
            text, stamp = self.workspace.read_stamped(path)
        except (OSError, OutsideWorkspace):
            return None
        started = time.perf_counter()
        pieces = _count_pieces(text, self.workspace.kind(path), self.settings)
        future: Future[list[int]] = Future()
        future.set_result(self.counter.count_many(pieces))
        return self._analyse(path, text, version, future, time.perf_counter() - started, stamp)

    def own_findings(self, fa: FileAnalysis) -> list[Finding]:
        """The findings of `fa` that need no other file, as `findings` orders and overrides them."""
        found = apply_overrides(fa.findings, self.settings.severity)
        found.sort(key=lambda f: (f.start, f.end, f.code))
        return cap_findings(found, self.settings.max_problems)

    def appeared(self, path: str) -> set[str]:
        """A file no prompt file loads appeared or changed on disk: resolve references again
        (it may be what one was waiting for); return the files affected."""
        self.workspace.forget([path])
        with self._lock:
            affected = self._resolve_again()
        self._pull_again()
        return affected

    def _error_affected(self, path: str, exc: BaseException) -> set[str]:
        affected = self.dependents(path)
        self._record_error(path, exc)
        return affected

    def remove(self, path: str) -> set[str]:
        """Forget a deleted file; return the files affected."""
        self.workspace.forget([path])
        with self._lock:
            affected = self.dependents(path)
            self.files.pop(path, None)
            self._memories = None
            self.errors.pop(path, None)
            for part in ("file", "loaded"):
                self._chunk_bounds.pop((path, part), None)
            self._loaded_counts.pop(path, None)
            self._invalidate(path)
            affected |= self._resolve_again()
        return affected

    @contextlib.contextmanager
    def changes(self) -> Iterator[set[str]]:
        """Many files changed on disk at once (`update`, `remove` and `appeared` called inside):
        every file's references are resolved again once, at the end, rather than after each file
        that appeared or vanished, and what they name is pulled in then. A branch switch deletes
        and creates hundreds of files: 300 deletions, one by one, took 30 s. The set yielded
        gets, at the end, the files that last step affected. (Nested: the outer one settles.)"""
        settled: set[str] = set()
        if self._settling is not None:
            yield settled
            return
        self._settling = False
        try:
            yield settled
        finally:
            owed, self._settling = self._settling, None
            if owed:
                with self._lock:
                    settled |= self._re_resolve()
                self._pull_referenced(None)

    def _resolve_again(self) -> set[str]:
        """`_re_resolve`, or (inside `changes()`) owed until its end."""
        if self._settling is not None:
            self._settling = True
            return set()
        return self._re_resolve()

    def _pull_again(self) -> None:
        """`_pull_referenced`, or (inside `changes()`) owed until its end."""
        if self._settling is not None:
            self._settling = True
        else:
            self._pull_referenced(None)

    def _re_resolve(self) -> set[str]:
        """Resolve every file's references again (a file appeared or vanished)."""
        changed: set[str] = set()
        for path, fa in list(self.files.items()):
            fresh = tuple(self.resolver.resolve(path, r.ref) for r in fa.resolutions)
            if fresh != fa.resolutions:
                self._store(_replace_resolutions(fa, fresh, self.settings))
                changed.add(path)
        return changed

    def _analyse(
        self,
        path: str,
        text: str,
        version: int | None,
        counts: Future[list[int]],
        spent: float,
        stamp: Stamp,
    ) -> FileAnalysis:
        return self._finish(self._parse(path, text, version, spent, stamp), counts)

    def _parse(
        self,
        path: str,
        text: str,
        version: int | None,
        spent: float,
        stamp: Stamp,
        parsed: tuple[Document, list[Reference]] | None = None,
    ) -> FileAnalysis:
        """Everything of `path`'s analysis but its token counts (zero until `_finish`);
        `parsed`: its document and references, when a worker process made them
        (`parse_on_worker`)."""
        started = time.perf_counter()
        kind = self.workspace.kind(path)
        if parsed is not None:
            doc, refs = parsed
        else:
            reduced = over_utf8_size(text, self.settings.max_file_bytes)
            doc = parse_document(
                text,
                kind,
                reduced=reduced,
                regions=self._region_checks,
                xml_file=is_xml_path(path),
            )
            refs = extract_references(doc)
        resolutions = tuple(self.resolver.resolve(path, r) for r in refs)
        return FileAnalysis(
            path=path,
            rel=self.workspace.relative(path),
            kind=kind,
            doc=doc,
            raw_tokens=0,
            tokens=0,
            resolutions=resolutions,
            findings=(),
            version=version,
            elapsed=spent + time.perf_counter() - started,
            stamp=stamp,
        )

    def _finish(self, parsed: FileAnalysis, counts: Future[list[int]]) -> FileAnalysis:
        """`parsed` with its token counts (waiting for them) and its own findings."""
        started = time.perf_counter()
        raw, tokens = _tokens_from(counts.result(), parsed.doc, self.counter, self.settings)
        fa = dataclasses.replace(
            parsed,
            raw_tokens=raw,
            tokens=tokens,
            elapsed=parsed.elapsed + time.perf_counter() - started,
        )
        return _with_local_findings(fa, self.settings)

    def _store(self, analysis: FileAnalysis) -> None:
        old = self.files.get(analysis.path)
        self.files[analysis.path] = analysis
        if old is None or old.kind != analysis.kind:
            self._memories = None
        self.errors.pop(analysis.path, None)
        if (
            old is None
            or old.edges != analysis.edges
            or _targets(old.resolutions) != _targets(analysis.resolutions)
        ):
            self._invalidate(analysis.path)
            return
        # (its text first: what contains it is found from the load sets, which moved
        # references may drop)
        if old.stamp != analysis.stamp or old.tokens != analysis.tokens:
            self._content_changed(analysis.path)
        if old.resolutions != analysis.resolutions:
            self._references_moved(analysis.path)

    def _references_moved(self, path: str) -> None:
        """`path`'s references are the same but moved in its text: what shows their places."""
        cut = [
            r
            for r, ls in self._load_sets.items()
            if ls.cut and any(f == path for f, _, _ in ls.cut)
        ]
        for root in cut:
            del self._load_sets[root]
            self._dups.pop(root, None)
        if cut:
            self._dependents = {}
        if path in self._graph.cycles:
            self._graph = _Graph()

    def _invalidate(self, path: str) -> None:
        """`path`'s references changed: load sets through it, cycles, costs, duplicates."""
        self._content_changed(path)
        for root in [r for r, ls in self._load_sets.items() if path in ls.files or r == path]:
            del self._load_sets[root]
        self._dependents = {}
        self._graph = _Graph()

    def _content_changed(self, path: str) -> None:
        """`path`'s text changed: its cost and every cost and duplicate check containing it."""
        self.costs.invalidate(path)
        self._blocks.pop(path, None)
        roots = self._dependents.get(path)
        if roots is None:
            roots = frozenset(
                r for r, ls in self._load_sets.items() if path in ls.files or r == path
            )
        for root in roots:
            self._dups.pop(root, None)

    # -- queries ---------------------------------------------------------------------------------
    def get(self, path: str) -> FileAnalysis | None:
        """The analysis of `path`, if indexed."""
        return self.files.get(path)

    def dependents(self, path: str) -> set[str]:
        """Files whose load set holds `path` (including `path` itself when indexed)."""
        with self._lock:
            cached = self._dependents.get(path)
            if cached is not None:
                return set(cached)
            known = self._load_sets
            found = {
                root
                for root in self.files
                if path in ((known.get(root) or self.load_set(root)).files)
            }
            if len(self._dependents) > 4096:
                self._dependents = {}
            self._dependents[path] = frozenset(found)
            return found

    def load_set(self, path: str) -> LoadSet:
        """The load set of an indexed file (breadth-first, @import hops limited)."""
        with self._lock:
            cached = self._load_sets.get(path)
            if cached is None:
                cached = self._compute_load_set(path)
                self._load_sets[path] = cached
                self._dependents = {}
            return cached

    def _compute_load_set(self, root: str) -> LoadSet:
        # 0-1 breadth-first search: an @import edge is one hop, every other reference none.
        limit = self.settings.import_depth
        hops: dict[str, int] = {root: 0}
        queue: deque[str] = deque([root])
        cut: list[tuple[str, Reference, int]] = []
        done: set[str] = set()
        while queue:
            current = queue.popleft()
            if current in done:
                continue
            done.add(current)
            fa = self.files.get(current)
            for res in fa.resolutions if fa else ():
                if not (res.loads and res.path):
                    continue
                step = 1 if res.ref.form == "import" else 0
                depth = hops[current] + step
                if step and depth > limit:
                    cut.append((current, res.ref, depth))
                elif res.path not in hops or depth < hops[res.path]:
                    hops[res.path] = depth
                    queue.append(res.path) if step else queue.appendleft(res.path)
        # Report the order a reader expects: breadth-first, in reference order.
        order: list[str] = [root]
        seen = {root}
        for current in order:
            fa = self.files.get(current)
            for target in fa.edges if fa else ():
                if target in hops and target not in seen:
                    seen.add(target)
                    order.append(target)
        kept = tuple((f, r, d) for f, r, d in cut if not self._reached(r, f, hops))
        return LoadSet(root, tuple(order), kept)

    def _reached(self, ref: Reference, source: str, hops: dict[str, int]) -> bool:
        fa = self.files.get(source)
        if fa is None:
            return False
        for res in fa.resolutions:
            if res.ref == ref:
                return res.path in hops
        return False

    def cost(self, path: str, purpose: str = "other") -> tuple[Cost, bool, float] | None:
        """What loading `path` costs, from the cache when its content has not changed:
        (cost, served from the cache, milliseconds the lookup or computation took)."""
        fa = self.files.get(path)
        if fa is None:
            return None
        started = time.perf_counter()
        key = FileKey(path, fa.stamp)
        cached = self.costs.get(key, purpose)
        if cached is not None:
            return cached, True, (time.perf_counter() - started) * 1000
        with self._lock:
            load_set = self.load_set(path)
            references = tuple(
                (p, other.tokens) for p in fa.edges if (other := self.files.get(p)) is not None
            )
            cost = Cost(
                path=path,
                tokens=fa.tokens,
                raw_tokens=fa.raw_tokens,
                load_files=load_set.files,
                load_tokens=self.load_tokens(path),
                references=references,
                cold_ms=fa.elapsed * 1000,
            )
            if self.files.get(path) is fa:
                self.costs.put(key, cost)
        return cost, False, (time.perf_counter() - started) * 1000

    def load_tokens(self, path: str) -> int:
        """The load cost of `path`: the sum of `tokens` over its load set."""
        return sum(fa.tokens for p in self.load_set(path).files if (fa := self.files.get(p)))

    def findings(self, path: str, *, slow: bool = True) -> list[Finding]:
        """Every finding of `path`: its own, and those that depend on other files. With
        `slow=False`, without the two that take longest after an edit (`duplicate-content` and
        `xml-compressible`): the editor shows the rest first and adds these a moment later."""
        fa = self.files.get(path)
        if fa is None:
            return []
        graph = self._graph_findings()
        found = list(fa.findings) + graph.cycles.get(path, []) + self._set_findings(fa)
        if slow:
            found += self._duplicate_findings(path) + self._compression_findings(path)
        found = apply_overrides(found, self.settings.severity)
        found.sort(key=lambda f: (f.start, f.end, f.code))
        return cap_findings(found, self.settings.max_problems)

    def _set_findings(self, fa: FileAnalysis) -> list[Finding]:
        out: list[Finding] = []
        for root in self._roots_reaching(fa.path):
            for source, ref, depth in self.load_set(root).cut:
                if source == fa.path:
                    out.append(
                        Finding(
                            "import-depth",
                            Severity.WARNING,
                            f"`@{ref.target}` is @import hop {depth} from "
                            f"{self.workspace.relative(root)}; Claude Code follows at most "
                            f"{self.settings.import_depth}, so it is not loaded",
                            ref.start,
                            ref.end,
                        )
                    )
        out = list({(f.start, f.end): f for f in out}.values())
        if fa.kind in ENTRY_KINDS or fa.kind in BUDGET_DECLARING_KINDS:
            load = self.load_tokens(fa.path)
            span = file_range(fa.doc)
            if fa.kind in ENTRY_KINDS:
                finding = budget_finding(
                    "load-budget",
                    f"loads {len(self.load_set(fa.path).files)} files,",
                    load,
                    self.settings.load_budget,
                    self.settings.warn_ratio,
                    span,
                )
                if finding:
                    out.append(finding)
            declared = fa.doc.context_budget() if fa.kind in BUDGET_DECLARING_KINDS else None
            if declared is not None:
                value, start, end = declared
                tolerance = self.settings.context_budget_tolerance
                if value <= 0 or abs(load - value) / value > tolerance:
                    out.append(
                        Finding(
                            "context-budget-mismatch",
                            Severity.WARNING,
                            f"declares ~{value:,} tokens but loads ≈{load:,} "
                            f"({(load - value) / value:+.0%} off; tolerance {tolerance:.0%})"
                            if value > 0
                            else f"declares {value} tokens but loads ≈{load:,}",
                            start,
                            end,
                        )
                    )
        return out

    def resume_edits(self, path: str) -> bool:
        """Check again here the XML regions of `path` that a worker process checked, and give
        their checks what an edit resumes from (a worker keeps none): then the first markup edits
        of an open document check only near the edit, as the rest do, not the whole region. For
        a thread, once a document is open; True when a check took anything."""
        fa = self.files.get(path)
        if fa is None or not any(
            r.check.resume is None and isinstance(r.check.elements, PackedElements)
            for r in fa.doc.regions
        ):
            return False
        fresh = parse_document(fa.doc.text, fa.kind, xml_file=fa.doc.xml_file)
        if [(r.start, r.end) for r in fresh.regions] != [(r.start, r.end) for r in fa.doc.regions]:
            return False  # (never: the same text parses the same)
        took = False
        for old, new in zip(fa.doc.regions, fresh.regions, strict=True):
            if isinstance(old.check.elements, PackedElements):
                took = resume_from(old.check, new.check) or took
        return took

    def compressions(self, path: str) -> list[RegionEdit]:
        """Verified compressions of the XML regions of `path` (computed once per version)."""
        fa = self.files.get(path)
        if fa is None:
            return []
        cached = self._compressions.get(path)
        if cached is None or cached[0] is not fa:
            edits = self._compressed_by_workers(fa)
            cached = (fa, self._compress([fa])[0] if edits is None else edits)
            self._compressions[path] = cached
        return cached[1]

    def _compressed_by_workers(self, fa: FileAnalysis) -> list[RegionEdit] | None:
        pool = self._compressing
        return None if pool is None else pool.take(fa.path, fa.doc.text)

    def prepare_compressions(self, paths: Iterable[str], processes: int = 1) -> None:
        """Compute the compressions of many files at once, on `processes` worker processes
        when that pays (see `compress.compress_documents`); `compressions` then finds them
        remembered."""
        todo: list[FileAnalysis] = []
        for path in paths:
            fa = self.files.get(path)
            cached = self._compressions.get(path)
            if fa is None or not fa.doc.regions or (cached is not None and cached[0] is fa):
                continue
            edits = self._compressed_by_workers(fa)
            if edits is None:
                todo.append(fa)
            else:
                self._compressions[path] = (fa, edits)
        self._stop_compressing()  # (what the workers made that no one asked for)
        for fa, edits in zip(todo, self._compress(todo, processes), strict=True):
            if self.files.get(fa.path) is fa:
                self._compressions[fa.path] = (fa, edits)

    def prepare_duplicates(self, paths: Iterable[str]) -> None:
        """Find the copies every load set holding one of `paths` repeats (`findings` then finds
        them remembered): for the command line, while worker processes compress."""
        for path in paths:
            self._duplicate_findings(path)

    def _compress(
        self, files: Sequence[FileAnalysis], processes: int = 1
    ) -> list[list[RegionEdit]]:
        from promptls.analysis.compress import compress_documents

        return compress_documents(
            [fa.doc for fa in files],
            self.counter,
            level=self._compression_level(),
            remove_comments=self.settings.compression.remove_comments,
            processes=processes,
            results=self._region_compressions,
            checks=self._region_checks,
        )

    def _compression_level(self) -> Level:
        return "lossless" if self.settings.compression.level == "lossless" else "whitespace"

    def prepare_slow(self, path: str) -> None:
        """Compute the costly parts of `path`'s slow findings (its compressions and the copies
        of every load set it is in) for its current analysis, so that `findings` then finds them
        remembered. Safe on a worker thread while the index is updated: each is computed from
        immutable analyses and remembered only while they are current."""
        if self.compression_hints:
            self.compressions(path)
        self._duplicate_findings(path)

    @property
    def compression_hints(self) -> bool:
        """Whether `xml-compressible` findings are wanted: a code turned off in the `severity`
        setting costs nothing (compressing is most of what `check` spends; the compressions
        themselves are still made when asked for, by a code action or a report)."""
        return self.settings.severity.get("xml-compressible") != "off"

    def _compression_findings(self, path: str) -> list[Finding]:
        if not self.compression_hints:
            return []
        minimum = self.settings.compression.min_saving
        out: list[Finding] = []
        text = self.files[path].doc.text
        for edit in self.compressions(path):
            saved = edit.compressed.saved
            if saved < max(1, minimum):
                continue
            line_end = first_line_break(text, edit.start, edit.end)
            name = f"<{edit.element}>" if edit.element else "XML"
            out.append(
                Finding(
                    "xml-compressible",
                    Severity.HINT,
                    f"{name} block can be compressed: -{saved:,} tokens "
                    f"(-{edit.compressed.percent:.0f}%), same meaning",
                    edit.start,
                    line_end if line_end > edit.start else edit.end,
                )
            )
        return out

    def _duplicate_findings(self, path: str) -> list[Finding]:
        """`duplicate-content` for copies in `path`, over every entry file's load set."""
        minimum = self.settings.duplicate_min_tokens
        if minimum <= 0:
            return []
        out: dict[tuple[int, int], Finding] = {}
        with self._lock:
            roots = [
                r
                for r, fa in self.files.items()
                if fa.kind in ENTRY_KINDS and path in self.load_set(r).files
            ]
        for root in roots:
            for finding in self._root_duplicates(root).get(path, []):
                out.setdefault((finding.start, finding.end), finding)
        return list(out.values())

    def _blocks_of(self, path: str, fa: FileAnalysis | None = None) -> list[Block]:
        """The blocks of `path` (of its analysis `fa` when given) that copies are looked for in."""
        fa = fa or self.files.get(path)
        if fa is None:
            return []
        cached = self._blocks.get(path)
        if cached is None or cached[0] is not fa:
            cached = (fa, blocks(fa.doc, self.settings.duplicate_min_tokens))
            if self.files.get(path) is fa:
                self._blocks[path] = cached
        return cached[1]

    def _root_duplicates(self, root: str) -> dict[str, list[Finding]]:
        """The copies `root`'s load set repeats, by file. Computed outside the lock from one
        snapshot of the files (a worker thread does it while the user types, see
        `prepare_slow`), and remembered only if none of them changed meanwhile."""
        with self._lock:
            cached = self._dups.get(root)
            if cached is not None:
                return cached
            load_set = self.load_set(root)
            snapshot = {p: fa for p in load_set.files if (fa := self.files.get(p)) is not None}
        found = find_duplicates(
            load_set.files,
            {p: self._blocks_of(p, fa) for p, fa in snapshot.items()},
            lambda p: snapshot[p].doc.text,
            self.counter.count,
            self.settings.duplicate_min_tokens,
        )
        by_path: dict[str, list[Finding]] = {}
        show = self.workspace.relative
        for d in found:
            where = ", ".join(f"{show(p)}" for p, _, _ in d.others[:3])
            if d.copies > 3:
                where += f" (and {d.copies - 3:,} more)"
            by_path.setdefault(d.path, []).append(
                Finding(
                    "duplicate-content",
                    Severity.INFORMATION,
                    f"{d.label} (≈{d.tokens:,} tokens) is also in {where}, and "
                    f"{show(root)} loads both: {d.tokens:,} tokens repeated at every run",
                    d.start,
                    d.end,
                    related=tuple(Related(p, s, e, "another copy") for p, s, e in d.others),
                )
            )
        with self._lock:
            if self._load_sets.get(root) is load_set and all(
                self.files.get(p) is fa for p, fa in snapshot.items()
            ):
                self._dups[root] = by_path
        return by_path

    def _roots_reaching(self, path: str) -> list[str]:
        with self._lock:  # (files are stored under the lock, which empties the list)
            memories = self._memories
            if memories is None:
                memories = [p for p, fa in self.files.items() if fa.kind == "memory"]
                self._memories = memories
        return [root for root in memories if root == path or path in self.load_set(root).files]

    def _graph_findings(self) -> _Graph:
        with self._lock:
            if not self._graph.built:
                graph = _Graph(cycles=self._cycle_findings(), built=True)
                self._graph = graph
            return self._graph

    def _cycle_findings(self) -> dict[str, list[Finding]]:
        edges = {p: [e for e in fa.edges if e in self.files] for p, fa in self.files.items()}
        out: dict[str, list[Finding]] = {}
        for component in _strongly_connected(edges):
            members = set(component)
            if len(members) == 1:
                only = component[0]
                if only not in edges[only]:
                    continue
            for source in component:
                fa = self.files[source]
                for res in fa.resolutions:
                    if not (res.loads and res.path in members):
                        continue
                    assert res.path is not None
                    cycle = _path_within(edges, members, res.path, source)
                    names = " → ".join(self.workspace.relative(p) for p in [source, *cycle])
                    related = tuple(
                        Related(nxt, *self._ref_span(nxt, after), "continues the cycle")
                        for nxt, after in zip(cycle, [*cycle[1:], source], strict=False)
                        if nxt != source
                    )
                    out.setdefault(source, []).append(
                        Finding(
                            "import-cycle",
                            Severity.WARNING,
                            f"import cycle: {names} (each file is loaded once)",
                            res.ref.start,
                            res.ref.end,
                            related=related,
                        )
                    )
        return out

    def _ref_span(self, source: str, target: str) -> tuple[int, int]:
        fa = self.files.get(source)
        if fa is not None:
            for res in fa.resolutions:
                if res.path == target and res.loads:
                    return res.ref.start, res.ref.end
        return 0, 0


def _path_within(
    edges: dict[str, list[str]], members: set[str], start: str, goal: str
) -> list[str]:
    """Shortest path start -> ... -> goal inside one strongly connected component (inclusive)."""
    previous: dict[str, str | None] = {start: None}
    queue: deque[str] = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in edges.get(node, []):
            if nxt in members and nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    path: list[str] = []
    node_or_none: str | None = goal if goal in previous else start
    while node_or_none is not None:
        path.append(node_or_none)
        node_or_none = previous.get(node_or_none)
    return path[::-1]


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def _targets(resolutions: Sequence[Resolution]) -> list[tuple[object, ...]]:
    """What resolutions lead to, without where their references are written."""
    return [
        (r.ref.form, r.ref.target, r.status, r.path, r.tried, r.suggestion, r.loads)
        for r in resolutions
    ]


_COUNTING_NICE = 10
"""How much lower than the rest of the process the counting threads of an index run when
worker processes parse (a `nice` increment, on Linux)."""


def _yielding() -> None:
    """Run this thread (one counting tokens for `analyse_many`) `_COUNTING_NICE` lower.

    While the language server indexes, its worker process parses every file, and that is the
    longest chain of work; tiktoken, on these threads, releases the interpreter and needs no
    order. At the same priority, on two cores the worker, the indexing thread and two counting
    threads each got about half a core, and the worker finished late; counting at a lower
    priority uses the time the others leave (the indexing thread waits for the worker much of
    the time), and the index is ready sooner (a median of 0.64–0.68 s before, 0.55–0.57 s
    after, on the real 680,000-token framework): the same work, in a better order. Where there
    are cores to spare, it changes nothing. (Linux only, where a thread id names one thread to
    `setpriority`, and where the workers are forked.)"""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(AttributeError, OSError):
        niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(
            os.PRIO_PROCESS, threading.get_native_id(), min(19, niceness + _COUNTING_NICE)
        )


class _CountBatches:
    """The token counts of many files, handed to a thread pool a batch of files at a time
    rather than one task per file (a queued task, a future and a wake-up per file, each taking
    the interpreter back from the thread that parses). Each file still gets its own future.

    Counting the generated workspace's files on one pool thread while another waited for each
    file's future in turn: 0.6 to 0.77 s of CPU with a task per file, 0.48 to 0.52 s with one
    task looping over them (the same loop on the waiting thread alone: 0.43 to 0.48 s). In the
    server's cold index, six runs each way alternating: 1.55 s of CPU against 1.64 (medians),
    within this machine's noise."""

    def __init__(
        self, pool: ThreadPoolExecutor, threads: int, counter: TokenCounter, files: int
    ) -> None:
        self.pool = pool
        self.counter = counter
        # About four batches a thread: the threads stay busy, and none is left with the tail.
        self.size = max(1, -(-files // (4 * threads)))
        self.batch: list[tuple[Future[list[int]], list[str]]] = []

    def add(self, pieces: list[str]) -> Future[list[int]]:
        """The future of `pieces`' counts (sent with its batch)."""
        future: Future[list[int]] = Future()
        self.batch.append((future, pieces))
        if len(self.batch) >= self.size:
            self.flush()
        return future

    def flush(self) -> None:
        """Send the batch begun."""
        if self.batch:
            self.pool.submit(_count_batch, self.counter, self.batch)
            self.batch = []


def _count_batch(counter: TokenCounter, batch: list[tuple[Future[list[int]], list[str]]]) -> None:
    for k, (future, pieces) in enumerate(batch):
        try:
            future.set_result(counter.count_whole(pieces))
        except BaseException as exc:  # (each file waiting for its counts hears of it)
            for later, _ in batch[k:]:
                later.set_exception(exc)
            raise


def parse_on_worker(
    text: str, kind: str, xml_file: bool = False
) -> tuple[PackedDocument, list[tuple[str, str, int, int]]]:
    """What a worker process does for the index (`WorkspaceIndex.workers`): `text` (a file of
    `kind`, not reduced; `xml_file`: named `*.xml`) parsed, packed, and its references."""
    doc, packed = parse_packed(text, kind, xml_file)
    return packed, [(r.form, r.target, r.start, r.end) for r in extract_references(doc)]


def _count_pieces(text: str, kind: str, settings: Settings) -> list[str]:
    """The texts to count for rawTokens and tokens (see `_tokens_from`): `[text]`, or, for a
    kind whose frontmatter is not loaded, `[head, tail, loaded head]`: the file cut at the first
    safe break at or after the end of its frontmatter, and the part of the head after the
    frontmatter. A file's count is then head + tail, and its loaded count loaded head + tail,
    both exact (the cut is a safe break of the file and of its body alike), and the body is
    never counted twice. (A blank line after the frontmatter, the usual layout, is no safe
    break: the cut is where the first line with words starts.)"""
    from promptls.analysis.document import frontmatter_end

    if kind in STRIPPED_FRONTMATTER and len(text) <= settings.max_file_bytes:
        end = frontmatter_end(text)
        if end:
            cut = next_safe_break(text, end)
            return [text[:cut], text[cut:], text[end:cut]]
    return [text]


def _region_chars(key: tuple[str, tuple[tuple[int, int], ...]]) -> int:
    return len(key[0])


def _tokens_from(
    counts: list[int], doc: Document, counter: TokenCounter, settings: Settings
) -> tuple[int, int]:
    """(rawTokens, tokens) from the counts of `_count_pieces`' texts."""
    if len(counts) == 3:
        head, tail, loaded_head = counts
        raw = head + tail
        loaded = loaded_head + tail if doc.frontmatter is not None and not doc.reduced else raw
        return raw, calibrate(loaded, settings.calibration)
    raw = sum(counts)
    text = doc.text if doc.reduced else doc.loaded_text()
    loaded = raw if text is doc.text or text == doc.text else counter.count(text)
    return raw, calibrate(loaded, settings.calibration)


def _with_local_findings(fa: FileAnalysis, settings: Settings) -> FileAnalysis:
    found: list[Finding] = []
    doc = fa.doc
    if doc.reduced:
        found.append(
            Finding(
                "file-too-large",
                Severity.INFORMATION,
                f"{utf8_size(doc.text):,} bytes, over the {settings.max_file_bytes:,} limit: "
                "counted, not parsed",
                0,
                min(len(doc.text), 1),
            )
        )
    found.extend(xml_findings(doc))
    found.extend(frontmatter_findings(doc, fa.path))
    found.extend(reference_findings(fa.resolutions))
    budget = settings.budgets.for_kind(fa.kind)
    finding = budget_finding(
        "token-budget",
        f"this {fa.kind} is",
        fa.tokens,
        budget,
        settings.warn_ratio,
        file_range(doc),
    )
    if finding:
        found.append(finding)
    return _replace(fa, findings=tuple(found))


def _replace_resolutions(
    fa: FileAnalysis, resolutions: tuple[Resolution, ...], settings: Settings
) -> FileAnalysis:
    return _with_local_findings(_replace(fa, resolutions=resolutions), settings)


def _replace(fa: FileAnalysis, **changes: object) -> FileAnalysis:
    import dataclasses

    return dataclasses.replace(fa, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One node of a load tree: a file, its own tokens, and what it loads."""

    path: str
    tokens: int
    children: tuple[TreeNode, ...] = ()
    note: str = ""
    """`loaded above` for a file already shown, `cycle` for a way back, or `` ."""


#: A load tree is drawn at most this many levels deep: a file below the limit is listed, flat,
#: under its ancestor at the limit, after what came before it there (a chain of thousands of
#: `<depends_on>` modules would otherwise nest as deep, past what a drawing, a JSON encoder or
#: an editor's tree view takes).
MAX_TREE_DEPTH = 64


@dataclass(slots=True)
class _Expanding:
    """A file of the load tree being expanded: what it loads still to visit, where its children
    go (its own list, or beyond the limit its ancestor's), and where it goes once done."""

    path: str
    todo: Iterator[str]
    children: list[TreeNode]
    own: bool
    into: list[TreeNode]


def load_tree(index: WorkspaceIndex, root: str, max_depth: int = MAX_TREE_DEPTH) -> TreeNode:
    """The load set of `root` as a tree (depth-first, reference order), each file expanded once,
    at most `max_depth` levels deep (see `MAX_TREE_DEPTH`); built without recursion."""
    members = set(index.load_set(root).files)
    expanded: set[str] = set()
    ancestors: set[str] = set()
    stack: list[_Expanding] = []
    top: list[TreeNode] = []

    def tokens(path: str) -> int:
        fa = index.get(path)
        return fa.tokens if fa else 0

    def visit(path: str, into: list[TreeNode]) -> None:
        if path in ancestors or path in expanded:
            note = "cycle" if path in ancestors else "loaded above"
            into.append(TreeNode(path, tokens(path), (), note))
            return
        expanded.add(path)
        ancestors.add(path)
        fa = index.get(path)
        todo = iter([c for c in (fa.edges if fa else ()) if c in members])
        if len(stack) < max(max_depth, 2) - 1:
            stack.append(_Expanding(path, todo, [], True, into))
        else:  # at the limit: listed here, and what it loads after it, at the same level
            into.append(TreeNode(path, tokens(path)))
            stack.append(_Expanding(path, todo, into, False, into))

    visit(root, top)
    while stack:
        node = stack[-1]
        child = next(node.todo, None)
        if child is not None:
            visit(child, node.children)
            continue
        stack.pop()
        ancestors.discard(node.path)
        if node.own:
            node.into.append(TreeNode(node.path, tokens(node.path), tuple(node.children)))
    return top[0]


def tree_lines(tree: TreeNode, show: Callable[[str], str]) -> list[str]:
    """The load tree drawn with box characters, each file with its own tokens."""
    out: list[str] = []

    def draw(node: TreeNode, prefix: str, last: bool, root: bool) -> None:
        note = f"  ({node.note})" if node.note else ""
        label = f"{show(node.path)}  {node.tokens:,} tok{note}"
        if root:
            out.append(label)
            inner = ""
        else:
            out.append(f"{prefix}{'└── ' if last else '├── '}{label}")
            inner = prefix + ("    " if last else "│   ")
        for i, child in enumerate(node.children):
            draw(child, inner, i == len(node.children) - 1, False)

    draw(tree, "", True, True)
    return out
