"""A small driver for the real promptls server over stdio, shared by the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.protocol import LanguageServerProtocol


def plain(value: Any) -> Any:
    """pygls hands untyped payloads over as named tuples: make them plain dicts."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class _ArrivalProtocol(LanguageServerProtocol):
    """Notes when each publishDiagnostics and each response arrived: when its body was read
    from the server's pipe (`read_at`, set by `Session.start`), before this client decodes it.
    The decode is client-side work that an editor does its own, much faster way, and no part of
    the server's latency: pygls's JSON object hook, called for every object in the message
    (0.3–0.4 ms for the 40 diagnostics of the real framework's `CLAUDE.md`, where an editor's
    native JSON parser takes microseconds), then lsprotocol objects built with cattrs (about
    1 ms for 50 diagnostics). How long the decode took is kept too (`decode_ms`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_at = 0.0
        """When the body of the message being decoded was read."""
        self.arrivals: dict[tuple[str, int | None], float] = {}
        self.answered: dict[Any, float] = {}
        """Request id -> when its response arrived (taken by `Session.timed`)."""
        self.decode_ms: list[float] = []
        """Milliseconds from reading each publishDiagnostics to its JSON decoded."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        # The JSON decoder's object hook: called for the message itself after everything in it.
        if "jsonrpc" in data:
            now = time.perf_counter()
            read = self.read_at or now
            if data.get("method") == types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS:
                params = data.get("params") or {}
                self.arrivals[(params.get("uri"), params.get("version"))] = read
                self.decode_ms.append((now - read) * 1000)
            elif "method" not in data and "id" in data:
                self.answered[data["id"]] = read
        return super().structure_message(data)

    def watch(self, stream: asyncio.StreamReader) -> None:
        """Note when each message body is read from `stream` (the server's stdout, which
        pygls reads the body of each message from with `readexactly`)."""
        read = stream.readexactly

        async def readexactly(n: int) -> bytes:
            body = await read(n)
            self.read_at = time.perf_counter()
            return body

        stream.readexactly = readexactly  # type: ignore[method-assign]


class Session:
    """One server process and a client speaking to it."""

    def __init__(self, root: Path, settings: dict[str, Any] | None = None) -> None:
        self.root = root.resolve()
        self.client = LanguageClient("promptls-bench", "1", protocol_cls=_ArrivalProtocol)
        self.settings = settings or {}
        self.versions: dict[str, int] = {}
        self.published: dict[str, int | None] = {}
        self.events: dict[str, asyncio.Event] = {}
        self.publish_log: list[tuple[float, str, int | None, frozenset[str]]] = []
        """(perf_counter, uri, version, codes) of every publishDiagnostics, in arrival order."""
        self.stderr: deque[str] = deque(maxlen=200)
        """The last lines the server wrote to stderr (drained, so the pipe never fills)."""
        self.spawned_at = 0.0
        self.initialized_at = 0.0

        @self.client.feature(types.WORKSPACE_CONFIGURATION)
        def _configuration(params: types.ConfigurationParams) -> list[Any]:
            return [self.settings for _ in params.items]

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _published(params: types.PublishDiagnosticsParams) -> None:
            codes = frozenset(str(d.code) for d in params.diagnostics if d.code is not None)
            protocol = self.client.protocol
            assert isinstance(protocol, _ArrivalProtocol)
            arrived = protocol.arrivals.pop((params.uri, params.version), None)
            arrived = arrived or time.perf_counter()
            self.publish_log.append((arrived, params.uri, params.version, codes))
            self.published[params.uri] = params.version
            event = self.events.get(params.uri)
            if event is not None:
                event.set()

        for method in (
            types.WINDOW_WORK_DONE_PROGRESS_CREATE,
            types.CLIENT_REGISTER_CAPABILITY,
            types.WORKSPACE_INLAY_HINT_REFRESH,
            types.WORKSPACE_CODE_LENS_REFRESH,
        ):
            self.client.feature(method)(lambda params: None)
        for method in (
            types.PROGRESS,
            types.WINDOW_LOG_MESSAGE,
            types.WINDOW_SHOW_MESSAGE,
            "promptls/status",
        ):
            self.client.feature(method)(lambda params: None)

    async def start(self, command: list[str] | None = None) -> float:
        """Start the server and initialise; returns seconds until `initialize` answered."""
        cmd = command or [sys.executable, "-m", "promptls"]
        started = self.spawned_at = time.perf_counter()
        await self.client.start_io(*cmd)
        process = self.client._server
        protocol = self.client.protocol
        if process is not None and process.stdout is not None:
            assert isinstance(protocol, _ArrivalProtocol)
            protocol.watch(process.stdout)  # (before pygls's reading task first runs)
        if process is not None and process.stderr is not None:
            self._drain = asyncio.create_task(self._drain_stderr(process.stderr))
        capabilities = types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(configuration=True),
            window=types.WindowClientCapabilities(work_done_progress=True),
            text_document=types.TextDocumentClientCapabilities(
                inlay_hint=types.InlayHintClientCapabilities(),
                code_lens=types.CodeLensClientCapabilities(),
                hover=types.HoverClientCapabilities(),
            ),
        )
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=capabilities,
                root_uri=self.root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=self.root.as_uri(), name="bench")],
            )
        )
        elapsed = time.perf_counter() - started
        self.initialized_at = time.perf_counter()
        self.client.initialized(types.InitializedParams())
        return elapsed

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    @property
    def pid(self) -> int | None:
        """The server process's id."""
        process = self.client._server
        return process.pid if process is not None else None

    def cpu(self, pids: Sequence[int] = ()) -> dict[str, float]:
        """CPU seconds (user and system) used so far by the server and the processes `pids`
        (its workers), from /proc: {"<pid>": seconds} for each process (its threads that ended
        included) and {"<pid>/<tid>": seconds} for each of its threads running now. Clock ticks,
        so each figure is good to about 10 ms; {} where /proc has no such files."""
        ticks = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        for pid in (self.pid, *pids):
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for name, path in [(f"{pid}", f"/proc/{pid}/stat")] + [
                (f"{pid}/{task}", f"/proc/{pid}/task/{task}/stat") for task in tasks
            ]:
                try:
                    with open(path, encoding="ascii") as stat:
                        fields = stat.read().rpartition(")")[2].split()
                except OSError:
                    continue  # (a thread that ended meanwhile)
                out[name] = (int(fields[11]) + int(fields[12])) / ticks
        return out

    def memory(self, pid: int | None = None) -> dict[str, float]:
        """The server's (or process `pid`'s) resident memory from /proc, in MB: `rss` (VmRSS),
        `peak` (VmHWM) and `pss` (its proportional share of pages shared with other processes,
        such as a forked worker's with the server)."""
        pid = self.pid if pid is None else pid
        out: dict[str, float] = {}
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss" if key == "VmRSS" else "peak"] = int(value.split()[0]) / 1024
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        out["pss"] = int(line.split()[1]) / 1024
        except OSError:
            pass
        return out

    async def stats(self) -> dict[str, Any]:
        """`promptls/stats`."""
        result = plain(await self.client.protocol.send_request_async("promptls/stats", None))
        assert isinstance(result, dict)
        return result

    async def wait_ready(self, timeout: float = 600) -> None:
        """Until the background index is complete."""
        deadline = time.monotonic() + timeout
        while not (await self.stats()).get("indexReady"):
            if time.monotonic() > deadline:
                raise TimeoutError("index not ready")
            await asyncio.sleep(0.01)

    def open(self, path: Path, text: str | None = None) -> str:
        """Open a file (version 1, its text on disk unless given); returns its URI."""
        uri = path.resolve().as_uri()
        self.versions[uri] = 1
        self.events[uri] = asyncio.Event()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri,
                    language_id="markdown",
                    version=1,
                    text=path.read_text(encoding="utf-8") if text is None else text,
                )
            )
        )
        return uri

    def insert(self, uri: str, line: int, character: int, text: str) -> int:
        """An incremental edit; returns the new version. The message is sent as plain JSON, not
        built through pygls's lsprotocol objects and cattrs (0.2 ms a keystroke in this
        process, which an editor does not spend): the edit figure is the server's."""
        version = self.versions[uri] + 1
        self.versions[uri] = version
        self.events[uri] = asyncio.Event()
        at = {"line": line, "character": character}
        self.client.protocol._send_data(
            {
                "jsonrpc": "2.0",
                "method": types.TEXT_DOCUMENT_DID_CHANGE,
                "params": {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
                },
            }
        )
        return version

    async def published_version(self, uri: str, version: int, timeout: float = 30) -> None:
        """Until diagnostics for `version` of `uri` are pushed."""
        deadline = time.monotonic() + timeout
        while self.published.get(uri) != version:
            event = self.events.setdefault(uri, asyncio.Event())
            event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no diagnostics for version {version}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def hints(self, uri: str, start: int, end: int) -> list[types.InlayHint]:
        """Inlay hints for lines [start, end)."""
        result = await self.client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(
                    start=types.Position(line=start, character=0),
                    end=types.Position(line=end, character=0),
                ),
            )
        )
        return list(result or [])

    async def lens(self, uri: str) -> list[types.CodeLens]:
        """Code lenses."""
        result = await self.client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        return list(result or [])

    async def hover(self, uri: str, line: int, character: int) -> types.Hover | None:
        """Hover."""
        return await self.client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
            )
        )

    async def timed(self, request: Any) -> tuple[Any, float]:
        """(result, milliseconds) of one request awaited alone: from before it is sent to its
        response read from the pipe (see `_ArrivalProtocol`)."""
        protocol = self.client.protocol
        assert isinstance(protocol, _ArrivalProtocol)
        protocol.answered.clear()
        started = time.perf_counter()
        result = await request
        arrived = max(protocol.answered.values(), default=None) or time.perf_counter()
        return result, (arrived - started) * 1000

    async def stop(self) -> None:
        """Shut the server down (and kill it if it does not end within 10 s)."""
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        finally:
            process = self.client._server
            try:
                await asyncio.wait_for(self.client.stop(), 10)
            except TimeoutError:
                if process is not None and process.returncode is None:
                    process.kill()
                    await process.wait()


def summary(values: list[float]) -> dict[str, float]:
    """Median and p95."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p95": p95}
