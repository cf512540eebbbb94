"""How the core analyses keystrokes typed anywhere in a workspace, and what each way costs.

Opens every prompt file of the workspace larger than `--min-chars` as an editor buffer, one at a
time, and types into it at random places (the same for the same seed): a letter after a letter,
a line break after a letter, and a Backspace at the start of a line (two lines joined). After
each keystroke `WorkspaceIndex.update` analyses the new text, as the server does, and its
`edits` counters tell how: the previous analysis shifted, one XML region checked again (the
rest shifted), or the file parsed again. Prints, for each kind of keystroke, the share of each
way and its time (median and p95 of `update`), next to one full tiktoken encode of the same
files (the reference of the edit-latency figure in `run.py`), measured in the same run.

    python benchmarks/keystrokes.py [WORKSPACE] [--per-file 15] [--min-chars 5000] [--seed 1]

Without WORKSPACE, the generated workspace of `run.py` (600 files, 1,000,000 tokens, made and
cached as `run.py` does).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import make_workspace  # (the benchmarks' generated workspace)
import run  # (and their helpers for the core)

WAYS = ("shifted", "region", "parsed")
KINDS = ("letter", "line break", "lines joined")


def keystroke(rng: random.Random, text: str, kind: str) -> str | None:
    """`text` with one keystroke of `kind` typed at a random place (None: no place for it)."""
    if kind == "lines joined":
        spots = [i for i in range(1, len(text)) if text[i - 1] == "\n" and text[i : i + 1] != ""]
        if not spots:
            return None
        at = rng.choice(spots)
        return text[: at - 1] + text[at:]
    spots = [i for i in range(1, len(text)) if text[i - 1].isalpha()]
    if not spots:
        return None
    at = rng.choice(spots)
    return text[:at] + ("x" if kind == "letter" else "\n") + text[at:]


def measure(workspace: Path, per_file: int, min_chars: int, seed: int) -> dict[str, object]:
    index = run.open_core(workspace)
    index.index()
    encoding = run.reference_encoding()
    rng = random.Random(seed)
    # (ms, ms of one full encode of the file) of each keystroke, by kind and way
    times: dict[tuple[str, str], list[tuple[float, float]]] = {
        (k, w): [] for k in KINDS for w in WAYS
    }
    encodes: list[float] = []
    paths = sorted(p for p, fa in index.files.items() if len(fa.doc.text) >= min_chars)
    version = 0
    for path in paths:
        original = index.files[path].doc.text
        encode = min(run.encode_ms(encoding, original) for _ in range(3))
        encodes.append(encode)
        for kind in KINDS:
            text = original
            index.workspace.overlay[path] = text
            index.update(path, version := version + 1)
            for _ in range(per_file):
                edited = keystroke(rng, text, kind)
                if edited is None:
                    break
                text = edited
                index.workspace.overlay[path] = text
                before = dict(index.edits)
                started = time.perf_counter()
                index.update(path, version := version + 1)
                elapsed = (time.perf_counter() - started) * 1000
                way = next(w for w in WAYS if index.edits[w] != before[w])
                times[(kind, way)].append((elapsed, encode))
        index.workspace.overlay.pop(path, None)
        index.update(path)
    return {"files": len(paths), "times": times, "encodes": encodes}


def p95(values: list[float]) -> float:
    """The 95th percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def table(result: dict[str, object]) -> str:
    times = result["times"]
    encodes = result["encodes"]
    assert isinstance(times, dict) and isinstance(encodes, list)
    rows = [
        "| keystroke | way | share | median | p95 | ratio to a full encode of the file, median"
        " (p95) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        total = sum(len(times[(kind, w)]) for w in WAYS)
        for way in WAYS:
            pairs = times[(kind, way)]
            if not pairs:
                continue
            ms = [t for t, _ in pairs]
            ratios = [t / e for t, e in pairs]
            rows.append(
                f"| {kind} | {way} | {len(pairs) / total:.0%} | {statistics.median(ms):.2f} ms"
                f" | {p95(ms):.2f} ms | {statistics.median(ratios):.2f}x ({p95(ratios):.2f}x) |"
            )
    rows.append(
        f"\nReference: one full tiktoken encode of each file typed into (the fastest of three),"
        f" median {statistics.median(encodes):.2f} ms ({result['files']} files)."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("workspace", nargs="?", type=Path)
    parser.add_argument("--per-file", type=int, default=15, help="keystrokes of each kind a file")
    parser.add_argument("--min-chars", type=int, default=5000, help="files at least this large")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    workspace = args.workspace or make_workspace.ensure(600, 1_000_000, args.seed)[0]
    result = measure(workspace.resolve(), args.per_file, args.min_chars, args.seed)
    print(table(result))


if __name__ == "__main__":
    main()
