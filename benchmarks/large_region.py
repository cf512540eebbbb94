"""Keystrokes in one large XML region: what a letter typed in a text node and a tag renamed cost.

`keystrokes.py` types into the files of a workspace, whose regions hold tens to hundreds of
elements. This script builds one markdown file with one ```xml fence of nested elements (a
module of `--sections` sections of `--steps` steps, about 3,600 elements by default: the size
of a large framework module or `CLAUDE.md`), then, as an editor would send them one after
another, types:

- letters, each in a text node chosen at random (a click elsewhere, then a letter): the
  analysis of the last version shifted (`incremental.shift_document`);
- tag renames, each a letter typed into a start tag chosen at random and then deleted again:
  the region checked again from a checkpoint before the edit (`incremental.reparse_region`).

For each, the median and p95 of the time taken, and its ratio to one full tiktoken encode of
the file (the fastest of three, measured in the same run): what a server without incremental
analysis would spend on counting alone.

    python benchmarks/large_region.py [--sections 40] [--steps 30] [--keystrokes 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import keystrokes  # (its percentile)
import run  # (the reference encoding)


def module(sections: int, steps: int) -> str:
    """The markdown file: a heading and one ```xml fence holding the module."""
    body = "".join(
        f'  <section n="{i}">\n'
        + "".join(
            f"    <step><action>Do thing {j} of part {i}</action><note>check it</note></step>\n"
            for j in range(steps)
        )
        + "  </section>\n"
        for i in range(sections)
    )
    return f"# A large module\n\n```xml\n<module>\n{body}</module>\n```\n"


def measure(sections: int, steps: int, keystrokes: int, seed: int) -> dict[str, object]:
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import reparse_region, shift_document, text_edit
    from promptls.analysis.references import extract_references

    text = module(sections, steps)
    encoding = run.reference_encoding()
    encode = min(run.encode_ms(encoding, text) for _ in range(3))
    rng = random.Random(seed)
    doc = parse_document(text, "module")
    elements = len(doc.regions[0].check.elements)
    refs = extract_references(doc)

    typed: list[float] = []
    for _ in range(keystrokes):
        at = text.index("Do thing", rng.randrange(len(text) - 200))
        new = text[:at] + "x" + text[at:]
        started = time.perf_counter()
        shifted = shift_document(doc, new, text_edit(text, new), refs)
        typed.append((time.perf_counter() - started) * 1000)
        if shifted is None:
            raise SystemExit("a letter typed in a text node was not shifted")
        doc, text = shifted[0], new

    renamed: list[float] = []
    tags = [m.start() + 2 for m in re.finditer("<step>", text)]
    for _ in range(keystrokes // 2):
        at = rng.choice(tags)
        for new in (text[:at] + "x" + text[at:], text):  # typed, then deleted
            before = doc.text
            started = time.perf_counter()
            rechecked = reparse_region(doc, new, text_edit(before, new), {})
            renamed.append((time.perf_counter() - started) * 1000)
            if rechecked is None:
                raise SystemExit("a renamed tag was not checked from a checkpoint")
            doc = rechecked
    return {
        "chars": len(text),
        "elements": elements,
        "encodeMs": encode,
        "typed": typed,
        "renamed": renamed,
    }


def table(result: dict[str, object]) -> str:
    encode = result["encodeMs"]
    assert isinstance(encode, float)
    rows = [
        "| keystroke | n | median | p95 | ratio to a full encode, median (p95) |",
        "|---|---|---|---|---|",
    ]
    for label, key in (("letter in a text node", "typed"), ("tag renamed", "renamed")):
        ms = result[key]
        assert isinstance(ms, list)
        median, high = statistics.median(ms), keystrokes.p95(ms)
        rows.append(
            f"| {label} | {len(ms)} | {median:.2f} ms | {high:.2f} ms"
            f" | {median / encode:.2f}x ({high / encode:.2f}x) |"
        )
    rows.append(
        f"\nOne region of {result['elements']:,} elements, {result['chars']:,} characters;"
        f" reference: one full tiktoken encode of the file (the fastest of three), {encode:.2f} ms."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=int, default=40)
    parser.add_argument("--steps", type=int, default=30, help="steps of each section")
    parser.add_argument("--keystrokes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(table(measure(args.sections, args.steps, args.keystrokes, args.seed)))


if __name__ == "__main__":
    main()
