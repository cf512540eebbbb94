"""Fuzzing the analysis core: any text is analysed without an exception, in time proportional to
its size, with every finding inside the document, and every compression verifiable.

The inputs: random bytes decoded as files are, dense markup glued from hostile pieces, the
`examples/` framework with random slices deleted, duplicated or replaced and line endings
changed, deep and huge XML, unbalanced fences and frontmatter, and 200 KB of one pathological
pattern repeated (each of which once took quadratic time). `make fuzz` runs thousands of
examples per property (`HYPOTHESIS_PROFILE=fuzz`) and the whole pattern battery.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from promptls.analysis import xml as xml_module
from promptls.analysis.compress import compress_document
from promptls.analysis.document import Document, _segment_code_spans, atx_heading, parse_document
from promptls.analysis.duplicates import MAX_BLOCK_DEPTH, blocks
from promptls.analysis.findings import Finding
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.outline import (
    MAX_OUTLINE_DEPTH,
    OutlineNode,
    _section_ends,
    folds,
    outline,
)
from promptls.analysis.references import extract_references
from promptls.analysis.rules import (
    MAX_XML_FINDINGS,
    MAX_XML_FINDINGS_PER_FILE,
    frontmatter_findings,
    xml_findings,
)
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.analysis.xml import RawElementEnds, check_region, raw_element_end, recheck_region
from promptls.config import Settings
from tests.fuzzing import (
    EXAMPLES,
    FUZZING,
    NASTY,
    PROFILE,
    assert_in_range,
    decoded_bytes,
    kinds,
    markup,
    mutated_example,
    pieces,
    time_bound,
    timed,
    verify_compression,
)

COUNTER = TokenCounter()


def analyse(text: str, kind: str, path: str = "/ws/.claude/x.md") -> Document:
    """parse_document, extract_references and the per-file rules, checked and timed."""

    def run() -> tuple[Document, list[Finding]]:
        doc = parse_document(text, kind)
        refs = extract_references(doc)
        found = [*xml_findings(doc), *frontmatter_findings(doc, path)]
        for r in refs:
            assert 0 <= r.start <= r.end <= len(text), r
        return doc, found

    (doc, found), elapsed = timed(run)
    assert elapsed < time_bound(len(text)), f"{elapsed:.2f} s for {len(text):,} characters"
    assert doc.text == text
    assert_in_range(found, text, kind)
    previous = 0
    enclosing: list[tuple[int, int]] = []
    for region in doc.regions:  # in order; a ```xml fence may lie inside a raw region
        assert previous <= region.start <= region.end <= len(text), region
        previous = region.start
        while enclosing and enclosing[-1][1] <= region.start:
            enclosing.pop()
        assert not enclosing or region.end <= enclosing[-1][1], (
            f"{region.form} region {region.start}-{region.end} overlaps the end of the region "
            f"{enclosing[-1]}"
        )
        enclosing.append((region.start, region.end))
        size = region.end - region.start
        for p in region.check.problems:
            assert 0 <= p.start <= p.end <= size, p
        for el in region.check.elements:
            assert 0 <= el.start <= el.start_tag_end <= el.end <= size, el
            assert el.content_start <= el.content_end <= el.end, el
    for span in (*doc.fences, *doc.code_spans, *doc.comments, *doc.headings, *doc.opaque):
        assert 0 <= span.start <= span.end <= len(text), span
    return doc


# ---------------------------------------------------------------------------------------------
# Any text
# ---------------------------------------------------------------------------------------------


@PROFILE
@given(text=decoded_bytes, kind=kinds)
def test_random_bytes(text: str, kind: str) -> None:
    analyse(text, kind)


@PROFILE
@given(text=markup, kind=kinds)
@example(text="<a>\n<!--\n<b>\n-->\n</a>", kind="command")
@example(text="```xml\n<a>\n```\n<a>`</a>`\n", kind="module")
@example(text="---\na: &a [1]\nb: [*a, *a]\n---\n", kind="agent")
def test_markup(text: str, kind: str) -> None:
    analyse(text, kind)


@PROFILE
@given(st.lists(st.sampled_from((*NASTY, "\ud800", "\udfff", "\U0010ffff")), max_size=40))
def test_lone_surrogates_from_the_editor(parts: list[str]) -> None:
    """An editor may send any UTF-16 over JSON, lone surrogates included."""
    text = "".join(parts)
    for kind in ("command", "project-config"):
        analyse(text, kind)
    assert COUNTER.count(text) >= 0


@PROFILE
@given(mutated_example())
def test_mutated_examples(case: tuple[Path, str, str]) -> None:
    _, kind, text = case
    analyse(text, kind)


_LINES = st.sampled_from(
    (
        "---",
        "--- ",
        "...",
        "name: x",
        "description: [unclosed",
        "a: b: c",
        "```",
        "```xml",
        "````",
        "~~~",
        "   ```",
        "    ```",
        "<a>",
        "</a>",
        "<!--",
        "-->",
        "text `code",
        "`",
        "# heading",
        "",
        "  ",
        "- components/x.md",
        "@x.md",
    )
)


@PROFILE
@given(
    lines=st.lists(_LINES, max_size=40),
    ending=st.sampled_from(("\n", "\r\n", "\r")),
    kind=kinds,
)
def test_unbalanced_fences_and_frontmatter(lines: list[str], ending: str, kind: str) -> None:
    analyse(ending.join(lines), kind)


# ---------------------------------------------------------------------------------------------
# Deep, huge and pathological
# ---------------------------------------------------------------------------------------------


def _wrapped(xml: str, form: str) -> tuple[str, str]:
    if form == "fence":
        return f"# t\n\n```xml\n{xml}\n```\n", "module"
    if form == "raw":
        return f"# t\n\n{xml}\n", "module"
    return xml, "project-config"


@pytest.mark.parametrize("form", ["fence", "raw", "document"])
@pytest.mark.parametrize("depth", [10, 255, 256, 257, 2000, *([20_000] if FUZZING else [])])
def test_deep_nesting(depth: int, form: str) -> None:
    balanced = "<a>" * depth + "x" + "</a>" * depth
    unclosed = "<a>" * depth
    distinct = "".join(f"<e{i}>" for i in range(depth))
    for xml in (balanced, unclosed, distinct):
        text, kind = _wrapped(xml, form)
        doc = analyse(text, kind)
        found = list(xml_findings(doc))
        assert len(found) <= MAX_XML_FINDINGS_PER_FILE + 1
        if depth <= 2000:
            edits, elapsed = timed(lambda doc=doc: compress_document(doc, COUNTER))
            assert elapsed < time_bound(len(text)) + 1
            verify_compression(doc, edits, "whitespace", False)


@pytest.mark.parametrize("form", ["fence", "raw", "document"])
def test_huge_flat_xml(form: str) -> None:
    body = "".join(f'  <item id="{i}">value {i} &amp; more</item>\n' for i in range(3000))
    text, kind = _wrapped(f"<list>\n{body}</list>", form)
    doc = analyse(text, kind)
    assert doc.regions and all(r.check.well_formed for r in doc.regions)
    edits, elapsed = timed(lambda: compress_document(doc, COUNTER))
    assert elapsed < 3 * time_bound(len(text)), f"compression took {elapsed:.2f} s"
    verify_compression(doc, edits, "whitespace", False)


#: Patterns that, repeated over 200 KB, once took quadratic time (or produced one finding per
#: repetition): (name, pattern, kind).
PATHOLOGICAL: list[tuple[str, str, str]] = [
    ("unmatched backticks", "a ` b `` c ``` ", "command"),
    ("backtick lines", "x `\n", "command"),
    ("backticks and blank lines", "`\n\n", "command"),
    ("many <", "<", "project-config"),
    ("many < and spaces", "< ", "project-config"),
    ("many &", "&", "project-config"),
    ("many unclosed tags", "<a>", "project-config"),
    ("unclosed tags in markdown", "<a><b>", "command"),
    ("unclosed tag lines", "<a>\n", "command"),
    ("unclosed HTML lines", "<br>\n", "command"),
    ("unclosed tag paragraphs", "<x>\n\n", "command"),
    ("distinct unclosed tags", "<x1>\n\n<x22>\n\n<x333>\n\n", "command"),
    ("stray end tags", "</x>", "project-config"),
    ("long lines of -->", "-->", "command"),
    ("--> in XML", "-->", "project-config"),
    ("comment lines", "<!-- x\n", "command"),
    ("tags in inline comments", "x <!--\n<a>\n-->\n", "command"),
    ("self-closed tags and code spans", "<x/> `c`\n", "command"),
    ("code spans and HTML", "`x` \n<b>\n", "command"),
    ("unclosed attribute quotes", '<a "\n', "command"),
    ("CDATA openers", "<![CDATA[", "command"),
    ("DOCTYPE openers", "<!DOCTYPE a [", "command"),
    ("unmatched brackets", "[", "command"),
    ("heading of closing hashes", "# #", "command"),
    ("fences", "```\n", "command"),
    ("xml fences", "```xml\n<a>\n", "command"),
    ("bad attributes", "<a =", "project-config"),
    ("namespaced tags", "<p:a>", "project-config"),
    ("mismatched tags", "<a></b>", "command"),
    ("links", "[x](y.md) ", "command"),
    ("imports", "@a/b.md\n", "memory"),
    ("headings of every level", "# a\n## b\n### c\n#### d\n##### e\n###### f\n", "command"),
    ("empty headings", "#\n", "command"),
    ("headings rising", "###### f\n##### e\n#### d\n### c\n## b\n# a\n", "command"),
    ("nested elements", "<a>", "command"),
    ("attributes", ' a="1"', "command"),
]
_QUICK_PATHOLOGICAL = {
    "unmatched backticks",
    "many <",
    "many unclosed tags",
    "unclosed HTML lines",
    "long lines of -->",
    "tags in inline comments",
    "CDATA openers",
    "heading of closing hashes",
    "empty headings",
    "nested elements",
}


@pytest.mark.parametrize(
    ("name", "pattern", "kind"),
    [
        pytest.param(*p, id=p[0].replace(" ", "-"))
        for p in PATHOLOGICAL
        if FUZZING or p[0] in _QUICK_PATHOLOGICAL
    ],
)
def test_pathological_200kb(name: str, pattern: str, kind: str) -> None:
    size = 200_000
    text = (pattern * (size // len(pattern) + 1))[:size]

    if name == "nested elements":  # closed: nested 50,000 deep (in a fence, with a root)
        text = f"```xml\n{'<a>' * 25_000}x{'</a>' * 25_000}\n```\n"
    elif name == "attributes":  # of one element, in a fence
        text = f"```xml\n<r{text}/>\n```\n"

    def run() -> list[Finding]:
        doc = parse_document(text, kind)
        extract_references(doc)
        outline(doc)
        folds(doc)
        blocks(doc, 200)
        return list(xml_findings(doc))

    found, elapsed = timed(run)
    assert elapsed < 3.0, f"{name}: {elapsed:.2f} s for 200 KB"
    assert len(found) <= MAX_XML_FINDINGS_PER_FILE + 1
    assert_in_range(found[:50], text, name)


def test_findings_of_a_garbage_region_are_capped() -> None:
    doc = parse_document("< " * 5000, "project-config")
    found = list(xml_findings(doc))
    assert len(found) == MAX_XML_FINDINGS + 1
    assert "4,800 more" in found[-1].message
    doc = parse_document("<x>\n\n" * 3000, "command")
    found = list(xml_findings(doc))
    assert len(found) == MAX_XML_FINDINGS_PER_FILE + 1
    assert "2,000 more" in found[-1].message


def test_runs_of_lexical_problems_merge_in_linear_time() -> None:
    doc = parse_document("<" * 100_000, "project-config")
    (found,), elapsed = timed(lambda: list(xml_findings(doc)))
    assert elapsed < 1.0
    assert found.end - found.start == 100_000
    assert dict(found.data)["fix"] == "&lt;" * 100_000


# ---------------------------------------------------------------------------------------------
# The linear rewrites agree with what they replaced
# ---------------------------------------------------------------------------------------------

_OLD_CODE_SPAN = re.compile(
    r"(?<!`)(`+)(?!`)((?:[^`\r\n]|`+(?!`)|\r?\n(?![ \t]*\r?\n))*?)(?<!`)\1(?!`)"
)
_OLD_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")


@settings(PROFILE, max_examples=max(200, PROFILE.max_examples))
@given(
    text=st.text(st.sampled_from("`` a\n\r \t\u2028x"), max_size=60),
    start=st.integers(0, 5),
    cut=st.integers(0, 5),
)
def test_code_spans_as_the_regex_found_them(text: str, start: int, cut: int) -> None:
    start = min(start, len(text))
    end = max(start, len(text) - cut)
    old = [(m.start(), m.end()) for m in _OLD_CODE_SPAN.finditer(text, start, end)]
    new = [(s.start, s.end) for s in _segment_code_spans(text, start, end)]
    assert new == old


@settings(PROFILE, max_examples=max(200, PROFILE.max_examples))
@given(st.text(st.sampled_from("# \tab#\x0b\u3000"), max_size=20))
def test_headings_as_the_regex_found_them(line: str) -> None:
    m = _OLD_HEADING.match(line)
    old = (len(m.group(1)), (m.group(2) or "").strip()) if m else None
    assert atx_heading(line) == old


@settings(PROFILE, max_examples=max(200, PROFILE.max_examples))
@given(
    parts=st.lists(
        st.sampled_from(
            (
                "<a>",
                "</a>",
                "<a/>",
                "<a x='<a>'>",
                '<a y=">',
                "<b>",
                "</b>",
                "<a",
                "</a",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "x",
                "\n",
                "`",
            )
        ),
        max_size=30,
    ),
    skip=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 20)), max_size=3),
)
def test_shared_raw_scans_end_where_single_scans_do(
    parts: list[str], skip: list[tuple[int, int]]
) -> None:
    text = "".join(parts)
    spans = [(s, s + n) for s, n in skip]
    ends = RawElementEnds(text, spans)
    for m in re.finditer("<", text):
        assert ends.end(m.start()) == raw_element_end(text, m.start(), spans), m.start()


# ---------------------------------------------------------------------------------------------
# The workspace index
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples_index(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, WorkspaceIndex]]:
    root = tmp_path_factory.mktemp("fuzz") / "examples"
    shutil.copytree(EXAMPLES, root)
    root = root.resolve()
    settings_ = Settings()
    index = WorkspaceIndex(
        Workspace([root], settings_.kinds, settings_.exclude), settings_, COUNTER
    )
    index.index(threads=2)
    yield root, index


@settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 2))
@given(case=mutated_example())
def test_index_findings_in_range(
    examples_index: tuple[Path, WorkspaceIndex], case: tuple[Path, str, str]
) -> None:
    root, index = examples_index
    source, _, text = case
    path = str(root / source.relative_to(EXAMPLES))
    index.workspace.overlay[path] = text
    try:

        def run() -> set[str]:
            affected = index.update(path)
            for other in sorted(affected)[:5]:
                fa = index.get(other)
                if fa is None:
                    continue
                found = index.findings(other)
                assert_in_range(found, fa.doc.text, os.path.basename(other))
                for f in found:
                    for rel in f.related:
                        target = index.get(rel.path)
                        assert target is not None, rel
                        assert 0 <= rel.start <= rel.end <= len(target.doc.text), rel
            return affected

        affected, elapsed = timed(run)
        assert path in affected
        assert elapsed < 2 * time_bound(len(text)) + 1, f"{elapsed:.2f} s"
    finally:
        index.workspace.overlay.pop(path, None)
        index.update(path)


# ---------------------------------------------------------------------------------------------
# Compression
# ---------------------------------------------------------------------------------------------


@settings(PROFILE, max_examples=max(10, PROFILE.max_examples // 2))
@given(
    case=mutated_example(),
    level=st.sampled_from(("lossless", "whitespace")),
    remove_comments=st.booleans(),
)
def test_compressions_verify(
    case: tuple[Path, str, str], level: str, remove_comments: bool
) -> None:
    _, kind, text = case
    doc = parse_document(text, kind)
    edits = compress_document(doc, COUNTER, level=level, remove_comments=remove_comments)
    verify_compression(doc, edits, level, remove_comments)


@pytest.mark.parametrize("level", ["lossless", "whitespace"])
def test_a_removed_comment_joining_bare_lt_runs_keeps_the_text(level: str) -> None:
    """Found by `make fuzz`: `x<<!-- c --><< y` loses its comment and reads `x<<< y`, the same
    text; the scanner reports the bare `<` runs of the two texts grouped differently, which the
    independent check must not take for a change."""
    text = "# T\n\n```xml\n<a>\n  <b>x<<!-- c --><< y</b>\n  <c>z</c>\n</a>\n```\n"
    doc = parse_document(text, "module")
    edits = compress_document(doc, COUNTER, level=level, remove_comments=True)
    assert [e.new_text for e in edits] == ["<a><b>x<<< y</b><c>z</c></a>\n"]
    verify_compression(doc, edits, level, True)


def test_an_unclosed_tag_before_a_fence_ends_before_it() -> None:
    """Its region ended inside the fence (regions overlapping), so no compression could keep
    the document's shape, and compress_document tried each block alone: 1,000 blocks, 23 s."""
    text = "# T\n\n" + "<r>   x    y   </r>\n\n" * 1000
    text += "<open>\n  <x>  a  </x>\n```xml\n<y>   b   </y>\n```\n"
    doc = analyse(text, "module")
    raw, fence = doc.regions[-2:]
    assert (raw.form, fence.form) == ("raw", "fence") and raw.end < fence.start
    edits, elapsed = timed(lambda: compress_document(doc, COUNTER))
    assert len(edits) == 1002
    assert elapsed < 2 * time_bound(len(text)), f"{elapsed:.2f} s"
    verify_compression(doc, edits, "whitespace", False)


_XML_PIECES = st.sampled_from(
    (
        "<a>",
        "</a>",
        "<b x = 'y' >",
        "</b>",
        "<c/>",
        "<c></c>",
        "  ",
        "\n",
        "\n    ",
        "\t",
        "text",
        " words  here ",
        "<!-- c -->",
        "<![CDATA[ keep  this ]]>",
        "<?pi  x?>",
        "&amp;",
        "&lt;",
        "&nbsp;",
        "&",
        " < ",
        "`code  span`",
        '<p xml:space="preserve">  a  </p>',
        "<q:r/>",
        "\r\n",
        "😀",
    )
)


@settings(PROFILE, max_examples=max(20, PROFILE.max_examples))
@given(
    parts=st.lists(_XML_PIECES, max_size=30),
    form=st.sampled_from(("fence", "raw", "document")),
    level=st.sampled_from(("lossless", "whitespace")),
    remove_comments=st.booleans(),
)
def test_compressions_of_generated_xml_verify(
    parts: list[str], form: str, level: str, remove_comments: bool
) -> None:
    text, kind = _wrapped("<root>" + "".join(parts) + "</root>", form)
    doc = parse_document(text, kind)
    edits = compress_document(doc, COUNTER, level=level, remove_comments=remove_comments)
    verify_compression(doc, edits, level, remove_comments)


def test_outline_of_deep_nesting() -> None:
    doc = parse_document("# Deep\n\n" + "<item>\n" * 2000, "module")
    assert len(folds(doc)) >= 2000
    levels, count, layer = 0, 0, outline(doc)
    while layer:
        levels += 1
        count += len(layer)
        layer = [child for node in layer for child in node.children]
    assert (levels, count) == (MAX_OUTLINE_DEPTH, 2001)


@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["", "\n", "\n\n", "x\n\n"]))))
def test_section_ends_are_before_the_next_heading_as_high(
    headings: list[tuple[int, str]],
) -> None:
    text = "".join(f"{'#' * level} h\n{after}" for level, after in headings)
    doc = parse_document(text, "command")
    assert [h.level for h in doc.headings] == [level for level, _ in headings]
    for i, (h, end) in enumerate(zip(doc.headings, _section_ends(doc), strict=True)):
        following = [n.start for n in doc.headings[i + 1 :] if n.level <= h.level]
        expected = following[0] if following else len(text)
        while expected > h.end and text[expected - 1] == "\n":
            expected -= 1
        assert end == expected


def test_duplicate_blocks_are_elements_at_most_so_deep() -> None:
    depth = 3 * MAX_BLOCK_DEPTH
    text = f"```xml\n{'<a>' * depth}{'x' * 300}{'</a>' * depth}\n```\n"
    found = blocks(parse_document(text, "module"), 200)
    assert len(found) == MAX_BLOCK_DEPTH
    assert [b.start for b in found] == [7 + 3 * k for k in range(MAX_BLOCK_DEPTH)]


def _shape(nodes: Sequence[OutlineNode]) -> str:
    return ",".join(
        n.name.strip("<>") + (f"({_shape(n.children)})" if n.children else "") for n in nodes
    )


@pytest.mark.parametrize(
    ("max_depth", "shape"),
    [
        (64, "A(a(b(c(d)),e),B)"),
        (5, "A(a(b(c(d)),e),B)"),
        (4, "A(a(b(c,d),e),B)"),
        (3, "A(a(b,c,d,e),B)"),
        (2, "A(a,b,c,d,e,B)"),
        (1, "A(a,b,c,d,e,B)"),
    ],
    ids=str,
)
def test_outline_deeper_than_the_limit_is_listed_at_the_limit(max_depth: int, shape: str) -> None:
    """Nodes below the limit become children of their ancestor just above it, in order."""
    text = "# A\n\n<a>\n<b>\n<c>\n<d>x</d>\n</c>\n</b>\n<e>y</e>\n</a>\n\n## B\n"
    assert _shape(outline(parse_document(text, "module"), max_depth)) == shape


_TYPED = st.one_of(
    st.sampled_from(("x", "ab", " ")),
    st.sampled_from(("  ", "#", "-", "/", "<", ">", '"', "=", "\n", "`", "&")),
)
_RAW_LINES = st.sampled_from(
    (
        "<r>\n",
        "</r>\n",
        "  <step>words here</step>\n",
        '<r a="v w">text\n',
        "   <!-- a comment -->\n",
        "    <!-- indented four -->\n",
        "prose words\n",
        "# Title words\n",
        "\n",
        "```bash\n# code\n```\n",
        "text `code` text\n",
        "text ``a ` b`` and `one\n",  # (a code span over two lines)
        "two` x ~~~ y\n",
        "  ~~~\n",
        "```xml\n<m>\n  <s>words `q` x</s>\n</m>\n```\n",
        '<q x="1"/>\n',
    )
)


@settings(PROFILE, max_examples=max(300, PROFILE.max_examples))
@given(
    parts=st.lists(st.one_of(_RAW_LINES, _RAW_LINES, _RAW_LINES, pieces), min_size=1, max_size=40),
    kind=kinds,
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.lists(_TYPED, max_size=2)),
        min_size=1,
        max_size=6,
    ),
)
def test_edits_shifted_or_rechecked_equal_a_fresh_parse(
    parts: list[str], kind: str, edits: list[tuple[int, int, list[str]]]
) -> None:
    """A keystroke's document, by a shift of the last one (`shift_document`) or by checking
    one region again (`reparse_region`), is always the document a fresh parse gives."""
    from promptls.analysis.incremental import (
        region_references,
        reparse_region,
        shift_document,
        text_edit,
    )

    text = "".join(parts)
    doc = parse_document(text, kind)
    for spot, removed, typed in edits:
        at = spot % (len(text) + 1)
        new = text[:at] + "".join(typed) + text[at + removed :]
        edit = text_edit(text, new)
        fresh = parse_document(new, kind)
        shifted = shift_document(doc, new, edit, extract_references(doc))
        if shifted is not None:
            event("shifted")
            assert shifted[0] == fresh
            assert shifted[1] is None or shifted[1] == extract_references(fresh)
            fresh = shifted[0]  # (the next edit starts from it: shifts and checks chain)
        else:
            rechecked = reparse_region(doc, new, edit, {})
            event("parsed again" if rechecked is None else "one region checked again")
            assert rechecked is None or rechecked == fresh
            if rechecked is not None:
                kept = region_references(doc, rechecked, edit, extract_references(doc))
                assert kept is None or kept == extract_references(fresh)
            fresh = rechecked or fresh
        text, doc = new, fresh


_NAMED = st.sampled_from(("a", "ab", "step", "x.y", "r_1"))


@st.composite
def _xml_with_names(draw: st.DrawFn, depth: int = 0) -> str:
    out = []
    for _ in range(draw(st.integers(0, 5 if depth < 3 else 1))):
        kind = draw(st.integers(0, 9))
        name = draw(_NAMED)
        if kind < 4:
            closing = draw(st.sampled_from((name, name, name, "b", "")))
            end = f"</{closing}>" if closing else ""
            out.append(f"<{name}>" + draw(_xml_with_names(depth + 1)) + end)
        elif kind < 6:
            out.append(draw(_XML_PIECES))
        else:
            out.append(
                draw(st.sampled_from(("text ", "words here\n", "</stray>", "< b", "<a x='1")))
            )
    return "".join(out)


@settings(PROFILE, max_examples=max(300, PROFILE.max_examples))
@given(
    body=_xml_with_names(),
    edits=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.integers(0, 2),
            st.sampled_from(("x", "y1", "_", "", " ", "\n  ")),
        ),
        min_size=1,
        max_size=8,
    ),
    step=st.sampled_from((8, 32, 512)),
    # (an XML declaration where it counts, and where it does not; other instructions)
    prolog=st.sampled_from(
        ("", '<?xml version="1.0"?>\n', ' \n<?xml version="1.0" encoding="UTF-8"?>', "<?pi x?>")
    ),
    instruction=st.sampled_from(("", '<?xml version="1.0"?>', "<?style x?>", "<?open x")),
)
def test_a_region_rechecked_after_a_rename_equals_a_fresh_check(
    body: str,
    edits: list[tuple[int, int, str]],
    step: int,
    prolog: str,
    instruction: str,
) -> None:
    """Names and white space edited one after another (a tag or an attribute renamed, a word or
    a line break typed): the scan
    resumed from a checkpoint before each edit (`recheck_region`) gives what a fresh check
    gives, whatever the problems around, and leaves checkpoints the next edit resumes from."""
    from unittest import mock

    from promptls.analysis.incremental import text_edit

    with mock.patch.object(xml_module, "_CHECKPOINT_STEP", step):
        text = prolog + "<root>\n" + body + instruction + "\n</root>\n"
        check = check_region(text)
        for spot, removed, typed in edits:
            names = [m.start() for m in re.finditer(r"[A-Za-z0-9_. \n]", text)]
            if not names:
                break
            at = names[spot % len(names)]
            cut = at + removed
            while cut > at and not re.fullmatch(r"[A-Za-z0-9_. \n]*", text[at:cut]):
                cut -= 1
            new = text[:at] + typed + text[cut:]
            if new == text:
                continue
            fresh = check_region(new)
            edit = text_edit(text, new)
            rechecked = recheck_region(check, text, new, edit.start, edit.old_end, edit.new_end)
            event("rechecked" if rechecked is not None else "checked whole")
            if rechecked is not None:
                assert rechecked == fresh
                assert tuple(rechecked.elements) == fresh.elements
            text, check = new, rechecked or fresh
