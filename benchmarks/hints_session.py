"""The scripted editing session of the hints issue, against the real server over stdio.

Open a command, type 100 one-character edits into it, and after each request its inlay hints and
code lens. Reports, from the server's own cache counters, the hit rate for the referenced
(unchanged) files' costs, and the warm hint latency against a request that does no work (an
inlay-hint request over an empty range on a blank line) measured in the same run.

    python benchmarks/hints_session.py [WORKSPACE] [COMMAND] [--edits N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lspclient import Session, summary

ROOT = Path(__file__).resolve().parent.parent


async def run(workspace: Path, command: Path, edits: int) -> dict[str, object]:
    session = Session(workspace, {"diagnosticsDelay": 0})
    await session.start()
    try:
        await session.wait_ready()
        uri = session.open(command)
        lines = command.read_text(encoding="utf-8").splitlines()
        blank = next(i for i, line in enumerate(lines) if not line.strip())
        end = len(lines) + 1
        await session.hints(uri, 0, end)  # warm: the first request computes every cost
        await session.lens(uri)
        before = (await session.stats())["cache"]
        hint_ms: list[float] = []
        empty_ms: list[float] = []
        lens_ms: list[float] = []
        for i in range(edits):
            session.insert(uri, blank, 0, "x" if i % 2 == 0 else " ")
            await session.client.protocol.send_request_async(  # absorbs the re-analysis
                "promptls/stats", None
            )
            await session.hints(uri, blank, blank)  # re-analysis happens here, not timed
            _, empty = await session.timed(session.hints(uri, blank, blank))
            result, hint = await session.timed(session.hints(uri, 0, end))
            _, lens = await session.timed(session.lens(uri))
            assert result, "the command must have resolved references"
            empty_ms.append(empty)
            hint_ms.append(hint)
            lens_ms.append(lens)
        after = (await session.stats())["cache"]
    finally:
        await session.stop()
    ref_before = before["byPurpose"].get("reference", {"hits": 0, "misses": 0})
    ref_after = after["byPurpose"]["reference"]
    hits = ref_after["hits"] - ref_before["hits"]
    misses = ref_after["misses"] - ref_before["misses"]
    hints = summary(hint_ms)
    empty = summary(empty_ms)
    return {
        "edits": edits,
        "referenceLookups": hits + misses,
        "referenceHitRate": hits / (hits + misses) if hits + misses else 0.0,
        "overallHitRate": after["hitRate"],
        "hintMs": hints,
        "emptyMs": empty,
        "lensMs": summary(lens_ms),
        "hintToEmptyP95": hints["p95"] / empty["p95"] if empty["p95"] else 0.0,
        "hintToEmptyMedian": hints["median"] / empty["median"] if empty["median"] else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", nargs="?", default=str(ROOT / "examples"))
    parser.add_argument("command", nargs="?", default=".claude/commands/full-review.md")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workspace = Path(args.workspace)
    result = asyncio.run(run(workspace, workspace / args.command, args.edits))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    h, e, lens = result["hintMs"], result["emptyMs"], result["lensMs"]
    assert isinstance(h, dict) and isinstance(e, dict) and isinstance(lens, dict)
    print(f"scripted session: {result['edits']} edits in {args.command}")
    print(
        f"  cache hit rate, referenced files   {result['referenceHitRate']:.1%}"
        f"  ({result['referenceLookups']} lookups; goal >= 95 %)"
    )
    print(f"  cache hit rate, all lookups        {result['overallHitRate']:.1%}")
    print(f"  warm inlay hints    median {h['median']:.2f} ms  p95 {h['p95']:.2f} ms")
    print(f"  empty request       median {e['median']:.2f} ms  p95 {e['p95']:.2f} ms")
    print(f"  code lens           median {lens['median']:.2f} ms  p95 {lens['p95']:.2f} ms")
    print(
        f"  hints / empty       median {result['hintToEmptyMedian']:.2f}x"
        f"  p95 {result['hintToEmptyP95']:.2f}x  (goal <= 2x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
