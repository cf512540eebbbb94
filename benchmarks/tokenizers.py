"""Tokenizers side by side: promptls's cold index and three tokenizers on the same files, in the
same run.

    python benchmarks/tokenizers.py [WORKSPACE] [--runs N] [--json PATH]

WORKSPACE defaults to the generated workspace of `run.py` (600 files, about 1,006,000 tokens,
seed 1, cached under `benchmarks/.cache/`). The texts are those `run.py`'s reference reads: every
file the core's index holds (the prompt files and the files they load), as `workspace_texts`
decodes them. Rows, each run N times (default 5), interleaved: one run of every row per round,
the order rotated from one round to the next, so that load coming and going hits all alike.

1. tiktoken `encode_ordinary` over each text on one thread (the encoding from
   `promptls.analysis.tokens.load_encoding`, never downloaded): the reference of every ratio.
2. tiktoken `encode_ordinary_batch` over the texts, one thread per core.
3. gpt-tokenizer (npm) `countTokens` of its `cl100k_base` encoding module, special tokens in the
   text counted as ordinary text (none allowed, none disallowed), as `encode_ordinary` does; and
   the same with its merge cache (kept from call to call) emptied, untimed, before each pass.
4. js-tiktoken (npm) `encode(text, [], []).length` with `js-tiktoken/lite` and its bundled
   `cl100k_base` ranks, likewise.
5. promptls server cold index: `initialized` to `indexReady`, a fresh server each run
   (`run.server_cold_index`).
6. promptls core cold index: `index()` plus every file's findings, as `check` does it, in this
   process (`run.core_cold_index`).
7. `promptls check WORKSPACE --format json`, the whole process from spawn to exit, its output
   discarded.

Each node tokenizer runs in one node process for the whole benchmark, which loads the module
(timed once), reads the texts from a JSON file, counts them all once to warm up, then counts
them all again each time it is told to, timing only that loop with `performance.now()`. The
packages are installed once with `npm install --prefix benchmarks/.cache/<name>` at pinned
versions; without npm or node, or when the install fails, their rows are skipped with a note.

Every row's counts are compared with tiktoken's file by file (the server's by its total only:
`promptls/stats` reports no per-file counts); a row that disagrees says on how many files and by
how many tokens in all. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_workspace
import run
from npm import install
from promptls.analysis.tokens import load_encoding
from run import log

#: `run.py`'s default workspace: 600 files, 1,000,000 tokens, seed 1.
FILES, TOKENS, SEED = 600, 1_000_000, 1
#: The npm packages, pinned.
NODE_TOOLS: dict[str, str] = {"gpt-tokenizer": "4.0.0", "js-tiktoken": "1.0.21"}

NODE_SCRIPT = """\
// Written by benchmarks/tokenizers.py into the package's install folder, so that the imports
// below resolve through that folder's node_modules as they would in a user's project.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

const [, , tool, inputPath] = process.argv;
const loading = performance.now();
let count;
let clear = null;
if (tool === "gpt-tokenizer") {
  const { countTokens, clearMergeCache } = await import("gpt-tokenizer/encoding/cl100k_base");
  clear = clearMergeCache;
  // Special tokens in the text are ordinary text, as in tiktoken's encode_ordinary: none is
  // allowed (the default) and none is disallowed (by default any one found throws).
  const options = { disallowedSpecial: new Set() };
  count = (text) => countTokens(text, options);
} else if (tool === "js-tiktoken") {
  const { Tiktoken } = await import("js-tiktoken/lite");
  const { default: ranks } = await import("js-tiktoken/ranks/cl100k_base");
  const encoding = new Tiktoken(ranks);
  // No special token allowed, none disallowed (the default "all" throws on one): ordinary text.
  count = (text) => encoding.encode(text, [], []).length;
} else {
  throw new Error(`unknown tokenizer ${tool}`);
}
const loadMs = performance.now() - loading;
const texts = JSON.parse(readFileSync(inputPath, "utf8"));

function countAll() {
  const counts = new Array(texts.length);
  for (let i = 0; i < texts.length; i++) counts[i] = count(texts[i]);
  return counts;
}

const send = (message) => process.stdout.write(JSON.stringify(message) + "\\n");
let started = performance.now();
const counts = countAll();
const warmupMs = performance.now() - started;
send({ node: process.version, loadMs, warmupMs, counts, clears: clear !== null });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "cold" && clear !== null) clear();  // a pass with the merge cache emptied
  else if (line !== "run") break;
  started = performance.now();
  const again = countAll();
  const ms = performance.now() - started;
  send({ ms, same: again.every((n, i) => n === counts[i]) });
}
"""


@dataclass
class Row:
    key: str
    title: str
    measure: Callable[[], float]
    """One run: its wall seconds."""
    times: list[float] = field(default_factory=list)
    counts: dict[str, int] | None = None
    """Tokens per file (relative path), when the row reports them."""
    total: int | None = None
    """Tokens in all, when the row reports only that (the server)."""
    files: int | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    node: bool = False
    """Counted by a node process: a failure drops the row instead of ending the benchmark."""

    @property
    def tokens(self) -> int | None:
        return sum(self.counts.values()) if self.counts is not None else self.total


# -- node -----------------------------------------------------------------------------------------
class NodeTokenizer:
    """One node process counting the texts with one npm tokenizer, a pass at each `run()`."""

    def __init__(self, name: str, prefix: Path, node: str, inputs: Path, errors: IO[str]) -> None:
        self.name = name
        self.errors = errors
        script = prefix / "tokenize.mjs"
        script.write_text(NODE_SCRIPT, encoding="utf-8")
        self.process = subprocess.Popen(
            [node, str(script), name, str(inputs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=prefix,
        )
        ready = self._receive()
        self.node: str = ready["node"]
        self.load_ms: float = ready["loadMs"]
        self.warmup_ms: float = ready["warmupMs"]
        self.counts: list[int] = ready["counts"]
        self.clears: bool = ready["clears"]
        """Whether it keeps a cache between passes that `run(cold=True)` empties first."""

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.errors.flush()
            self.errors.seek(0)
            message = self.errors.read().strip().splitlines()
            raise RuntimeError(
                f"node exited ({self.process.returncode}): {' / '.join(message[-3:])[:400]}"
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, cold: bool = False) -> float:
        """Seconds of one pass over the texts, as node timed it (`cold`: its cache emptied
        first, untimed)."""
        assert self.process.stdin is not None
        self.process.stdin.write("cold\n" if cold else "run\n")
        self.process.stdin.flush()
        answer = self._receive()
        if not answer["same"]:
            raise RuntimeError(f"{self.name}: counts changed from one pass to the next")
        return float(answer["ms"]) / 1000

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(OSError):  # a node that has died
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()


def node_tokenizers(
    inputs: Path, errors_dir: Path
) -> tuple[list[NodeTokenizer], list[str], str | None]:
    """The node tokenizers that could be started, the notes on those that could not, and node's
    version."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return [], ["gpt-tokenizer and js-tiktoken skipped: npm or node is not installed"], None
    tools: list[NodeTokenizer] = []
    notes: list[str] = []
    for name, version in NODE_TOOLS.items():
        prefix, why = install(name, version, npm)
        if prefix is None:
            notes.append(f"{name} skipped: {why}")
            continue
        errors = (errors_dir / f"{name}.stderr").open("w+", encoding="utf-8")
        try:
            tools.append(NodeTokenizer(name, prefix, node, inputs, errors))
        except (RuntimeError, OSError, ValueError, KeyError) as error:
            notes.append(f"{name} skipped: {error}")
            errors.close()
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return tools, notes, version or None


# -- the rows -------------------------------------------------------------------------------------
def agreement(row: Row, reference: dict[str, int]) -> dict[str, Any]:
    """How the row's counts compare with tiktoken's: file by file, or in all."""
    ref_total = sum(reference.values())
    if row.counts is None:
        if row.total is None:
            return {"compared": "none"}
        return {
            "compared": "total",
            "files": row.files,
            "referenceFiles": len(reference),
            "difference": row.total - ref_total,
        }
    differ = sorted(
        (path, reference.get(path), row.counts.get(path))
        for path in set(reference) | set(row.counts)
        if reference.get(path) != row.counts.get(path)
    )
    return {
        "compared": "files",
        "files": len(row.counts),
        "referenceFiles": len(reference),
        "differ": len(differ),
        "difference": sum(row.counts.values()) - ref_total,
        "absoluteDifference": sum(abs((c or 0) - (r or 0)) for _, r, c in differ),
        "examples": [{"path": p, "tiktoken": r, "row": c} for p, r, c in differ[:5]],
    }


def agreement_text(a: dict[str, Any]) -> str:
    if a["compared"] == "none":
        return "not reported"
    diff = a["difference"]
    if a["compared"] == "total":
        same_files = a["files"] == a["referenceFiles"]
        files = f"{a['files']} files" + ("" if same_files else f" (tiktoken {a['referenceFiles']})")
        if diff == 0 and same_files:
            return f"total agrees ({files}; per file not reported)"
        return f"total differs by {diff:+,} ({files}; per file not reported)"
    if a["differ"] == 0:
        return f"agree on all {a['files']} files"
    return (
        f"**differ on {a['differ']} of {a['referenceFiles']} files: {diff:+,} tokens in all, "
        f"{a['absoluteDifference']:,} apart file by file**"
    )


def wait_for_one_thread(limit: float = 2.0) -> bool:
    """Whether this process runs one thread (the core forks its worker processes only then),
    after waiting up to `limit` seconds for threads that are ending (a subprocess's watcher)."""
    deadline = time.perf_counter() + limit
    while threading.active_count() > 1 and time.perf_counter() < deadline:
        time.sleep(0.01)
    return threading.active_count() == 1


def measure(workspace: Path, runs: int) -> dict[str, Any]:
    started = time.perf_counter()
    info = run.machine()
    root = workspace.resolve()

    def rel(path: str) -> str:
        return Path(path).resolve().relative_to(root).as_posix()

    # The files the index reads, as run.py's reference reads them (this also warms the disk
    # cache and this process's imports for every row).
    _, index = run.core_cold_index(workspace)
    paths = sorted(index.files)
    del index
    texts = run.workspace_texts(workspace, paths)
    names = [rel(p) for p in paths]
    if not texts:
        raise SystemExit(f"{workspace}: no prompt files to index")
    log(f"{len(texts)} files, {sum(map(len, texts)):,} characters")

    encoding = load_encoding("cl100k_base")
    cores = os.cpu_count() or 1
    reference = dict(zip(names, (len(encoding.encode_ordinary(t)) for t in texts), strict=True))
    batch = encoding.encode_ordinary_batch(texts, num_threads=cores)  # warm up too

    def tiktoken_one() -> float:
        gc.collect()
        began = time.perf_counter()
        for text in texts:
            encoding.encode_ordinary(text)
        return time.perf_counter() - began

    def tiktoken_batch() -> float:
        gc.collect()
        began = time.perf_counter()
        encoding.encode_ordinary_batch(texts, num_threads=cores)
        return time.perf_counter() - began

    rows = [
        Row(
            "tiktoken",
            "tiktoken `encode_ordinary`, 1 thread (reference)",
            tiktoken_one,
            counts=reference,
        ),
        Row(
            "tiktoken_batch",
            f"tiktoken `encode_ordinary_batch`, {cores} threads",
            tiktoken_batch,
            counts=dict(zip(names, map(len, batch), strict=True)),
        ),
    ]
    del batch

    tmp = Path(tempfile.mkdtemp(prefix="promptls-tokenizers-"))
    tools: list[NodeTokenizer] = []
    skipped: list[str] = []
    node_version: str | None = None
    try:
        inputs = tmp / "texts.json"
        inputs.write_text(json.dumps(texts), encoding="utf-8")
        tools, skipped, node_version = node_tokenizers(inputs, tmp)
        for note in skipped:
            log(note)
        titles = {
            "gpt-tokenizer": "gpt-tokenizer {v} `countTokens` (node, encoding loop only)",
            "js-tiktoken": "js-tiktoken {v} `encode(text, [], [])` (node, encoding loop only)",
        }
        for tool in tools:
            log(
                f"{tool.name}: module loaded in {tool.load_ms:.0f} ms, first pass (warm-up) "
                f"{tool.warmup_ms:.0f} ms"
            )
            rows.append(
                Row(
                    tool.name,
                    titles[tool.name].format(v=NODE_TOOLS[tool.name]),
                    tool.run,
                    counts=dict(zip(names, tool.counts, strict=True)),
                    extra={
                        "loadMs": round(tool.load_ms, 1),
                        "warmupMs": round(tool.warmup_ms, 1),
                        "version": NODE_TOOLS[tool.name],
                    },
                    node=True,
                )
            )
            if tool.clears:
                rows.append(
                    Row(
                        f"{tool.name}_cold",
                        titles[tool.name].format(v=NODE_TOOLS[tool.name])
                        + ", its merge cache emptied before each pass",
                        functools.partial(tool.run, cold=True),
                        counts=dict(zip(names, tool.counts, strict=True)),
                        node=True,
                    )
                )

        server_stats: list[dict[str, Any]] = []

        def server() -> float:
            # An event loop of its own each run: the rounds below are synchronous.
            seconds, _, stats = asyncio.run(run.server_cold_index(workspace))
            server_stats.append(stats)
            return seconds

        forked: list[bool] = []

        def core() -> float:
            forked.append(wait_for_one_thread())
            seconds, index = run.core_cold_index(workspace)
            core_row.counts = {rel(p): fa.raw_tokens for p, fa in index.files.items()}
            del index
            return seconds

        # The command line installed beside this interpreter (the venv's), else on the PATH.
        beside = Path(sys.executable).with_name("promptls")
        promptls = str(beside) if beside.exists() else shutil.which("promptls") or str(beside)
        command = [promptls, "check", str(workspace), "--format", "json"]

        def check() -> float:
            began = time.perf_counter()
            done = subprocess.run(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
            )
            took = time.perf_counter() - began
            if done.returncode not in (0, 1):  # 1: findings
                raise RuntimeError(f"promptls check exited {done.returncode}: {done.stderr!r}")
            return took

        server_row = Row("server", "promptls server cold index (initialized → indexReady)", server)
        core_row = Row("core", "promptls core cold index (index() + findings(), as `check`)", core)
        check_row = Row("check", "`promptls check --format json` (whole process)", check)
        # The check's counts, from one run before the timed ones (output kept).
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode in (0, 1):
            report = json.loads(done.stdout)
            check_row.counts = {f["path"]: f["rawTokens"] for f in report["files"]}
        else:
            check_row.notes.append(f"its counts unknown: exit {done.returncode}")
        rows += [server_row, core_row, check_row]

        # The rounds: one run of each row, the order rotated each round.
        failed: dict[str, str] = {}
        for i in range(runs):
            shift = i % len(rows)
            for row in rows[shift:] + rows[:shift]:
                if row.key in failed:
                    continue
                try:
                    row.times.append(row.measure())
                except (RuntimeError, OSError, ValueError, KeyError) as error:
                    if not row.node:
                        raise
                    failed[row.key] = str(error)
                    log(f"{row.key} dropped: {error}")
            log(
                f"round {i + 1}/{runs}: "
                + ", ".join(f"{r.key} {r.times[-1]:.3f} s" for r in rows if r.key not in failed)
            )
        rows = [r for r in rows if r.key not in failed]
        skipped += [f"{key} dropped during the rounds: {why}" for key, why in failed.items()]
    finally:
        for tool in tools:
            tool.close()
        shutil.rmtree(tmp, ignore_errors=True)

    last = server_stats[-1]
    server_row.total = last["index"]["rawTokens"]
    server_row.files = last["index"]["files"]
    totals = {s["index"]["rawTokens"] for s in server_stats}
    if len(totals) > 1:
        server_row.notes.append(f"its totals varied between runs: {sorted(totals)}")
    server_row.extra["serverIndexingSeconds"] = [s["indexingSeconds"] for s in server_stats]
    core_row.extra["compressionProcesses"] = [cores if f else 1 for f in forked]

    ref_times = rows[0].times
    out_rows = []
    for row in rows:
        per_round = [t / r for t, r in zip(row.times, ref_times, strict=True)]
        out_rows.append(
            {
                "key": row.key,
                "title": row.title,
                "runs": [round(t, 4) for t in row.times],
                "median": statistics.median(row.times),
                "min": min(row.times),
                "ratio": statistics.median(per_round),
                "ratioOfMedians": statistics.median(row.times) / statistics.median(ref_times),
                "tokens": row.tokens,
                "agreement": agreement(row, reference),
                "notes": row.notes,
                **row.extra,
            }
        )
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": info
        | {
            "node": node_version,
            **{f"npm:{name}": v for name, v in NODE_TOOLS.items()},
            "loadAverage1mAtEnd": round(os.getloadavg()[0], 2),
        },
        "workspace": {
            "path": str(workspace),
            "files": len(texts),
            "characters": sum(map(len, texts)),
            "tokens": sum(reference.values()),
        },
        "runs": runs,
        "rows": out_rows,
        "skipped": skipped,
    }


def table(results: dict[str, Any]) -> str:
    m, w = results["machine"], results["workspace"]
    lines = [
        f"promptls {m['promptls']} ({m['commit']}), {m['cores']} cores ({m['cpu']}), "
        f"Python {m['python']}, tiktoken {m['tiktoken']}, node {m['node'] or 'not installed'}; "
        f"load average {m['loadAverage1mAtStart']} at the start, {m['loadAverage1mAtEnd']} at "
        "the end",
        f"workspace {w['path']}: {w['files']} files, {w['characters']:,} characters, "
        f"{w['tokens']:,} tokens (tiktoken cl100k_base); {results['runs']} round(s), one run of "
        f"each row per round, the order rotated; {results['seconds']:.0f} s in all",
        "",
        "| row | median | min | ratio to tiktoken, 1 thread | tokens counted "
        "| counts against tiktoken's |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in results["rows"]:
        tokens = f"{r['tokens']:,}" if r["tokens"] is not None else "?"
        agree = "(reference)" if r["key"] == "tiktoken" else agreement_text(r["agreement"])
        lines.append(
            f"| {r['title']} | {r['median']:.3f} s | {r['min']:.3f} s | {r['ratio']:.2f}× "
            f"| {tokens} | {agree} |"
        )
    lines += [
        "",
        "Ratio: the median of the per-round ratios, each run against the reference's run in the "
        "same round (the ratios of the medians are in the JSON).",
    ]
    by_key = {r["key"]: r for r in results["rows"]}
    node_rows = [by_key[k] for k in NODE_TOOLS if k in by_key]
    if node_rows:
        lines.append(
            "node rows: only the loop counting every text, timed inside node with "
            "`performance.now()` (not node's start, the module's load or reading the texts), "
            "after one warm-up pass; one node process per tokenizer for the whole run. "
            + "; ".join(
                f"{r['key']}: module loaded in {r['loadMs']:.0f} ms, warm-up pass "
                f"{r['warmupMs']:.0f} ms"
                for r in node_rows
            )
            + "."
        )
    if "gpt-tokenizer" in by_key:
        lines.append(
            "gpt-tokenizer keeps a cache of merged pieces (100,000 entries by default) across "
            "calls: its first row's passes find in it what the passes before put there; the "
            "row with the cache emptied (`clearMergeCache()`, untimed) before each pass shows "
            "the count of texts it has not seen."
        )
    if "server" in by_key:
        idx = by_key["server"]["serverIndexingSeconds"]
        lines.append(
            "server: a fresh server process each run (its default worker processes); the "
            f"server's own `indexingSeconds` median {statistics.median(idx):.3f} s; its counts "
            "are `promptls/stats`' total."
        )
    if "core" in by_key:
        procs = by_key["core"]["compressionProcesses"]
        lines.append(
            "core: in the benchmark's process, the encoding already loaded; compressions on "
            f"{max(procs)} worker process(es)"
            + (" (in every run)" if len(set(procs)) == 1 else f" (per run: {procs})")
            + "."
        )
    if "check" in by_key:
        lines.append(
            "check: spawn to exit (interpreter start, imports, encoding load, index, findings, "
            "JSON written to /dev/null); its counts come from one untimed run before."
        )
    for r in results["rows"]:
        a = r["agreement"]
        if a.get("compared") == "files" and a["differ"]:
            shown = ", ".join(f"{e['path']} ({e['tiktoken']} → {e['row']})" for e in a["examples"])
            lines.append(f"{r['key']} differs from tiktoken on {a['differ']} files: {shown}")
        for note in r["notes"]:
            lines.append(f"{r['key']}: {note}")
    lines += results["skipped"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "workspace",
        nargs="?",
        help="the files to count (default: run.py's generated 1M-token workspace)",
    )
    parser.add_argument("--runs", type=int, default=5, help="rounds (5)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    if args.workspace:
        workspace = Path(args.workspace).resolve()
        if not workspace.is_dir():
            parser.error(f"{workspace}: not a folder")
    else:
        workspace, _ = make_workspace.ensure(FILES, TOKENS, SEED)
    results = measure(workspace, args.runs)
    print(table(results))
    if args.json:
        Path(args.json).write_text(
            json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
