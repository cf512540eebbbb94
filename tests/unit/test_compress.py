"""Tests for verified XML compression (promptls.analysis.compress)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from promptls.analysis import compress
from promptls.analysis.compress import (
    Compressed,
    Level,
    RegionEdit,
    apply_edits,
    canonical,
    compress_document,
    compress_xml,
    equivalent,
    line_trim,
)
from promptls.analysis.document import parse_document
from promptls.analysis.references import extract_references
from promptls.analysis.tokens import TokenCounter
from tests.conftest import first_arguments

COUNTER = TokenCounter()
LEVELS: tuple[Level, ...] = ("lossless", "whitespace")


def squeeze(text: str, level: Level = "whitespace", *, remove_comments: bool = False) -> str | None:
    result = compress_xml(text, COUNTER, level=level, remove_comments=remove_comments)
    return None if result is None else result.text


def assert_sound(text: str, result: Compressed, level: Level, remove_comments: bool) -> None:
    """What every restructured result must satisfy."""
    assert equivalent(text, result.text, level, drop_comments=remove_comments)
    if level == "lossless":  # lossless implies the weaker level
        assert equivalent(text, result.text, "whitespace", drop_comments=remove_comments)
    assert result.tokens_before == COUNTER.count(text)
    assert result.tokens_after == COUNTER.count(result.text)
    assert result.tokens_after < result.tokens_before
    assert result.level == level


# --------------------------------------------------------------------------------------------
# Each transform, at each level: exact output and equivalence
# --------------------------------------------------------------------------------------------

# (id, input, level, remove_comments, expected output or None when nothing is saved)
CASES: list[tuple[str, str, Level, bool, str | None]] = [
    ("indentation", "<a>\n  <b/>\n  <c/>\n</a>", "whitespace", False, "<a><b/><c/></a>"),
    ("indentation-lossless", "<a>\n  <b/>\n  <c/>\n</a>", "lossless", False, "<a><b/><c/></a>"),
    (
        "text-trimmed-inside-element",
        "<purpose>\n  Check it\n</purpose>",
        "whitespace",
        False,
        "<purpose>Check it</purpose>",
    ),
    ("text-trim-not-lossless", "<purpose>\n  Check it\n</purpose>", "lossless", False, None),
    ("text-collapse", "<a>one   two\n   three</a>", "whitespace", False, "<a>one two three</a>"),
    ("text-collapse-not-lossless", "<a>one   two\n   three</a>", "lossless", False, None),
    (
        "text-kept-byte-identical-when-lossless",
        "<a>\r\n  <b>\r\n    one\r\n    two\r\n  </b>\r\n</a>",
        "lossless",
        False,
        "<a><b>\r\n    one\r\n    two\r\n  </b></a>",
    ),
    (
        "crlf-text-collapsed",
        "<a>\r\n  <b>\r\n    one\r\n    two\r\n  </b>\r\n</a>",
        "whitespace",
        False,
        "<a><b>one two</b></a>",
    ),
    ("attribute-spacing", "<a  x = \"1\"   y='2' />", "whitespace", False, "<a x=\"1\" y='2'/>"),
    (
        "attribute-spacing-lossless",
        "<a  x = \"1\"   y='2' />",
        "lossless",
        False,
        "<a x=\"1\" y='2'/>",
    ),
    (
        "multi-line-attributes",
        '<a\n    x="1"\n    y="2"\n>text</a>',
        "whitespace",
        False,
        '<a x="1" y="2">text</a>',
    ),
    (
        "attribute-values-untouched",
        '<a x="  two  spaces\n and a newline " >\n  t\n</a>',
        "whitespace",
        False,
        '<a x="  two  spaces\n and a newline ">t</a>',
    ),
    (
        "self-closing",
        '<a>\n  <b></b>\n  <c>  </c>\n  <d x="1" ></d >\n</a>',
        "whitespace",
        False,
        '<a><b/><c/><d x="1"/></a>',
    ),
    (
        "self-closing-lossless",
        '<a>\n  <b></b>\n  <c>  </c>\n  <d x="1" ></d >\n</a>',
        "lossless",
        False,
        '<a><b/><c/><d x="1"/></a>',
    ),
    (
        "comments-kept-by-default",
        "<a>\n  <!-- note -->\n  <b/>\n</a>",
        "whitespace",
        False,
        "<a><!-- note -->\n<b/></a>",
    ),
    (
        "comments-removed-on-opt-in",
        "<a>\n  <!-- note -->\n  <b/>\n</a>",
        "whitespace",
        True,
        "<a><b/></a>",
    ),
    (
        "comments-removed-lossless",
        "<a>\n  <!-- note -->\n  <b/>\n</a>",
        "lossless",
        True,
        "<a><b/></a>",
    ),
    (
        "comment-removed-inside-text",
        "<a>\n  one <!-- aside --> two\n</a>",
        "whitespace",
        True,
        "<a>one two</a>",
    ),
    (
        "cdata-untouched",
        "<a>\n  <![CDATA[  x   y\n  ]]>\n</a>",
        "whitespace",
        False,
        "<a><![CDATA[  x   y\n  ]]></a>",
    ),
    ("cdata-text-node-lossless", "<a>\n  <![CDATA[  x   y\n  ]]>\n</a>", "lossless", False, None),
    (
        "xml-space-preserve-untouched",
        '<a>\n  <pre xml:space="preserve">\n    keep   this\n  </pre>\n</a>',
        "whitespace",
        False,
        '<a><pre xml:space="preserve">\n    keep   this\n  </pre></a>',
    ),
    (
        "xml-space-preserve-subtree",
        '<a xml:space="preserve">\n  <b >  x  </b>\n</a>\n<c>\n  y\n</c>',
        "whitespace",
        False,
        '<a xml:space="preserve">\n  <b >  x  </b>\n</a><c>y</c>',
    ),
    (
        "mixed-content-keeps-word-spacing",
        "<p>\n  foo   <b>bar</b>   baz\n</p>",
        "whitespace",
        False,
        "<p>foo <b>bar</b> baz</p>",
    ),
    (
        "mixed-content-between-elements",
        "<p>\n  see <b>one</b>\n  <i>two</i> end\n</p>",
        "whitespace",
        False,
        # Whitespace between two elements touches no word: it goes, even in mixed content.
        "<p>see <b>one</b><i>two</i> end</p>",
    ),
    (
        "entity-references-kept",
        "<a>\n  Tom &amp; Jerry &lt;3&#160;  &#x20;\n</a>",
        "whitespace",
        False,
        "<a>Tom &amp; Jerry &lt;3&#160; &#x20;</a>",
    ),
    (
        "several-top-level-elements",
        "<a>x</a>\n\n<b>\n  y\n</b>\n",
        "whitespace",
        False,
        "<a>x</a><b>y</b>",
    ),
    (
        "namespace-prefixes-undeclared",
        '<p:a x:y="1">\n  <p:b/>\n</p:a>',
        "whitespace",
        False,
        '<p:a x:y="1"><p:b/></p:a>',
    ),
    (
        "xml-declaration-kept",
        '<?xml version="1.0"?>\n<root>\n  <x>1</x>\n</root>',
        "lossless",
        False,
        '<?xml version="1.0"?><root><x>1</x></root>',
    ),
    ("already-compact", "<a><b/></a>", "whitespace", False, None),
    ("empty", "", "whitespace", False, None),
    ("whitespace-only", "\n\n", "lossless", False, ""),
]


@pytest.mark.parametrize(
    ("text", "level", "remove_comments", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_transform(text: str, level: Level, remove_comments: bool, expected: str | None) -> None:
    result = compress_xml(text, COUNTER, level=level, remove_comments=remove_comments)
    assert (None if result is None else result.text) == expected
    if result is not None:
        assert result.restructured
        assert_sound(text, result, level, remove_comments)


# Regions a strict parser rejects for a lexical reason only: the culprits are copied verbatim.
LEXICAL: list[tuple[str, str, str]] = [
    ("bare-lt", "<a>\n  p95 <200ms\n</a>", "<a>p95 <200ms</a>"),
    ("bare-amp", "<a>\n  R&D   team\n</a>", "<a>R&D team</a>"),
    ("html-entity", "<a>\n  x&nbsp;y  z\n</a>", "<a>x&nbsp;y z</a>"),
    ("in-attribute", '<a q="R&D" >\n  t\n</a>', '<a q="R&D">t</a>'),
    ("control-character", "<a>\n  bell\x07  here\n</a>", "<a>bell\x07 here</a>"),
    ("cdata-end-in-text", "<a>\n  x ]]>  y\n</a>", "<a>x ]]> y</a>"),
    (
        "stray-quotes",
        '<m>\n  <f">\n    daily\n  </f">\n  <x a = "1"  " >\n    y\n  </x " >\n  <e \'></e">\n</m>',
        '<m><f">daily</f"><x a="1"">y</x"><e\'></e"></m>',
    ),
    (
        "doctype",
        '<!DOCTYPE note [<!ENTITY e "x">]>\n<note>\n  &e;  y\n</note>',
        '<!DOCTYPE note [<!ENTITY e "x">]><note>&e; y</note>',
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in LEXICAL], ids=[c[0] for c in LEXICAL]
)
def test_lexical_problems_are_copied_verbatim(text: str, expected: str) -> None:
    assert canonical(text, "whitespace") is None  # lxml alone rejects it
    result = compress_xml(text, COUNTER)
    assert result is not None
    assert result.text == expected
    assert result.restructured


# --------------------------------------------------------------------------------------------
# Malformed regions: the line-local trim only
# --------------------------------------------------------------------------------------------

MALFORMED: list[tuple[str, str, str]] = [
    ("unclosed", "<a>\n    <b>\n  text   here  \n</a>", "<a>\n<b>\ntext   here\n</a>"),
    ("mismatched", "  <a>\n\t<b>x</c>  \n</a>\n", "<a>\n<b>x</c>\n</a>\n"),
    ("blank-lines-kept", "<a>\n\n    <b>\n\n</a>", "<a>\n\n<b>\n\n</a>"),
    (
        "cdata-lines-kept",
        "<a>\n  <![CDATA[\n    code\n  ]]>\n  <b>\n</a>",
        "<a>\n<![CDATA[\n    code\n  ]]>\n<b>\n</a>",
    ),
    (
        "preserve-lines-kept",
        '<a>\n  <p xml:space="preserve">\n    k  \n  </p>\n  <b>\n</a>',
        '<a>\n<p xml:space="preserve">\n    k  \n  </p>\n<b>\n</a>',
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_gets_line_local_trim(text: str, expected: str) -> None:
    result = compress_xml(text, COUNTER)
    assert result is not None
    assert result.text == expected
    assert not result.restructured
    assert text.count("\n") == result.text.count("\n")
    assert "".join(text.split()) == "".join(result.text.split())
    # Nothing about a malformed region is provably lossless.
    assert compress_xml(text, COUNTER, level="lossless") is None


def test_well_formed_override() -> None:
    text = "<a>\n  <b/>\n</a>"
    result = compress_xml(text, COUNTER, well_formed=False)
    assert result is not None
    assert result.text == "<a>\n<b/>\n</a>"
    assert not result.restructured


@pytest.mark.parametrize("extra", [0, 1])
def test_an_element_with_too_many_attributes_is_only_trimmed(extra: int) -> None:
    """Its canonical form would take time quadratic in its attributes: never restructured."""
    count = compress.MAX_VERIFIED_ATTRIBUTES + extra
    attributes = "".join(f'\n    a{i} = "{i}"' for i in range(count))
    text = f"<r>\n  <e{attributes}\n  />\n  <f>x</f>\n</r>"
    result = compress_xml(text, COUNTER)
    assert result is not None
    assert result.restructured == (extra == 0)
    if extra:
        assert result.text.count("\n") == text.count("\n")
        assert "".join(text.split()) == "".join(result.text.split())
    else:
        assert equivalent(text, result.text, "whitespace")


def test_line_trim_protects_spans() -> None:
    text = "  a  \n    b\n  c  \n"
    assert line_trim(text) == "a\nb\nc\n"
    protect = [(text.index("b") - 2, text.index("b") + 1)]  # covers part of the indentation
    assert line_trim(text, protect) == "a\n    b\nc\n"
    assert line_trim("no newline  ") == "no newline"
    assert line_trim("") == ""


# --------------------------------------------------------------------------------------------
# Canonical forms
# --------------------------------------------------------------------------------------------

EQUIVALENCE: list[tuple[str, str, str, Level, bool, bool]] = [
    ("indentation-ignored", "<a>\n  <b/>\n</a>", "<a><b/></a>", "lossless", False, True),
    ("edge-whitespace-text-lossless", "<a> x </a>", "<a>x</a>", "lossless", False, False),
    ("edge-whitespace-text", "<a> x </a>", "<a>x</a>", "whitespace", False, True),
    ("collapse", "<a>x \n\t y</a>", "<a>x y</a>", "whitespace", False, True),
    ("newline-is-a-space", "<a>x\ny</a>", "<a>x y</a>", "whitespace", False, True),
    ("words-glued", "<a>x y</a>", "<a>xy</a>", "whitespace", False, False),
    ("word-glued-to-child", "foo <b>bar</b> baz", "foo<b>bar</b>baz", "whitespace", False, False),
    ("nbsp-is-not-whitespace", "<a>x\u00a0 y</a>", "<a>x y</a>", "whitespace", False, False),
    ("attribute-value-differs", '<a x="1 "/>', '<a x="1"/>', "whitespace", False, False),
    ("attribute-order-irrelevant", '<a x="1" y="2"/>', '<a y="2" x="1"/>', "lossless", False, True),
    ("quotes-irrelevant", "<a x='1'/>", '<a x="1"/>', "lossless", False, True),
    ("empty-element-forms", "<a></a>", "<a/>", "lossless", False, True),
    ("comment-matters", "<a><!-- c --></a>", "<a/>", "whitespace", False, False),
    ("comment-dropped", "<a><!-- c --></a>", "<a/>", "whitespace", True, True),
    ("cdata-is-text", "<a><![CDATA[<x>]]></a>", "<a>&lt;x></a>", "lossless", False, True),
    ("entity-is-text", "<a>&amp;</a>", "<a>&#38;</a>", "lossless", False, True),
    (
        "preserve-is-strict",
        '<a xml:space="preserve"> x </a>',
        '<a xml:space="preserve">x</a>',
        "whitespace",
        False,
        False,
    ),
    ("element-name", "<a/>", "<b/>", "whitespace", False, False),
    ("malformed-never-equivalent", "<a>", "<a>", "whitespace", False, False),
]


@pytest.mark.parametrize(
    ("before", "after", "level", "drop", "same"),
    [c[1:] for c in EQUIVALENCE],
    ids=[c[0] for c in EQUIVALENCE],
)
def test_equivalent(before: str, after: str, level: Level, drop: bool, same: bool) -> None:
    assert equivalent(before, after, level, drop_comments=drop) is same


def test_canonical() -> None:
    assert canonical("<a>", "whitespace") is None
    assert canonical("<a>\n  x  y\n</a>", "whitespace") == canonical("<a>x y</a>", "lossless")
    assert canonical("text only", "lossless") is not None
    assert canonical('<?xml version="1.0"?>\n<a/>', "lossless") is not None


# --------------------------------------------------------------------------------------------
# Verification is mandatory
# --------------------------------------------------------------------------------------------


def test_a_result_that_fails_verification_is_never_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = compress._Template.body

    def corrupt(self: compress._Template, body: str, component: list[bool] | None) -> None:
        original(self, body.replace("two", "too"), component)

    monkeypatch.setattr(compress._Template, "body", corrupt)
    # (every restructured form fails: the line-local trim, verified on its own, is what is left)
    result = compress_xml("<a>\n  one   two\n</a>", COUNTER)
    assert result is not None and not result.restructured
    assert result.text == "<a>\none   two\n</a>"
    # ... and a trim that fails its own verification is not returned either.
    trim = compress._line_trim_cuts
    monkeypatch.setattr(compress, "_line_trim_cuts", lambda *a, **k: [(4, 7), *trim(*a, **k)[1:]])
    assert compress_xml("<a>\n  one   two\n</a>", COUNTER) is None
    monkeypatch.setattr(compress, "_line_trim_cuts", trim)
    # Without the corruption it compresses.
    monkeypatch.setattr(compress._Template, "body", original)
    assert squeeze("<a>\n  one   two\n</a>") == "<a>one two</a>"


def _layout(text: str) -> compress._Layout:
    source = compress._Source(text, [])
    tree = source.parse(remove_comments=False)
    assert tree is not None
    template = compress._Template(source, "whitespace", "\n", markdown=False)
    template.content(tree.items, root=True)
    return compress._Layout(template.out, text, set())


def _style_counts(text: str) -> list[int]:
    layout = _layout(text)
    return [
        COUNTER.count("".join(layout.fill_each(layout.styled(s.choices("\n")))))
        for s in compress._STYLES
    ]


def test_token_choice_prefers_fewer_tokens() -> None:
    text = "<list>\n" + "".join(f"  <item>entry {i}</item>\n" for i in range(30)) + "</list>"
    result = compress_xml(text, COUNTER)
    assert result is not None
    assert result.tokens_after <= min(_style_counts(text))


def test_each_line_break_is_decided_on_its_own() -> None:
    # A line break after "Do:" and a space after "this": every style puts the same kind of
    # break in both places, and costs a token more.
    text = "<s>\n  Do:\n  1. this\n  end\n</s>"
    result = compress_xml(text, COUNTER)
    assert result is not None
    assert result.text == "<s>Do:\n1. this end</s>"
    assert result.tokens_after == COUNTER.count_exact(result.text)
    assert result.tokens_after < min(_style_counts(text))


_PIECES = st.sampled_from(
    [
        "a",
        "Zed",
        "word",
        "'s",
        "'S",
        "’",
        " ",
        "  ",
        "\n",
        "\r\n",
        "\t",
        ".",
        ",",
        "<",
        ">",
        "</",
        "/>",
        "=",
        '"',
        "1",
        "234",
        "é",
        "中",
        "\u0301",
        "-",
        "_",
        "?!",
        "**",
        "@",
        "\\",
    ]
)


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=40))
def test_property_counts_add_up_at_the_cuts(pieces: list[str]) -> None:
    text = "".join(pieces)
    cuts = [m.start() for m in compress._CUT.finditer(text)]
    last = compress._LAST_CUT.match(text)
    assert (last.end() - 1 if last else None) == (cuts[-1] if cuts else None)
    bounds = [0, *cuts, len(text)]
    parts = [text[a:b] for a, b in itertools.pairwise(bounds)]
    whole = COUNTER.count_exact(text)
    assert sum(COUNTER.count_exact(p) for p in parts) == whole
    # The parts between two cuts can be joined in any order.
    if len(parts) > 3:
        middle = parts[1:-1]
        shuffled = parts[0] + "".join(middle[1::2] + middle[::2]) + parts[-1]
        assert COUNTER.count_exact(shuffled) == whole


def test_compressed_numbers() -> None:
    c = Compressed("x", 10, 7, "whitespace", True)
    assert c.saved == 3
    assert c.percent == pytest.approx(30.0)
    assert Compressed("", 0, 0, "whitespace", True).percent == 0.0


def test_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown compression level"):
        compress_xml("<a> </a>", COUNTER, level="extreme")


def test_keep_final_newline() -> None:
    result = compress_xml("<a>\n  <b/>\n</a>\n", COUNTER, keep_final_newline=True)
    assert result is not None
    assert result.text == "<a><b/></a>\n"
    result = compress_xml("<a>\r\n  <b/>\r\n</a>\r\n", COUNTER, keep_final_newline=True)
    assert result is not None
    assert result.text == "<a><b/></a>\r\n"


def test_60kb_region() -> None:
    block = (
        '<phase name="build" order="3">\n'
        "    <goal>Each slice built test first and green before the next one starts.</goal>\n"
        "    <step>Write the tests the strategy asks for, then watch them fail.</step>\n"
        "    <step>Write the smallest code that makes them pass.</step>\n"
        "  </phase>\n  "
    )
    text = '<module name="big">\n  ' + block * (60_000 // len(block)) + "\n</module>\n"
    assert len(text) > 59_000
    result = compress_xml(text, COUNTER, keep_final_newline=True)
    assert result is not None and result.restructured
    assert result.tokens_after == COUNTER.count_exact(result.text)
    assert equivalent(text, result.text, "whitespace")


# --------------------------------------------------------------------------------------------
# Whole documents
# --------------------------------------------------------------------------------------------

MODULE = """---
name: feature-workflow
---
# Feature Workflow

<purpose>Build a feature   that spans several files.</purpose>

A feature is anything that changes behaviour in more than one package.

```xml
<module name="feature-workflow" category="development">
  <purpose>
    Turn a feature request into a merged, tested, documented change in small verified
    slices, with a person agreeing at each checkpoint.
  </purpose>

  <!-- phases run in order -->
  <phase name="understand" order="1">
    <goal>Know exactly what is being asked, and what is not.</goal>
    <step>Restate the feature in two or three sentences: which events change, and for whom.</step>
    <step>List the acceptance criteria. If the request has none, write them.</step>
    <checkpoint>Show the restatement. Do not go on until a person has answered.</checkpoint>
  </phase>

  <phase name="build" order="2">
    <goal>Each slice built test first &amp; green before the next one starts.</goal>
    <step>Keep p95 <200ms on the hot path.</step>
    <step xml:space="preserve">Run:   make   test</step>
  </phase>

  <context_budget>
    Estimated tokens: ~2,000
  </context_budget>
</module>
```

Closing prose   with  spaces stays as it is.
"""


def test_real_looking_module() -> None:
    doc = parse_document(MODULE, "module")
    edits = compress_document(doc, COUNTER)
    assert [e.element for e in edits] == ["purpose", "module"]
    assert [e.start for e in edits] == sorted(e.start for e in edits)
    fence_edit = edits[1]
    region = doc.regions[1]
    assert (fence_edit.start, fence_edit.end) == (region.start, region.end)
    assert fence_edit.new_text.endswith("</module>\n")
    assert fence_edit.compressed.saved > 0
    assert fence_edit.compressed.percent > 10
    assert "<!-- phases run in order -->" in fence_edit.new_text
    assert '<step xml:space="preserve">Run:   make   test</step>' in fence_edit.new_text
    assert "p95 <200ms" in fence_edit.new_text
    assert "&amp;" in fence_edit.new_text
    new = apply_edits(MODULE, edits)
    # Markdown outside the regions is untouched.
    assert new.startswith(MODULE[: doc.regions[0].start])
    assert new.endswith(MODULE[doc.regions[1].end :])
    assert "Closing prose   with  spaces stays as it is." in new
    reparsed = parse_document(new, "module")
    assert [r.form for r in reparsed.regions] == ["raw", "fence"]
    assert [(f.info, f.closed) for f in reparsed.fences] == [("xml", True)]
    body = new[reparsed.regions[1].start : reparsed.regions[1].end]
    assert body == fence_edit.new_text
    # Compressing the result again finds nothing more.
    assert compress_document(reparsed, COUNTER) == []
    # Removing comments saves more.
    without = compress_document(doc, COUNTER, remove_comments=True)
    assert without[1].compressed.saved > fence_edit.compressed.saved
    assert "<!--" not in without[1].new_text


def test_raw_region_with_markdown_fence_and_code_span() -> None:
    text = (
        "# Title\n\n"
        "<example>\n"
        "  Run this:\n"
        "  ```bash\n"
        "  ls   -la\n"
        "  ```\n"
        "  Then `check   <it>`.\n"
        "</example>\n"
    )
    doc = parse_document(text, "module")
    [edit] = compress_document(doc, COUNTER)
    assert edit.element == "example"
    # The fence loses the indentation its content lines share with it (the same content, by
    # CommonMark's rule); the spaces inside code stay.
    assert edit.new_text == (
        "<example>Run this:\n```bash\nls   -la\n```\n Then `check   <it>`.</example>"
    )
    new = apply_edits(text, [edit])
    reparsed = parse_document(new, "module")
    assert [(f.info, f.closed) for f in reparsed.fences] == [("bash", True)]
    assert [new[f.content_start : f.content_end] for f in reparsed.fences] == ["ls   -la\n"]
    assert [r.form for r in reparsed.regions] == ["raw"]


def test_whole_xml_document_keeps_final_newline() -> None:
    text = '<?xml version="1.0"?>\n<!-- settings -->\n<config>\n  <x>1</x>\n</config>\n'
    doc = parse_document(text, "project-config")
    [edit] = compress_document(doc, COUNTER, level="lossless")
    assert edit.new_text == '<?xml version="1.0"?><!-- settings --><config><x>1</x></config>\n'
    assert edit.element == "config"
    [edit] = compress_document(doc, COUNTER, remove_comments=True)
    assert edit.new_text == '<?xml version="1.0"?><config><x>1</x></config>\n'


def test_malformed_fence_gets_line_trim_in_document() -> None:
    text = "```xml\n<a>\n    <b>\n  text  \n</a>\n```\n"
    doc = parse_document(text, "module")
    [edit] = compress_document(doc, COUNTER)
    assert edit.new_text == "<a>\n<b>\ntext\n</a>\n"
    assert not edit.compressed.restructured
    assert compress_document(doc, COUNTER, level="lossless") == []


def test_malformed_fence_keeps_indented_fence_marks() -> None:
    """An indented ```` ``` ```` line in a fence body is text; unindented it would close the
    fence. The trim keeps its indentation, and still trims every other line."""
    text = "```xml\n<a>\n  <b>\n    ```json\n    {}\n    ```\n</a>\n```\n"
    doc = parse_document(text, "module")
    [edit] = compress_document(doc, COUNTER)
    assert edit.new_text == "<a>\n<b>\n    ```json\n{}\n    ```\n</a>\n"
    assert not edit.compressed.restructured


def test_nothing_to_do() -> None:
    assert compress_document(parse_document("# Just prose\n", "module"), COUNTER) == []
    assert compress_document(parse_document("x" * 10, "module", reduced=True), COUNTER) == []
    compact = "```xml\n<a><b/></a>\n```\n"
    assert compress_document(parse_document(compact, "module"), COUNTER) == []


def test_remembered_results_are_the_same_and_only_touched_regions_are_compressed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (
        "# Memory\n\n<rules>\n  <rule>Be brief.</rule>\n</rules>\n\nProse with `<code>  x`.\n\n"
        + "".join(f'```xml\n<step n="{i}">\n  Do {i}.\n</step>\n```\n\n' for i in range(4))
    )
    calls = first_arguments(monkeypatch, compress, "compress_xml")
    results: dict[tuple[object, ...], object] = {}
    doc = parse_document(text, "memory")
    first = compress_document(doc, COUNTER, results=results)  # type: ignore[arg-type]
    assert len(calls) == len(doc.regions) == 5
    assert first == compress_document(doc, COUNTER)
    calls.clear()
    assert compress_document(doc, COUNTER, results=results) == first  # type: ignore[arg-type]
    assert calls == []
    edited = parse_document(text.replace("Do 2.", "Do 2 now."), "memory")
    again = compress_document(edited, COUNTER, results=results)  # type: ignore[arg-type]
    assert calls == ['<step n="2">\n  Do 2 now.\n</step>\n']
    assert again == compress_document(edited, COUNTER)
    # Other options are other results.
    calls.clear()
    compress_document(doc, COUNTER, level="lossless", results=results)  # type: ignore[arg-type]
    assert len(calls) == 5


def test_shape_check_reuses_region_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptls.analysis import document

    text = "".join(f'```xml\n<step n="{i}">\n  Do {i}.\n</step>\n```\n\n' for i in range(4))
    doc = parse_document(text, "module")
    checked = first_arguments(monkeypatch, document, "check_region")
    checks: dict[tuple[str, tuple[tuple[int, int], ...]], object] = {}
    first = compress_document(doc, COUNTER, checks=checks)  # type: ignore[arg-type]
    assert len(checked) == 4  # the compressed regions of the edited document
    edited = parse_document(text.replace("Do 2.", "Do 2 now."), "module")
    checked.clear()
    again = compress_document(edited, COUNTER, checks=checks)  # type: ignore[arg-type]
    assert checked == ['<step n="2">Do 2 now.</step>\n']
    assert first == compress_document(doc, COUNTER)
    assert again == compress_document(edited, COUNTER)


def test_edits_that_move_markdown_are_dropped() -> None:
    text = "<a>\n  x\n</a>\n\n```xml\n<b>\n  y\n</b>\n```\n"
    doc = parse_document(text, "module")
    good = compress_document(doc, COUNTER)
    assert len(good) == 2
    raw, fence = doc.regions
    result = good[0].compressed
    # A fence body that loses its final newline would swallow the closing fence.
    bad = RegionEdit(fence.start, fence.end, "<b>y</b>", result, "b")
    assert not compress._same_structure(doc, [good[0], bad])
    assert compress._same_structure(doc, good)
    # A raw region whose end tag goes away is no longer the same region.
    broken = RegionEdit(raw.start, raw.end, "<a>x", result, "a")
    assert not compress._same_structure(doc, [broken])


# Backticks a blank line keeps apart (no code span), which pair up once the blank line is gone.
APART = (
    "# Task\n\n<task>\n  <step>\n    Say ``` now, the words\n    that follow.\n\n"
    "    Then ``` later.\n    <!-- a\n      note -->\n"
    '    <go to="a\n      b"/>\n  </step>\n</task>\n'
)


def test_a_region_whose_blank_lines_keep_the_markdown_apart_keeps_them() -> None:
    """Every style that joins the paragraphs changes the markdown: the region is restructured
    with its blank lines kept (their indentation gone), its other lines joined."""
    doc = parse_document(APART, "command")
    assert doc.code_spans == ()
    (edit,) = compress_document(doc, COUNTER)
    assert edit.compressed.restructured
    assert apply_edits(APART, [edit]) == (
        "# Task\n\n<task><step>Say ``` now, the words that follow.\n\n"
        'Then ``` later. <!-- a\n      note --><go to="a\n      b"/></step></task>\n'
    )
    assert equivalent(doc.text[edit.start : edit.end], edit.new_text, "whitespace")
    # Joined, the same text is one code span: that form is never offered.
    joined = APART.replace(".\n\n    Then", ". Then")
    assert parse_document(joined, "command").code_spans != ()


def test_a_region_whose_restructured_forms_change_the_markdown_gets_its_lines_trimmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When no restructured form keeps the markdown (here: without the styles that keep the
    blank lines), the region gets the line-local trim, verified like them; a comment and an
    attribute value keep their white space."""
    monkeypatch.setattr(compress, "_PARAGRAPH_STYLES", ())
    text = APART
    doc = parse_document(text, "command")
    (edit,) = compress_document(doc, COUNTER)
    assert not edit.compressed.restructured and edit.compressed.saved > 0
    assert apply_edits(text, [edit]) == (
        "# Task\n\n<task>\n<step>\nSay ``` now, the words\nthat follow.\n\n"
        'Then ``` later.\n    <!-- a\n      note -->\n<go to="a\n      b"/>\n</step>\n</task>\n'
    )
    assert equivalent(doc.text[edit.start : edit.end], edit.new_text, "whitespace")


# (id, kind, document, expected document after compression)
MARKDOWN: list[tuple[str, str, str, str]] = [
    (
        "block-comment-stays-a-block-comment",
        "memory",
        "<rules>\n  <rule>One   rule.</rule>\n<!-- hidden from the model -->\n"
        "  <rule>Two.</rule>\n</rules>\n",
        "<rules><rule>One rule.</rule>\n<!-- hidden from the model -->\n"
        " <rule>Two.</rule></rules>\n",
    ),
    (
        "indented-comment-never-starts-a-line",
        "memory",
        "<rules>\n    <!-- seen by the model -->\n    <rule>Two.</rule>\n</rules>\n",
        "<rules><!-- seen by the model --><rule>Two.</rule></rules>\n",
    ),
    (
        "indented-comment-in-malformed-region",
        "memory",
        "<rules>\n    <!-- seen -->\n    <rule>Two.\n</rules>\n",
        "<rules>\n    <!-- seen -->\n<rule>Two.\n</rules>\n",
    ),
    (
        "depends-on-lines-kept",
        "module",
        "```xml\n<module>\n  <depends_on>\n    patterns/a.md for x\n    quality/b.md for y\n"
        "  </depends_on>\n</module>\n```\n",
        "```xml\n<module><depends_on>patterns/a.md for x\nquality/b.md for y</depends_on>"
        "</module>\n```\n",
    ),
    (
        "component-line-kept",
        "command",
        "<steps>\n  Use this:\n  components/planning/estimate.md\n  then go on.\n</steps>\n",
        "<steps>Use this:\ncomponents/planning/estimate.md\nthen go on.</steps>\n",
    ),
    (
        "no-new-link-made",  # `[the guide](...)` on one line would become a link reference
        "module",
        "<note>\n  Read [the\n  guide](docs/guide.md) first.\n</note>\n",
        "<note>Read [the\nguide](docs/guide.md) first.</note>\n",
    ),
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), [c[1:] for c in MARKDOWN], ids=[c[0] for c in MARKDOWN]
)
def test_markdown_and_references_kept(kind: str, text: str, expected: str) -> None:
    doc = parse_document(text, kind)
    new = apply_edits(text, compress_document(doc, COUNTER))
    assert new == expected
    reparsed = parse_document(new, kind)
    assert [(r.form, r.target) for r in extract_references(reparsed)] == [
        (r.form, r.target) for r in extract_references(doc)
    ]
    assert ["".join(new[c.start : c.end].split()) for c in reparsed.comments] == [
        "".join(text[c.start : c.end].split()) for c in doc.comments
    ]


def test_a_smaller_form_that_changes_references_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verdicts: list[bool] = []
    kept_by = compress._Shape.kept_by

    def spy(self: compress._Shape, edits: list[RegionEdit]) -> bool:
        verdicts.append(kept_by(self, edits))
        return verdicts[-1]

    monkeypatch.setattr(compress._Shape, "kept_by", spy)
    text = "<note>\n  Read [the\n  guide](docs/guide.md) first.\n</note>\n"
    [edit] = compress_document(parse_document(text, "module"), COUNTER)
    assert verdicts[0] is False  # the smallest form made `[the guide](...)` a link
    assert verdicts[-1] is True
    assert edit.new_text == "<note>Read [the\nguide](docs/guide.md) first.</note>"


# --------------------------------------------------------------------------------------------
# Properties on generated XML
# --------------------------------------------------------------------------------------------

_NAMES = st.sampled_from(["a", "step", "rule_1", "p:x", "café"])
_WORDS = st.sampled_from(
    ["alpha", "beta", "&amp;", "&lt;x&gt;", "é", "a\u00a0b", "1,000", "--", "`code`", "don't"]
)
_WS = st.sampled_from(["", " ", "  ", "\n", "\n  ", "\t", "\n\n    ", " \n"])
_ATTR_VALUES = st.sampled_from(["1", "two words", " padded ", "a&amp;b", "line\nbreak", ""])


@st.composite
def _text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(_WS, _WORDS), max_size=4))
    return "".join(ws + word for ws, word in parts) + draw(_WS)


@st.composite
def _attributes(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(["x", "id", "q:k", "name"]), unique=True, max_size=3))
    out = []
    for name in names:
        quote = draw(st.sampled_from(['"', "'"]))
        value = draw(_ATTR_VALUES)
        space = draw(st.sampled_from([" ", "\n    ", "  "]))
        eq = draw(st.sampled_from(["=", " = ", "=\n"]))
        out.append(f"{space}{name}{eq}{quote}{value}{quote}")
    return "".join(out)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        name = draw(_NAMES)
        attrs = draw(_attributes())
        if draw(st.integers(0, 9)) == 0:
            attrs += ' xml:space="preserve"'
        items = draw(st.lists(children, max_size=4))
        extra = draw(
            st.sampled_from(["", "<!-- note -->", "<![CDATA[ raw  <x> ]]>", "<?pi  data?>"])
        )
        if extra:
            items.insert(draw(st.integers(0, len(items))), extra)
        seps = [draw(_WS) for _ in range(len(items) + 1)]
        content = "".join(s + item for s, item in zip(seps, [*items, ""], strict=True))
        tail_space = draw(st.sampled_from(["", " ", "\n"]))
        if not content and draw(st.booleans()):
            return f"<{name}{attrs}{tail_space}/>"
        return f"<{name}{attrs}{tail_space}>{content}</{name}{draw(st.sampled_from(['', ' ']))}>"

    return build()


_FRAGMENTS = st.recursive(_text(), _element, max_leaves=12)


@st.composite
def _fragment(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_FRAGMENTS, min_size=1, max_size=3))
    return "".join(draw(_WS) + p for p in parts) + draw(_WS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_fragment(), level=st.sampled_from(LEVELS), remove_comments=st.booleans())
def test_property_results_verify_save_tokens_and_are_idempotent(
    text: str, level: Level, remove_comments: bool
) -> None:
    assert canonical(text, level) is not None  # the generator makes well-formed XML
    result = compress_xml(text, COUNTER, level=level, remove_comments=remove_comments)
    if result is None:
        return
    assert result.restructured
    assert_sound(text, result, level, remove_comments)
    again = compress_xml(result.text, COUNTER, level=level, remove_comments=remove_comments)
    assert again is None or again.text == result.text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_fragment(), cut=st.integers(min_value=0))
def test_property_malformed_trim_keeps_lines_and_characters(text: str, cut: int) -> None:
    tags = list(re.finditer(r"</[^>]*>", text))
    if not tags:
        return
    tag = tags[cut % len(tags)]
    broken = text[: tag.start()] + text[tag.end() :]  # an element never closed
    result = compress_xml(broken, COUNTER)
    if result is None:
        return
    assert not result.restructured
    assert "".join(broken.split()) == "".join(result.text.split())
    assert len(broken.splitlines()) == len(result.text.splitlines())
    assert result.tokens_after < result.tokens_before
    assert compress_xml(result.text, COUNTER) is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_fragment(), prose=_text())
def test_property_documents_keep_their_markdown(body: str, prose: str) -> None:
    prose = prose.replace("`", "'")
    text = f"# Title\n\n{prose}\n\n```xml\n{body}\n```\n\n{prose}\n"
    doc = parse_document(text, "module")
    edits = compress_document(doc, COUNTER)
    new = apply_edits(text, edits)
    reparsed = parse_document(new, "module")
    assert [(f.info, f.closed) for f in reparsed.fences] == [(f.info, f.closed) for f in doc.fences]
    assert len(reparsed.regions) == len(doc.regions)
    for edit in edits:
        assert edit.new_text.endswith("\n") or edit.compressed.text == edit.new_text
    fence = doc.fences[0]
    assert new.endswith(text[fence.end :])
    assert new.startswith(text[: fence.content_start])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=_fragment(),
    level=st.sampled_from(LEVELS),
    kind=st.sampled_from(["module", "memory"]),
    indent=st.sampled_from(["", "  ", "    "]),
)
# Five slots in one group (no letter to cut at): the second compression found a saving.
@example(body="&amp;\n1,000\n--\n1,000", level="whitespace", kind="module", indent="")
def test_property_raw_regions_keep_their_markdown(
    body: str, level: Level, kind: str, indent: str
) -> None:
    # Raw XML in markdown: backticks in the generated text make code spans, copied verbatim;
    # comments at the start of a line are markdown block comments.
    body = body.replace("\n", "\n" + indent)
    text = f"# Title\n\n<root>\n{body}\n</root>\n\nAfter.\n"
    doc = parse_document(text, kind)
    edits = compress_document(doc, COUNTER, level=level)
    new = apply_edits(text, edits)
    reparsed = parse_document(new, kind)
    assert ["".join(new[c.start : c.end].split()) for c in reparsed.comments] == [
        "".join(text[c.start : c.end].split()) for c in doc.comments
    ]
    assert [(r.form, r.target) for r in extract_references(reparsed)] == [
        (r.form, r.target) for r in extract_references(doc)
    ]
    assert [(r.form, r.check.well_formed) for r in reparsed.regions] == [
        (r.form, r.check.well_formed) for r in doc.regions
    ]
    assert [new[c.start : c.end] for c in reparsed.code_spans] == [
        text[c.start : c.end] for c in doc.code_spans
    ]
    assert new.endswith("\n\nAfter.\n")
    for edit in edits:
        assert edit.compressed.tokens_after < edit.compressed.tokens_before
    assert compress_document(reparsed, COUNTER, level=level) == []


@pytest.mark.parametrize(
    ("fence", "expected"),
    [
        (
            "  ```py\n  def f():\n      return 1\n ok\n  ```\n",
            "```py\ndef f():\n    return 1\nok\n```\n",
        ),
        ("   ~~~\n     x\n   ~~~", "~~~\n  x\n~~~"),
        ("```\n  x\n```\n", "```\n  x\n```\n"),  # (not indented: nothing to remove)
        ("    ```\n    x\n    ```\n", "    ```\n    x\n    ```\n"),  # (indented code, no fence)
        ("  ```\n\tx\n  ```\n", "  ```\n\tx\n  ```\n"),  # (a tab's columns depend on where it is)
        ("  <!-- a\n  b -->\n", "  <!-- a\n  b -->\n"),  # (a block comment)
        # (Four spaces in, a fence mark is content; with two less it would close the fence.)
        ("  ```\n      ```\n  ```\n", "  ```\n      ```\n  ```\n"),
    ],
)
def test_fence_dedent_keeps_the_fence_content(fence: str, expected: str) -> None:
    """A fence indented N spaces loses up to N spaces of each line: its content, by
    CommonMark's rule, is the same."""
    assert compress._cut(fence, compress._fence_dedent_cuts(fence, 0, len(fence))) == expected

    def content(text: str) -> list[str]:
        """Each fence's content as CommonMark reads it: its lines, less up to as many spaces
        as the opening fence line has."""
        doc = parse_document(text, "module")
        out = []
        for f in doc.fences:
            opening = text[f.start : f.end]
            indent = len(opening) - len(opening.lstrip(" "))
            lines = text[f.content_start : f.content_end].splitlines(keepends=True)
            out.append("".join(ln[min(indent, len(ln) - len(ln.lstrip(" "))) :] for ln in lines))
        return out

    assert content(expected) == content(fence)


def test_lossless_keeps_the_fences_as_they_are() -> None:
    text = "<all>\n  <example>Run this:\n  ```bash\n  ls\n  ```\n  </example>\n</all>\n"
    (edit,) = compress_document(parse_document(text, "module"), COUNTER, level="lossless")
    assert edit.new_text == "<all><example>Run this:\n  ```bash\n  ls\n  ```\n  </example></all>"
    (edit,) = compress_document(parse_document(text, "module"), COUNTER)
    assert edit.new_text == "<all><example>Run this:\n```bash\nls\n```\n</example></all>"


def test_malformed_raw_region_trims_its_lines_and_dedents_its_fences() -> None:
    text = (
        "<task>\n  <step>\n    Run:\n\n  ```bash\n  ls   -la\n    | sort\n  ```\n\n"
        "    Done.\n  </stp>\n</task>\n"
    )
    doc = parse_document(text, "command")
    (region,) = doc.regions
    assert not region.check.well_formed
    (edit,) = compress_document(doc, COUNTER)
    assert not edit.compressed.restructured
    new = apply_edits(text, [edit])
    assert new == (
        "<task>\n<step>\nRun:\n\n```bash\nls   -la\n  | sort\n```\n\nDone.\n</stp>\n</task>\n"
    )
    fences = parse_document(new, "command").fences
    assert [new[f.content_start : f.content_end] for f in fences] == ["ls   -la\n  | sort\n"]
