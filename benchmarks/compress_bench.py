"""XML compression: promptls's verified compression against minify-xml, on a workspace's regions.

Collects every XML region of the workspace as promptls analyses it (fence bodies, raw regions,
whole .xml files, of the prompt files and the files they load), and reports the total XML tokens
before and after:

* promptls `whitespace` (the default level; comments kept), `whitespace` with comments removed,
  and `lossless`, through `compress_document` exactly as the quick fixes compute them;
* minify-xml (npm) with its default options (which remove comments) and with its text
  whitespace options on as well (`trimWhitespaceFromTexts`, `collapseWhitespaceInTexts`), run on
  the same region texts by a small node script. minify-xml is installed with
  `npm install --prefix benchmarks/.cache/minify-xml`; without npm or node those rows are
  skipped with a message.

For each tool it counts the regions whose meaning changed: for a region lxml can parse, the
result is not `equivalent()` to the original at the `whitespace` level (comments ignored for
the tools that remove them), or no longer parses; for a region lxml cannot parse (malformed, or
a bare `<` or `&` in its text), its non-whitespace characters changed (comments ignored likewise).

    python benchmarks/compress_bench.py [WORKSPACE] [--json]

WORKSPACE defaults to examples/. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from npm import install
from promptls.analysis.compress import canonical, compress_document, equivalent
from promptls.analysis.document import parse_document
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.references import extract_references
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
MINIFY_VERSION = "4.5.2"
_COMMENT = re.compile(r"<!--[\s\S]*?-->")

NODE_SCRIPT = """\
import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
const [, , modulePath, inputPath, outputPath] = process.argv;
const { minify } = await import(modulePath);
const regions = JSON.parse(readFileSync(inputPath, "utf8"));
const configs = {
  "default": {},
  "text-whitespace": { trimWhitespaceFromTexts: true, collapseWhitespaceInTexts: true },
};
const out = {};
for (const [name, options] of Object.entries(configs)) {
  const started = performance.now();
  const results = regions.map((xml) => {
    try { return minify(xml, options); } catch (error) { return null; }
  });
  out[name] = { results, ms: performance.now() - started };
}
writeFileSync(outputPath, JSON.stringify(out));
"""


@dataclass(frozen=True, slots=True)
class Region:
    path: str
    form: str
    start: int
    end: int
    text: str
    parses: bool


@dataclass(slots=True)
class Row:
    tool: str
    removes_comments: bool
    outputs: list[str | None]
    ms: float
    tokens: int = 0
    tokens_parsing: int = 0
    changed: int = 0
    meaning_changed: int = 0
    unparsable: int = 0
    references_changed: int = 0
    failed: int = 0


def collect(workspace: Path) -> tuple[list[Region], WorkspaceIndex]:
    settings = load_settings(workspace)
    index = WorkspaceIndex(Workspace([workspace], settings.kinds, settings.exclude), settings)
    index.index()
    regions: list[Region] = []
    for path in sorted(index.files):
        fa = index.files[path]
        for region in fa.doc.regions:
            text = fa.doc.text[region.start : region.end]
            parses = canonical(text, "whitespace") is not None
            regions.append(Region(fa.rel, region.form, region.start, region.end, text, parses))
    return regions, index


def promptls_rows(
    regions: Sequence[Region], index: WorkspaceIndex, counter: TokenCounter
) -> list[Row]:
    variants: list[tuple[str, str, bool]] = [
        ("promptls whitespace (default)", "whitespace", False),
        ("promptls whitespace, comments removed", "whitespace", True),
        ("promptls lossless", "lossless", False),
    ]
    rows = []
    by_file: dict[str, list[int]] = {}
    for i, region in enumerate(regions):
        by_file.setdefault(region.path, []).append(i)
    for fa in index.files.values():  # warm up: token counts cached, as in a running server
        compress_document(fa.doc, counter)
    for name, level, remove_comments in variants:
        outputs: list[str | None] = [r.text for r in regions]
        started = time.perf_counter()
        for fa in index.files.values():
            edits = compress_document(fa.doc, counter, level=level, remove_comments=remove_comments)
            starts = {e.start: e for e in edits}
            for i in by_file.get(fa.rel, []):
                edit = starts.get(regions[i].start)
                if edit is not None:
                    outputs[i] = edit.new_text
        ms = (time.perf_counter() - started) * 1000
        rows.append(Row(name, remove_comments, outputs, ms))
    return rows


def minify_rows(regions: Sequence[Region]) -> tuple[list[Row], str | None]:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return [], "minify-xml skipped: npm or node is not installed"
    prefix, why = install("minify-xml", MINIFY_VERSION, npm)
    if prefix is None:
        return [], f"minify-xml skipped: {why}"
    module = prefix / "node_modules" / "minify-xml" / "index.js"
    with tempfile.TemporaryDirectory(prefix="promptls-bench-") as tmp:
        script = Path(tmp) / "run.mjs"
        script.write_text(NODE_SCRIPT, encoding="utf-8")
        inputs, outputs = Path(tmp) / "in.json", Path(tmp) / "out.json"
        inputs.write_text(json.dumps([r.text for r in regions]), encoding="utf-8")
        done = subprocess.run(
            [node, str(script), module.as_uri(), str(inputs), str(outputs)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return [], f"minify-xml skipped: node failed: {done.stderr.strip()[:300]}"
        data = json.loads(outputs.read_text(encoding="utf-8"))
    return [
        Row(
            "minify-xml default (removes comments)",
            True,
            data["default"]["results"],
            data["default"]["ms"],
        ),
        Row(
            "minify-xml + trim/collapse text whitespace",
            True,
            data["text-whitespace"]["results"],
            data["text-whitespace"]["ms"],
        ),
    ], None


def _visible(text: str, drop_comments: bool) -> str:
    if drop_comments:
        text = _COMMENT.sub("", text)
    return "".join(text.split())


def references_changed(row: Row, regions: Sequence[Region], index: WorkspaceIndex) -> int:
    """Files whose references (as promptls reads them) differ once the row's outputs replace
    their regions. A fence body or whole file keeps its final line break, as any integration
    would keep it."""
    by_file: dict[str, list[tuple[Region, str]]] = {}
    for region, out in zip(regions, row.outputs, strict=True):
        if out is None or out == region.text:
            continue
        ending = "\n" if region.form != "raw" and region.text.endswith("\n") else ""
        by_file.setdefault(region.path, []).append(
            (region, out if out.endswith("\n") else out + ending)
        )
    changed = 0
    for fa in index.files.values():
        edits = by_file.get(fa.rel)
        if not edits:
            continue
        parts, pos = [], 0
        for region, out in sorted(edits, key=lambda e: e[0].start):
            parts += [fa.doc.text[pos : region.start], out]
            pos = region.end
        parts.append(fa.doc.text[pos:])
        new = parse_document("".join(parts), fa.doc.kind, xml_file=fa.doc.xml_file)
        before = [(r.form, r.target) for r in extract_references(fa.doc)]
        after = [(r.form, r.target) for r in extract_references(new)]
        changed += before != after
    return changed


def score(row: Row, regions: Sequence[Region], counter: TokenCounter) -> None:
    texts = [
        out if out is not None else r.text for out, r in zip(row.outputs, regions, strict=True)
    ]
    row.failed = sum(out is None for out in row.outputs)
    counts = counter.count_many(texts)
    row.tokens = sum(counts)
    row.tokens_parsing = sum(n for n, r in zip(counts, regions, strict=True) if r.parses)
    for region, out in zip(regions, texts, strict=True):
        if out == region.text:
            continue
        row.changed += 1
        if region.parses:
            if canonical(out, "whitespace") is None:
                row.unparsable += 1
                row.meaning_changed += 1
            elif not equivalent(region.text, out, "whitespace", drop_comments=row.removes_comments):
                row.meaning_changed += 1
        elif _visible(region.text, row.removes_comments) != _visible(out, row.removes_comments):
            row.meaning_changed += 1


def table(
    regions: Sequence[Region],
    rows: Sequence[Row],
    before: int,
    before_parsing: int,
    note: str | None,
) -> str:
    parsing = sum(r.parses for r in regions)
    lines = [
        f"{len(regions)} XML regions ({parsing} parse with lxml, "
        f"{len(regions) - parsing} malformed or with lexical problems), {before:,} tokens "
        "(cl100k_base)",
        "",
        f"| tool | tokens after | saved | saved on the {parsing} regions that parse "
        "| regions changed | meaning changed | no longer parses | files with references changed "
        "| time* |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        saved = before - row.tokens
        pct = saved / before * 100 if before else 0.0
        saved_parsing = before_parsing - row.tokens_parsing
        pct_parsing = saved_parsing / before_parsing * 100 if before_parsing else 0.0
        lines.append(
            f"| {row.tool} | {row.tokens:,} | {saved:,} ({pct:.1f} %) "
            f"| {saved_parsing:,} ({pct_parsing:.1f} %) | {row.changed} "
            f"| {row.meaning_changed} | {row.unparsable} | {row.references_changed} "
            f"| {row.ms:.0f} ms |"
        )
    lines += [
        "",
        "meaning changed: for a region lxml parses, the output is not `equivalent()` to it at the"
        " whitespace level (comments ignored for the tools that remove them); for the others,"
        " its non-whitespace characters changed. files with references changed: the references"
        " promptls reads (`<depends_on>` lines, component lines, @imports, links...) differ once"
        " the outputs replace the regions.",
        "* promptls: all of `compress_document` (token counting, verification,"
        " markdown re-parse), warm; minify-xml: `minify()` calls only, inside node.",
    ]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", nargs="?", default=str(ROOT / "examples"))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    workspace = Path(args.workspace).resolve()
    counter = TokenCounter()
    regions, index = collect(workspace)
    if not regions:
        print(f"no XML regions under {workspace}")
        return 1
    counts = counter.count_many([r.text for r in regions])
    before = sum(counts)
    before_parsing = sum(n for n, r in zip(counts, regions, strict=True) if r.parses)
    rows = promptls_rows(regions, index, counter)
    more, note = minify_rows(regions)
    rows.extend(more)
    for row in rows:
        score(row, regions, counter)
        row.references_changed = references_changed(row, regions, index)
    if args.json:
        report: dict[str, object] = {
            "regions": len(regions),
            "tokens": before,
            "tokensOnParsingRegions": before_parsing,
            "rows": [
                {
                    "tool": r.tool,
                    "tokens": r.tokens,
                    "tokensOnParsingRegions": r.tokens_parsing,
                    "changed": r.changed,
                    "meaningChanged": r.meaning_changed,
                    "noLongerParses": r.unparsable,
                    "filesWithReferencesChanged": r.references_changed,
                    "failed": r.failed,
                    "ms": round(r.ms, 1),
                }
                for r in rows
            ],
            "note": note,
        }
        print(json.dumps(report, indent=2))
    else:
        print(table(regions, rows, before, before_parsing, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
