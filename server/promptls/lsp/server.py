"""`PromptLanguageServer`: the state of one promptls session, and the features registered on it.

State lives here (settings, the workspace index, what was sent); each feature module converts.
The index is shared by every feature: one analysis per document version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from promptls import __version__
from promptls.analysis.graph import FileAnalysis, WorkspaceIndex, parse_on_worker
from promptls.analysis.processes import ForkedWorkers
from promptls.analysis.text import LineIndex, PositionEncoding
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.config import Settings, load_settings
from promptls.lsp.convert import encoding_of, path_to_uri, uri_to_path
from promptls.lsp.protocol import Encoded, PromptProtocol

log = logging.getLogger("promptls")


@dataclass(slots=True)
class Stats:
    """Counters for `promptls/stats`."""

    analysed: int = 0
    times: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    indexing_seconds: float = 0.0

    def record(self, seconds: float) -> None:
        """Count one analysis and how long it took."""
        self.analysed += 1
        self.times.append(seconds)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..1) of recent analysis times, in milliseconds."""
        if not self.times:
            return 0.0
        if len(self.times) == 1:
            return self.times[0] * 1000
        cuts = statistics.quantiles(self.times, n=100, method="inclusive")
        return cuts[min(98, max(0, round(q * 100) - 1))] * 1000


REFRESH_LOST_AFTER = 5.0
"""Seconds after which a refresh request the client has not answered is taken as lost."""


@dataclass(slots=True)
class BuiltDiagnostic:
    """The LSP diagnostic built for a finding, and its JSON text once it has been pushed: a
    keystroke that leaves a diagnostic as it was neither builds nor encodes it again."""

    diagnostic: types.Diagnostic
    json: str | None = None


@dataclass(slots=True)
class DiagnosticMemo:
    """The diagnostics last built for one file: the text's line index they were built with, the
    position encoding, and each diagnostic by its finding's code, severity, message, data and
    offsets (see `diagnostics.built_diagnostics`)."""

    lines: LineIndex
    encoding: PositionEncoding
    built: dict[tuple[object, ...], BuiltDiagnostic]


class PromptLanguageServer(LanguageServer):
    """The promptls language server."""

    def __init__(self) -> None:
        super().__init__(
            "promptls",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=PromptProtocol,
        )
        self.settings = Settings()
        self.editor_settings: dict[str, Any] = {}
        self.index: WorkspaceIndex | None = None
        self.counter: TokenCounter | None = None
        self.ready = threading.Event()
        self._ready_async: asyncio.Event | None = None
        self.stats = Stats()
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.encoded: dict[str, tuple[FileAnalysis, dict[object, Encoded]]] = {}
        """Answers already encoded for the current version of each document, by what was asked
        (see `answers`)."""
        self.diagnostic_memo: dict[str, DiagnosticMemo] = {}
        """The LSP diagnostics last built for each file, with their JSON text once pushed (see
        `diagnostics.built_diagnostics`)."""
        self.tasks: set[asyncio.Future[None]] = set()
        """Work running off the event loop (kept referenced until done)."""
        self.sent: dict[str, tuple[str, list[types.Diagnostic]]] = {}
        """uri -> (resultId, diagnostics) last reported for it."""
        self.analysed_versions: dict[str, int] = {}
        self.lock = threading.RLock()
        self.generation = 0
        """Bumped whenever the index is rebuilt (a settings change)."""
        self._line_indexes: dict[str, tuple[FileAnalysis, LineIndex]] = {}
        self._uri_paths: dict[str, str] = {}
        self.early: WorkspaceIndex | None = None
        """While the index is being built: an empty index that analyses open files on their own."""
        self.after_analysis: Callable[[str, set[str], bool], None] | None = None
        """Called after each analysis of an open document (set by the diagnostics feature)."""
        self._refreshing: dict[str, tuple[Future[Any], float]] = {}
        """method -> the refresh request of that kind awaiting the client's answer, and when it
        was sent (see `refresh_client`)."""
        self._refresh_again: set[str] = set()
        self.workers: ForkedWorkers | None = None
        """The worker processes parsing files while the workspace is indexed (`serve` forks
        them before any thread starts; none when the server runs in a test's process)."""

    # -- asking the client to pull again ---------------------------------------------------------
    def refresh_client(self, method: str) -> None:
        """Ask the client to request again what `method` refreshes (inlay hints, code lenses,
        diagnostics), one request of a kind at a time: asked again while one is unanswered,
        one more goes out once the client answers (it then asks for all that changed in the
        meantime). Typing in a module that commands load sent two requests a keystroke, each
        making the client ask for the hints and lenses of every visible editor again. A request
        unanswered for `REFRESH_LOST_AFTER` seconds is taken as lost."""
        pending = self._refreshing.get(method)
        now = time.monotonic()
        if pending is not None and now - pending[1] < REFRESH_LOST_AFTER:
            self._refresh_again.add(method)
            return
        self._refresh_again.discard(method)
        future = self.protocol.send_request(method, None)
        self._refreshing[method] = (future, now)
        future.add_done_callback(lambda done: self._refreshed(method, done))

    def _refreshed(self, method: str, future: Future[Any]) -> None:
        pending = self._refreshing.get(method)
        if pending is None or pending[0] is not future:
            return  # one taken as lost, answered late
        del self._refreshing[method]
        # (Cancelled: the server is shutting down, pygls cancelling what is pending.)
        if method in self._refresh_again and not future.cancelled():
            self.refresh_client(method)

    # -- where things are ----------------------------------------------------------------------
    @property
    def position_encoding(self) -> PositionEncoding:
        """The position encoding negotiated at `initialize`."""
        return encoding_of(self.workspace.position_encoding)

    def folders(self) -> list[str]:
        """The workspace folders as paths (the root URI when the client sent no folders)."""
        paths = [uri_to_path(f.uri) for f in self.workspace.folders.values()]
        found = [p for p in paths if p]
        if not found and self.workspace.root_uri:
            root = uri_to_path(self.workspace.root_uri)
            if root:
                found.append(root)
        return found

    def uri_path(self, uri: str) -> str | None:
        """`uri_to_path`, remembered (it resolves symbolic links: a system call per folder)."""
        known = self._uri_paths.get(uri)
        if known is None:
            if len(self._uri_paths) > 10_000:
                self._uri_paths.clear()
            known = self._uri_paths[uri] = uri_to_path(uri) or ""
        return known or None

    def answers(self, uri: str, fa: FileAnalysis) -> dict[object, Encoded]:
        """The answers already encoded for the version of the document `fa` analysed, by what was
        asked (inlay hints by range and what they say, the symbols by position encoding, the
        folding ranges by the client's limit): the editor asks again on every scroll and every
        change. Begun afresh for a new version."""
        remembered = self.encoded.get(uri)
        if remembered is None or remembered[0] is not fa:
            if len(self.encoded) > 256 and uri not in self.encoded:  # (unopened documents too)
                self.encoded.clear()
            remembered = self.encoded[uri] = (fa, {})
        return remembered[1]

    def path_of(self, uri: str) -> str | None:
        """The path of a document inside the workspace folders (None otherwise)."""
        path = self.uri_path(uri)
        if path is None or self.index is None or not self.index.workspace.contains(path):
            return None
        return path

    def ready_event(self) -> asyncio.Event:
        """Set (on the event loop) while the index is complete."""
        if self._ready_async is None:
            self._ready_async = asyncio.Event()
        return self._ready_async

    def set_ready(self, ready: bool) -> None:
        """Mark the index complete (or being rebuilt)."""
        event = self.ready_event()
        if ready:
            self.ready.set()
            event.set()
        else:
            self.ready.clear()
            event.clear()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the index (answers that need the whole workspace wait for it)."""
        if self.ready.is_set():
            return
        try:
            await asyncio.wait_for(self.ready_event().wait(), timeout)
        except TimeoutError:
            log.warning("answering before the index is complete")

    # -- the index -----------------------------------------------------------------------------
    def build_index(self) -> WorkspaceIndex:
        """A fresh, empty index over the workspace folders with the current settings."""
        folders = self.folders()
        if not folders:
            for doc in self.workspace.text_documents.values():
                path = uri_to_path(doc.uri)
                if path:
                    folders.append(_implicit_folder(path))
                    break
        if self.counter is None or self.counter.name != self.settings.encoding:
            self.counter = TokenCounter(self.settings.encoding)
        workspace = Workspace(folders, self.settings.kinds, self.settings.exclude)
        old = self.index
        if old is not None:
            workspace.overlay.update(old.workspace.overlay)
        index = WorkspaceIndex(workspace, self.settings, self.counter, self.workers)
        # Its own Workspace: the index's is being filled by the indexing thread meanwhile.
        early = WorkspaceIndex(
            Workspace(folders, self.settings.kinds, self.settings.exclude),
            self.settings,
            self.counter,
        )
        with self.lock:
            self.early = early
            self.index = index
            self.generation += 1
            self.analysed_versions.clear()
        return index

    def load_settings(self, editor: dict[str, Any] | None) -> list[str]:
        """Merge the editor's settings over `.promptls.toml`; return problems to show."""
        if editor is not None:
            self.editor_settings = editor
        folders = self.folders()
        root = Path(folders[0]) if folders else Path.cwd()
        self.settings = load_settings(root, self.editor_settings)
        return list(self.settings.problems)

    def analysis(self, uri: str) -> FileAnalysis | None:
        """The analysis of the document's current version (analysing it now if needed)."""
        index = self.index
        path = self.path_of(uri)
        if index is None or path is None:
            return None
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            fa = index.get(path)
            if fa is None and os.path.isfile(path):
                index.update(path)
                fa = index.get(path)
            return fa
        if self.analysed_versions.get(uri) == doc.version:
            fa = index.get(path)
            if fa is not None and fa.version == doc.version:
                return fa
        self.reanalyse(uri)
        return index.get(path)

    def reanalyse(self, uri: str, *, staged: bool = False, notify: bool = True) -> set[str]:
        """Analyse the open document's current text; return the paths whose results changed.
        Whatever asked for it (a keystroke's debounce, a pull, a hover), the client then hears
        about every open document affected (`after_analysis`)."""
        index = self.index
        path = self.path_of(uri)
        doc = self.workspace.text_documents.get(uri)
        if index is None or path is None or doc is None:
            return set()
        started = time.perf_counter()
        with self.lock:
            index.workspace.overlay[path] = doc.source
            affected = index.update(path, doc.version)
            self.analysed_versions[uri] = doc.version if doc.version is not None else -1
        self.stats.record(time.perf_counter() - started)
        if notify and self.after_analysis is not None:
            self.after_analysis(uri, affected, staged)
        return affected

    def early_analysis(self, uri: str) -> FileAnalysis | None:
        """Before the index is complete: the open document's current version analysed on its own
        (see `WorkspaceIndex.analyse_alone`); None once the index is ready."""
        early = self.early
        path = self.path_of(uri)
        doc = self.workspace.text_documents.get(uri)
        if self.ready.is_set() or early is None or path is None or doc is None:
            return None
        started = time.perf_counter()
        early.workspace.overlay[path] = doc.source
        fa = early.analyse_alone(path, doc.version)
        self.stats.record(time.perf_counter() - started)
        return fa

    def line_index(self, fa: FileAnalysis) -> LineIndex:
        """The line index of an analysed file's text (kept while the analysis is current; for
        an open document, the one the protocol keeps up to date with its edits)."""
        cached = self._line_indexes.get(fa.path)
        if cached is not None and cached[0] is fa:
            return cached[1]
        text = fa.doc.text
        kept = self.protocol.line_indexes if isinstance(self.protocol, PromptProtocol) else {}
        index = next((i for i in kept.values() if i.text is text), None) or LineIndex(text)
        self._line_indexes[fa.path] = (fa, index)
        return index

    def open_uris(self) -> Iterable[str]:
        """URIs of the documents open in the editor."""
        return list(self.workspace.text_documents)

    def uri_of(self, path: str) -> str:
        """The URI to use for a path (the editor's own, when it has the file open)."""
        for uri in self.workspace.text_documents:
            if self.uri_path(uri) == path:
                return str(uri)
        return path_to_uri(path)


def _implicit_folder(path: str) -> str:
    """For a client without workspace folders: the framework holding the first opened file."""
    start = Path(path).parent
    for folder in (start, *start.parents):
        if (folder / ".claude").is_dir() or (folder / ".git").exists():
            return str(folder)
    return str(start)


def create_server() -> PromptLanguageServer:
    """A server with every feature registered, in order."""
    from promptls.lsp import (
        code_actions,
        diagnostics,
        hints,
        hover,
        links,
        report,
        status,
        symbols,
        sync,
        workspace,
    )

    server = PromptLanguageServer()
    for feature in (
        workspace,
        sync,
        diagnostics,
        symbols,
        links,
        hover,
        hints,
        code_actions,
        status,
        report,
    ):
        feature.register(server)
    return server


def serve(
    transport: str = "stdio", host: str = "127.0.0.1", port: int = 2087, workers: int = 0
) -> int:
    """Run the server until the client disconnects, with `workers` worker processes parsing
    files while the workspace is indexed (forked first: see `ForkedWorkers`)."""
    logging.basicConfig(level=logging.WARNING, format="promptls: %(levelname)s %(message)s")
    checkers = ForkedWorkers(workers, parse_on_worker)
    # Work runs on threads beside the event loop (indexing, the slow findings): hand the GIL
    # back to the loop every millisecond rather than every five, so a keystroke waits less.
    sys.setswitchinterval(0.001)
    _dump_threads_on_signal()
    # Load the encoding now, while the client starts and the handshake runs, rather than beside
    # the first index (building it holds the interpreter for about 0.1 s). cl100k_base is the
    # only encoding installed; were the settings to name another, the index would load it.
    _preload_encoding(Settings().encoding)
    server = create_server()
    server.workers = checkers
    try:
        if transport == "tcp":
            server.start_tcp(host, port)
        elif transport == "ws":
            server.start_ws(host, port)
        else:
            _start_io(server)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    else:
        code = 0
    end_process(code)


def _preload_encoding(name: str) -> None:
    """Load the tiktoken encoding `name` in a thread (the index's counter then finds it)."""
    from promptls.analysis.tokens import EncodingUnavailable, load_encoding

    def load() -> None:
        with contextlib.suppress(EncodingUnavailable):  # reported when settings are loaded
            load_encoding(name)

    threading.Thread(target=load, name="promptls-encoding", daemon=True).start()


def end_process(code: int) -> NoReturn:
    """End the process now, whatever the worker threads are doing (the slow findings of a huge
    file): the interpreter would wait for them at exit, and work still queued would try to write
    to a closed stdout. The client expects the process gone once it sent `exit`."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # the client closed the pipe
            stream.flush()
    os._exit(code)


def _start_io(server: PromptLanguageServer) -> None:
    """`server.start_io()`, reading stdin with the event loop's own pipe reader. pygls reads it
    on a worker thread, three hand-offs per message (header, blank line, body), each a thread
    to wake on a busy machine: a keystroke's `didChange` then waits for them before it is
    handled. A stdin that is not a pipe or a socket (a file, /dev/null) is read the pygls way."""
    from pygls.io_ import StdinAsyncReader, StdoutWriter, run_async

    stop = server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))

    async def read_messages() -> None:
        reader: Any = StdinAsyncReader(sys.stdin.buffer, server.thread_pool)
        if _is_pipe(sys.stdin.buffer):
            reader = asyncio.StreamReader()
            await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer
            )
        await run_async(
            stop_event=stop,
            reader=reader,
            protocol=server.protocol,
            logger=log,
            error_handler=server.report_server_error,
        )

    try:
        asyncio.run(read_messages())
    except BrokenPipeError:
        log.error("Connection to the client is lost! Shutting down the server.")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()  # type: ignore[no-untyped-call]


def _is_pipe(stream: Any) -> bool:
    """Whether `stream` is a pipe or a socket (what the event loop can watch)."""
    import stat

    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _dump_threads_on_signal() -> None:
    """`kill -USR1 <pid>` writes every thread's stack to stderr (the client's log): what a
    server that seems stuck is doing, without stopping it."""
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
