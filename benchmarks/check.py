"""The regression gate: compare `results.json` (from `make bench`) with `baseline.json`.

    python benchmarks/check.py [--results PATH] [--baseline PATH] [--threshold 0.10] [--update]

Every figure is compared in ratio terms (the figure over its reference measured in the same run,
so a slower or busier machine moves both): a ratio more than `--threshold` (10 %) above the
baseline's is a regression. Lower ratios are better for every figure. Prints each figure's
baseline ratio, current ratio and change; exits 1 when a figure regressed or is missing from the
results, 0 otherwise (2 when a file cannot be read). `--update` writes the results as the new
baseline after the comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def figures(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries of a results file that are figures (they have a ratio)."""
    return {k: v for k, v in data.items() if isinstance(v, dict) and "ratio" in v}


def compare(
    baseline: dict[str, Any], results: dict[str, Any], threshold: float
) -> tuple[list[str], bool]:
    """Lines of the comparison table and whether anything regressed."""
    base, current = figures(baseline), figures(results)
    lines = [
        f"{'figure':<20} {'baseline':>10} {'current':>10} {'change':>9}  verdict",
        "-" * 64,
    ]
    failed = False
    for key in [*base, *(k for k in current if k not in base)]:
        b, c = base.get(key), current.get(key)
        if c is None:
            assert b is not None
            lines.append(f"{key:<20} {b['ratio']:>10.3f} {'-':>10} {'':>9}  MISSING")
            failed = True
            continue
        if b is None:
            lines.append(f"{key:<20} {'-':>10} {c['ratio']:>10.3f} {'':>9}  new (no baseline)")
            continue
        change = c["ratio"] / b["ratio"] - 1 if b["ratio"] else float("inf")
        regressed = change > threshold
        failed |= regressed
        verdict = "REGRESSED" if regressed else ("improved" if change < -threshold else "ok")
        lines.append(
            f"{key:<20} {b['ratio']:>10.3f} {c['ratio']:>10.3f} {change:>+9.1%}  {verdict}"
        )
    return lines, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--baseline", default=str(HERE / "baseline.json"))
    parser.add_argument(
        "--threshold", type=float, default=0.10, help="allowed rise of a ratio (0.10 = 10 %%)"
    )
    parser.add_argument("--update", action="store_true", help="then make the results the baseline")
    args = parser.parse_args()
    try:
        results = json.loads(Path(args.results).read_text(encoding="utf-8"))
        baseline = json.loads(Path(args.baseline).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"check.py: {exc}", file=sys.stderr)
        return 2
    lines, failed = compare(baseline, results, args.threshold)
    b_run, r_run = baseline.get("run", {}), results.get("run", {})
    print(
        f"baseline {b_run.get('date', '?')} ({baseline.get('machine', {}).get('commit', '?')}) "
        f"vs results {r_run.get('date', '?')} ({results.get('machine', {}).get('commit', '?')}); "
        f"ratios, lower is better; regression threshold +{args.threshold:.0%}"
    )
    print("\n".join(lines))
    print("FAIL: a figure regressed" if failed else "OK: no figure regressed")
    if args.update:
        shutil.copyfile(args.results, args.baseline)
        print(f"baseline updated from {args.results}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
