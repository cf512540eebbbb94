"""Shared by the fuzz and robustness tests: hypothesis settings, hostile inputs, and oracles.

`make test` runs every property with a few examples (`QUICK`); `make fuzz` sets
`HYPOTHESIS_PROFILE=fuzz` and runs thousands (and the longer seeded protocol runs).
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from promptls.analysis.compress import RegionEdit, apply_edits, equivalent
from promptls.analysis.document import Document, parse_document
from promptls.analysis.findings import Finding, Severity
from promptls.analysis.kinds import kind_of
from promptls.analysis.text import LineIndex, Position, PositionEncoding
from promptls.config import KINDS, Settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
_HEALTH = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]
settings.register_profile(
    "promptls-quick", max_examples=50, deadline=None, suppress_health_check=_HEALTH
)
settings.register_profile(
    "fuzz", max_examples=4000, deadline=None, suppress_health_check=_HEALTH, print_blob=True
)
#: The settings of every fuzz property (a profile, not loaded globally: other tests keep theirs).
PROFILE = settings.get_profile("fuzz" if FUZZING else "promptls-quick")


def scaled(quick: int, fuzz: int) -> int:
    """`quick` under `make test`, `fuzz` under `make fuzz`."""
    return fuzz if FUZZING else quick


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

#: Pieces that stress the parsers: markup openers and closers, fences, frontmatter, line endings
#: of every kind (including those `str.splitlines` splits on but LSP does not), NUL, emoji, CJK.
NASTY: tuple[str, ...] = (
    "<",
    ">",
    "<x>",
    "</x>",
    "<a b='1'>",
    "</a>",
    "<a/>",
    "<module>",
    "</module>",
    "<depends_on>\n",
    "</depends_on>",
    "<context_budget>~5k</context_budget>",
    "<delegation target='../../x.md'/>",
    "<!--",
    "-->",
    "<!-- c -->",
    "<![CDATA[",
    "]]>",
    "<?xml version='1.0'?>",
    "<?pi x?>",
    "<!DOCTYPE x [<!ENTITY e 'v'>]>",
    "&e;",
    "&",
    "&amp;",
    "&nbsp;",
    "&#0;",
    "---",
    "---\n",
    "\n---\n",
    "```",
    "```xml\n",
    "\n```\n",
    "~~~",
    "`",
    "``",
    "\\",
    '"',
    "'",
    "#",
    "# h\n",
    "- ",
    "@",
    "@x.md",
    "@../../etc/passwd",
    "@~/x.md",
    "@/etc/hosts",
    "[l](",
    "](",
    "[l](../../../x.md)",
    "[l](%00.md)",
    "components/x.md\n",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffd",
    "😀",
    "👩‍👩‍👧",
    "中文",
    "é",
)

KIND_NAMES: tuple[str, ...] = (*KINDS, "other")
_DEFAULT_KINDS = Settings().kinds


def example_files() -> list[Path]:
    """The text files of `examples/` (the real-looking prompt framework)."""
    return sorted(
        p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".md", ".xml", ".txt")
    )


_EXAMPLE_TEXTS: dict[Path, str] = {}


def example_text(path: Path) -> str:
    """The text of an example file (read once)."""
    if path not in _EXAMPLE_TEXTS:
        _EXAMPLE_TEXTS[path] = path.read_text(encoding="utf-8")
    return _EXAMPLE_TEXTS[path]


def example_kind(path: Path) -> str:
    """The kind promptls gives an example file."""
    return kind_of(path.relative_to(EXAMPLES).as_posix(), _DEFAULT_KINDS)


nasty = st.sampled_from(NASTY)
pieces = st.one_of(nasty, nasty, st.text(max_size=12))
markup = st.lists(pieces, max_size=60).map("".join)
"""Dense markup: nasty pieces and random text glued together."""
decoded_bytes = st.binary(max_size=3000).map(lambda b: b.decode("utf-8", errors="replace"))
"""Random bytes decoded as promptls decodes files."""
kinds = st.sampled_from(KIND_NAMES)


@st.composite
def mutated_example(draw: st.DrawFn) -> tuple[Path, str, str]:
    """(example path, its kind, its text after a few random mutations)."""
    path = draw(st.sampled_from(example_files()))
    text = example_text(path)
    for _ in range(draw(st.integers(0, 6))):
        n = len(text)
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, min(n, a + 400)))
        op = draw(
            st.sampled_from(("delete", "insert", "insert", "duplicate", "endings", "replace"))
        )
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "insert":
            text = text[:a] + draw(markup) + text[a:]
        elif op == "duplicate":
            text = text[:b] + text[a:b] * draw(st.integers(1, 3)) + text[b:]
        elif op == "replace":
            text = text[:a] + draw(pieces) + text[b:]
        else:
            ending = draw(st.sampled_from(("\r\n", "\r", "\u2028", "\x0b", "\x85", "\n\n")))
            text = text[:a] + text[a:b].replace("\n", ending) + text[b:]
    kind = draw(st.one_of(st.just(example_kind(path)), kinds))
    return path, kind, text


# ---------------------------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------------------------


def time_bound(size: int) -> float:
    """Seconds allowed to analyse `size` characters: 2 s per 100 KB, plus half a second."""
    return 0.5 + size / 50_000


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), CPU seconds this thread spent in it). CPU time, not wall-clock: a blow-up in the
    analysis shows, a busy machine does not (an 81-character document once "took" 0.56 s while
    other jobs held both cores); a thread stuck waiting is pytest-timeout's to catch.

    The garbage collector is off meanwhile: a full collection falls on whichever call allocates
    at the wrong moment and charges it with the whole test process's heap (up to 0.2 s over
    200,000 objects in a default run, 0.65 s once for a four-character document in a fuzz run);
    the cycles a call makes are still collected after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.thread_time()
        result = fn()
        return result, time.thread_time() - started
    finally:
        if was_enabled:
            gc.enable()


def assert_in_range(findings: Iterable[Finding], text: str, what: str = "") -> None:
    """Every finding's range lies inside `text` and maps to valid LSP positions."""
    lines = LineIndex(text)
    n = len(text)
    found = list(findings)
    for f in found:
        assert 0 <= f.start <= f.end <= n, f"{what}: {f} outside the text (length {n})"
    if len(found) > 600:  # positions of an even sample: converting them all takes too long
        found = found[:: len(found) // 600 + 1] + found[-1:]
    for f in found:
        for encoding in PositionEncoding:
            for offset in (f.start, f.end):
                pos = lines.position(offset, encoding)
                assert 0 <= pos.line < lines.line_count, (what, f, pos)
                line_end = lines.line_end(pos.line)
                width = lines.position(line_end, encoding).character
                assert 0 <= pos.character <= width, (what, f, pos, encoding)
                back = lines.offset(Position(pos.line, pos.character), encoding)
                assert back == offset, (what, f, pos, back, encoding)


def _hidden(content: str) -> str:
    """Placeholder text for `content`, character by character: the placeholder of two spans
    side by side is that of the two joined (a comment removed between two bare `<` joins them,
    and the scanner may report a run of them as one problem or several)."""
    return "".join(f"\ue000{ord(c):x}" for c in content)


_TEXT, _TAG, _NODE = 0, 1, 2  # what a verbatim span of `sanitized` is made into


def sanitized(doc: Document, index: int) -> str:
    """The text of `doc.regions[index]` with what compression copies verbatim made opaque:
    lexical problems and markdown code spans, fences and block comments (raw regions) become
    placeholder text derived from their content, a DOCTYPE a processing instruction, a stray
    quote in a tag a space (an end tag holds nothing else: `stray_quotes` compares them)."""
    region = doc.regions[index]
    text = doc.text[region.start : region.end]
    spans: list[tuple[int, int, int]] = []
    for p in region.check.problems:
        if p.severity == Severity.ERROR or p.kind == "processing-instruction":
            continue
        kind = {"doctype": _NODE, "stray-quote": _TAG}.get(p.kind, _TEXT)
        spans.append((p.start, p.end, kind))
    if region.form == "raw":
        for s, e in [
            *((c.start, c.end) for c in doc.code_spans),
            *((f.start, f.end) for f in doc.fences),
            *((c.start, c.end) for c in doc.comments),
        ]:
            if s < region.end and e > region.start:
                spans.append(
                    (max(s, region.start) - region.start, min(e, region.end) - region.start, _TEXT)
                )
    merged: list[tuple[int, int, int]] = []
    for s, e, kind in sorted(spans):
        if e <= s:
            continue
        if merged and s < merged[-1][1]:
            ps, pe, pk = merged[-1]
            merged[-1] = (ps, max(pe, e), max(pk, kind))
        else:
            merged.append((s, e, kind))
    parts: list[str] = []
    pos = 0
    for s, e, kind in merged:
        parts.append(text[pos:s])
        hidden = _hidden(text[s:e])
        parts.append(
            f"<?promptls {hidden[1:]}?>" if kind == _NODE else " " if kind == _TAG else hidden
        )
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def stray_quotes(doc: Document, index: int) -> list[str]:
    """The stray quotes of `doc.regions[index]` (`sanitized` makes them spaces), in order."""
    region = doc.regions[index]
    return [
        doc.text[region.start + p.start : region.start + p.end]
        for p in region.check.problems
        if p.kind == "stray-quote"
    ]


_XML_WS = re.compile("[ \t\r\n]")
_LINE_BREAK = re.compile("\r\n|\r|\n")


def verify_compression(
    doc: Document, edits: Sequence[RegionEdit], level: str, remove_comments: bool
) -> None:
    """Check, independently of the compressor, that `edits` keep the document's meaning: the
    edited text parses into the same frontmatter, fences and regions (same verdicts), every
    restructured region has the canonical form of the original at `level` (verbatim spans made
    opaque), and every line-trimmed one the same non-whitespace text and number of lines."""
    starts = {r.start: i for i, r in enumerate(doc.regions)}
    previous_end = -1
    for e in sorted(edits, key=lambda e: e.start):
        assert e.start in starts and doc.regions[starts[e.start]].end == e.end, e
        assert e.start >= previous_end, "overlapping edits"
        previous_end = e.end
        assert e.compressed.tokens_after < e.compressed.tokens_before, e.compressed
    if not edits:
        return
    new_text = apply_edits(doc.text, edits)
    new = parse_document(new_text, doc.kind)
    assert (doc.frontmatter is None) == (new.frontmatter is None), "frontmatter appeared or went"
    assert [(f.info, f.closed) for f in doc.fences] == [(f.info, f.closed) for f in new.fences]
    assert [(r.form, r.check.well_formed) for r in doc.regions] == [
        (r.form, r.check.well_formed) for r in new.regions
    ], "the regions changed"
    by_start = {e.start: e for e in edits}
    for i, (old, fresh) in enumerate(zip(doc.regions, new.regions, strict=True)):
        edit = by_start.get(old.start)
        before = doc.text[old.start : old.end]
        after = new.text[fresh.start : fresh.end]
        if edit is None:
            assert before == after, f"region {i} changed without an edit"
            continue
        assert after == edit.new_text, f"region {i} does not parse back as edited"
        if edit.compressed.restructured:
            a, b = sanitized(doc, i), sanitized(new, i)
            mode: Any = level
            assert equivalent(a, b, mode, drop_comments=remove_comments), (
                f"region {i} ({old.form}) is not equivalent at {level}:\n{before!r}\n->\n{after!r}"
            )
            assert stray_quotes(doc, i) == stray_quotes(new, i), (before, after)
        else:
            assert _XML_WS.sub("", before) == _XML_WS.sub("", after), (before, after)
            assert len(_LINE_BREAK.findall(before)) == len(_LINE_BREAK.findall(after))


_BREAK = re.compile(r"\r\n|\r|\n")


# ---------------------------------------------------------------------------------------------
# A document as an LSP client sees it (lines end at \\n, \\r\\n or \\r only)
# ---------------------------------------------------------------------------------------------


def line_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end before the line break) of every LSP line."""
    out: list[tuple[int, int]] = []
    start = 0
    for m in _BREAK.finditer(text):
        out.append((start, m.start()))
        start = m.end()
    out.append((start, len(text)))
    return out


def utf16_units(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def to_position(text: str, offset: int) -> tuple[int, int]:
    """The LSP position (UTF-16) of a code point offset that is not inside a line break."""
    for line, (start, end) in enumerate(line_bounds(text)):
        if start <= offset <= end:
            return line, utf16_units(text[start:offset])
    raise AssertionError(f"offset {offset} is inside a line break")


def to_offset(text: str, line: int, character: int) -> int:
    """The offset of an LSP position, clamped as the specification says."""
    bounds = line_bounds(text)
    if line >= len(bounds):
        return len(text)
    start, end = bounds[line]
    units = 0
    for i in range(start, end):
        if units >= character:
            return i
        units += 2 if ord(text[i]) > 0xFFFF else 1
    return end


def apply_lsp(text: str, rng: Any, new: str) -> str:
    """An LSP content change applied to `text`."""
    if rng is None:
        return new
    a = to_offset(text, rng.start.line, rng.start.character)
    b = to_offset(text, rng.end.line, rng.end.character)
    a, b = min(a, b), max(a, b)
    return text[:a] + new + text[b:]


def verify_rewrite(before: str, after: str, kind: str, level: str, remove_comments: bool) -> None:
    """Check a rewritten file (by `compress --write` or a code action) against the original:
    the markdown outside the XML regions is the same, the frontmatter, fences and regions keep
    their shape and verdicts, and each changed region is equivalent at `level` (well-formed
    regions, verbatim spans made opaque) or only line-trimmed (the others)."""
    old, new = parse_document(before, kind), parse_document(after, kind)
    assert (old.frontmatter is None) == (new.frontmatter is None)
    assert [(f.info, f.closed) for f in old.fences] == [(f.info, f.closed) for f in new.fences]
    assert [(r.form, r.check.well_formed) for r in old.regions] == [
        (r.form, r.check.well_formed) for r in new.regions
    ], "the regions changed"

    def gaps(doc: Document) -> list[str]:
        out, pos = [], 0
        for r in doc.regions:
            out.append(doc.text[pos : r.start])
            pos = r.end
        return [*out, doc.text[pos:]]

    assert gaps(old) == gaps(new), "markdown outside the XML regions changed"
    for i, (a, b) in enumerate(zip(old.regions, new.regions, strict=True)):
        x, y = before[a.start : a.end], after[b.start : b.end]
        if x == y:
            continue
        if a.check.well_formed:
            mode: Any = level
            assert equivalent(
                sanitized(old, i), sanitized(new, i), mode, drop_comments=remove_comments
            ), f"region {i} is not equivalent at {level}:\n{x!r}\n->\n{y!r}"
        else:
            assert _XML_WS.sub("", x) == _XML_WS.sub("", y), (x, y)
            assert len(_LINE_BREAK.findall(x)) == len(_LINE_BREAK.findall(y))


def line_break_kinds(text: str) -> set[str]:
    """The kinds of line break in `text` (`\\r\\n`, `\\r`, `\\n`)."""
    return {m.group(0) for m in _BREAK.finditer(text)}
