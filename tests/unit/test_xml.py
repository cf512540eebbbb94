"""Tests for the XML checker and element scanner (promptls.analysis.xml)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from promptls.analysis import xml
from promptls.analysis.findings import Severity
from promptls.analysis.xml import (
    PackedElements,
    ShiftedElements,
    XmlCheck,
    XmlProblem,
    check_region,
    is_name_start,
    pack_check,
    raw_element_end,
    recheck_region,
    unpack_check,
)

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def found(text: str, check: XmlCheck) -> list[tuple[str, str]]:
    """Each problem as (kind, the text it covers)."""
    return [(p.kind, text[p.start : p.end]) for p in check.problems]


def strict_parse_fails(fragment: str) -> bool:
    """lxml's strict verdict on a fragment wrapped in a root element (no DTD, no entities).

    Namespace prefixes are declared on the wrapper, as promptls does: a prompt fragment may use
    `<p:x>` without declaring `p`.
    """
    prefixes = sorted(set(re.findall(r"[<\s/]([A-Za-z_][\w.-]*):(?=[A-Za-z_])", fragment)))
    declarations = "".join(
        f' xmlns:{p}="urn:test:{p}"' for p in prefixes if p not in ("xml", "xmlns")
    )
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        recover=False,
    )
    wrapped = f"<_promptls_root{declarations}>{fragment}</_promptls_root>".encode()
    try:
        etree.fromstring(wrapped, parser)
    except etree.XMLSyntaxError:
        return True
    return False


def blank_out(text: str, problems: tuple[XmlProblem, ...]) -> str:
    """`text` with the spans of the non-error problems replaced by spaces."""
    chars = list(text)
    for p in problems:
        if p.severity is not Severity.ERROR:
            chars[p.start : p.end] = " " * (p.end - p.start)
    return "".join(chars)


def assert_invariants(text: str, check: XmlCheck) -> None:
    n = len(text)
    for e in check.elements:
        assert 0 <= e.start <= e.start_tag_end <= e.content_end <= e.end <= n, e
        assert e.content_start == e.start_tag_end
        for a in e.attributes:
            assert e.start <= a.name_start <= a.value_start <= a.value_end <= n
    for p in check.problems:
        assert 0 <= p.start <= p.end <= n, p
    assert [p.start for p in check.problems] == sorted(p.start for p in check.problems)
    assert [e.start for e in check.elements] == sorted(e.start for e in check.elements)
    for c in check.comments:
        assert 0 <= c.start <= c.end <= n
    for start, end in check.cdata:
        assert 0 <= start <= end <= n
    assert check.well_formed == (not any(p.severity is Severity.ERROR for p in check.problems))


# --------------------------------------------------------------------------------------------
# Well-formed fragments
# --------------------------------------------------------------------------------------------

WELL_FORMED = [
    ("single-element", "<purpose>Review the diff.</purpose>"),
    ("several-top-level-with-text", "Intro text\n<a>one</a>\nmiddle <b>two</b> tail"),
    ("plain-text-only", "no markup at all, just > and ] and ]] characters"),
    ("empty", ""),
    ("nested", "<steps>\n  <step n='1'>a <b>bold</b></step>\n  <step n='2'/>\n</steps>"),
    ("attribute-spacing", '<a x = "1"   y=\'2\'\n   z\t=\t"3" >t</a>'),
    ("self-closing", "<br/><hr /><img src='x.png' alt=\"\"/>"),
    ("cdata", "<code><![CDATA[ if (a < b && c) { x = '</code>'; } ]]></code>"),
    ("comments", "<a><!-- a comment - with - dashes --><!----></a><!-- top -->"),
    ("xml-declaration", '<?xml version="1.0" encoding="UTF-8"?>\n<doc/>'),
    ("xml-declaration-after-bom", "\ufeff<?xml version='1.0'?><doc/>"),
    ("predefined-entities", "<a t='&quot;&apos;'>&lt;&gt;&amp;&#65;&#x1F600;</a>"),
    ("unicode-names", "<café naïve='oui'>thé</café>"),
    ("namespaced", '<p:meta xmlns:p="urn:x" p:k="v"/><q:other>free prefix</q:other>'),
    ("crlf", "<a>\r\n  <b>x</b>\r\n</a>\r\n"),
    ("end-tag-with-space", "<a>x</a >"),
    ("gt-in-text", "a -> b, x > y"),
]


@pytest.mark.parametrize("text", [t for _, t in WELL_FORMED], ids=[i for i, _ in WELL_FORMED])
def test_well_formed_fragments_have_no_problems(text: str) -> None:
    check = check_region(text)
    assert found(text, check) == []
    assert check.well_formed
    assert check.oracle == "agree"
    without_declaration = re.sub(r"^\ufeff?<\?xml[^>]*\?>", lambda m: " " * len(m[0]), text)
    assert not strict_parse_fails(without_declaration)


# --------------------------------------------------------------------------------------------
# Structural problems: (kind, culprit text), nothing else
# --------------------------------------------------------------------------------------------

STRUCTURAL = [
    (
        "unclosed-inner-element",
        "<steps>\n  <step>one\n  <step>two</step>\n</steps>",
        [("unclosed-element", "<step>")],
    ),
    ("unclosed-at-end", "<step>\n<x/>", [("unclosed-element", "<step>")]),
    (
        "unclosed-with-attributes",
        "<a>\n<b x='1'>\n</a>",
        [("unclosed-element", "<b x='1'>")],
    ),
    (
        "closed-by-ancestor",
        "<root>\n<a>\n<b>\n</root>",
        [("unclosed-element", "<a>"), ("unclosed-element", "<b>")],
    ),
    ("crossed-tags", "<a><b>x</a></b>", [("unclosed-element", "<b>")]),
    ("mismatched-end-tag", "<a><b>x</c></a>", [("mismatched-end-tag", "</c>")]),
    (
        "misspelled-end-tag",
        "<steps>\n  <step>Read</step>\n  <step>Report</stp>\n</steps>",
        [("mismatched-end-tag", "</stp>")],
    ),
    (
        "misspelled-start-tag-then-more",
        "<purpse>text</purpose>\n<steps><step>a</step></steps>",
        [("mismatched-end-tag", "</purpose>")],
    ),
    ("mismatched-at-top", "<a>x</b>", [("mismatched-end-tag", "</b>")]),
    ("stray-end-tag", "text </b> more", [("stray-end-tag", "</b>")]),
    ("stray-extra-end-tag", "<a>x</a></a>", [("stray-end-tag", "</a>")]),
    ("stray-inside", "<a><b>x</c> y</b></a>", [("stray-end-tag", "</c>")]),
    ("unterminated-start-tag", "<a x='1'\n<b>t</b></a>", [("unterminated-tag", "<a")]),
    ("unterminated-at-end", "<a x='1'", [("unterminated-tag", "<a")]),
    ("unterminated-end-tag", "<a>text</a\n<b/>", [("unterminated-tag", "</a")]),
    ("end-tag-space-after-slash", "<a>x</ a>", [("bad-end-tag", "</ a>")]),
    ("unquoted-value", "<a x=1></a>", [("bad-attribute", "1")]),
    ("missing-equals", "<a x></a>", [("bad-attribute", "x")]),
    ("missing-value", "<a x=></a>", [("bad-attribute", "x=")]),
    ("missing-value-self-closing", "<a x=/>", [("bad-attribute", "x=")]),
    ("missing-space-between-attributes", '<a x="1"y="2"/>', [("bad-attribute", "y")]),
    ("garbage-in-tag", "<a ! x='1'></a>", [("bad-attribute", "!")]),
    ("space-before-slash-gt", "<br / >", [("bad-attribute", "/ >")]),
    ("duplicate-attribute", '<a x="1" x="2"/>', [("duplicate-attribute", "x")]),
    (
        "unclosed-quote-runs-into-tags",
        '<step n="1 <b>this</b> more</step>\n<step n="2"/>',
        [("bad-attribute", 'n="')],
    ),
    (
        "unclosed-quote-ends-at-gt",
        '<a x="foo>text</a> <b y="z">t</b>',
        [("bad-attribute", 'x="')],
    ),
    ("unclosed-comment", "<a>\n<!-- note\n<b>text</b>\n</a>", [("unclosed-comment", "<!--")]),
    ("nested-comment", "<a><!-- one <!-- two --> </a>", [("nested-comment", "<!--")]),
    ("double-hyphen", "<!-- a -- b -->", [("double-hyphen-in-comment", "--")]),
    ("comment-ends-with-three-hyphens", "<!-- a --->", [("double-hyphen-in-comment", "--")]),
    ("unclosed-cdata", "<a><![CDATA[ x </a>", [("unclosed-cdata", "<![CDATA[")]),
    ("unterminated-doctype", "<!DOCTYPE html", [("unterminated-tag", "<!DOCTYPE")]),
    ("unterminated-pi", "<?pi never closed", [("unterminated-tag", "<?pi")]),
    ("bad-qname", "<a:b:c/>", [("bad-name", "a:b:c")]),
    ("empty-prefix", "<:a/>", [("bad-name", ":a")]),
    ("xmlns-prefix-on-element", "<xmlns:a/>", [("bad-name", "xmlns:a")]),
    ("empty-namespace", "<a xmlns:p=''/>", [("bad-attribute", "xmlns:p=''")]),
    ("namespace-not-a-uri", "<a xmlns:p='urn: x'/>", [("bad-attribute", "urn: x")]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t, e) for _, t, e in STRUCTURAL],
    ids=[i for i, _, _ in STRUCTURAL],
)
def test_structural_problems_point_at_the_culprit(
    text: str, expected: list[tuple[str, str]]
) -> None:
    check = check_region(text)
    assert found(text, check) == expected
    assert all(p.severity is Severity.ERROR for p in check.problems)
    assert not check.well_formed
    assert check.oracle == "agree"
    assert strict_parse_fails(text)


def test_messages_name_the_elements() -> None:
    text = "<a><b>x</c></a><step>"
    messages = [p.message for p in check_region(text).problems]
    assert messages == ["mismatched end tag </c>: expected </b>", "<step> is never closed"]


def test_mismatched_end_tag_offers_the_expected_tag_as_fix() -> None:
    (problem,) = check_region("<a><b>x</c></a>").problems
    assert problem.fix == "</b>"


# --------------------------------------------------------------------------------------------
# Lexical problems: warnings with a fix; the region stays well-formed
# --------------------------------------------------------------------------------------------

LEXICAL = [
    ("bare-lt-number", "p95 <200ms", [("bare-lt", "<", "&lt;")]),
    ("bare-lt-spaced", "<rule>a < b</rule>", [("bare-lt", "<", "&lt;")]),
    ("bare-lt-le", "x <= y", [("bare-lt", "<", "&lt;")]),
    ("bare-lt-end-of-text", "trailing <", [("bare-lt", "<", "&lt;")]),
    ("bare-lt-digit-name", "<1a/>", [("bare-lt", "<", "&lt;")]),
    ("bare-amp-word", "R&D", [("bare-amp", "&", "&amp;")]),
    ("bare-amp-double", "a && b", [("bare-amp", "&", "&amp;"), ("bare-amp", "&", "&amp;")]),
    ("bare-amp-no-semicolon", "&nbsp here", [("bare-amp", "&", "&amp;")]),
    ("html-entity", "&nbsp;", [("undefined-entity", "&nbsp;", "&#160;")]),
    ("html-entity-in-element", "<b>x &copy; y</b>", [("undefined-entity", "&copy;", "&#169;")]),
    ("unknown-entity", "&madeup;", [("undefined-entity", "&madeup;", "&amp;madeup;")]),
    ("bad-char-ref", "&#0; &#65;", [("bad-char-ref", "&#0;", None)]),
    ("cdata-end-in-text", "x ]]> y", [("cdata-end-in-text", "]]>", "]]&gt;")]),
    ("lt-in-attribute", "<a title='use <b> for bold'/>", [("bare-lt", "<", "&lt;")]),
    ("amp-in-attribute", "<a b='R&D'/>", [("bare-amp", "&", "&amp;")]),
    ("entity-in-attribute", "<a b='&hellip;'/>", [("undefined-entity", "&hellip;", "&#8230;")]),
    ("autolink", "<p>See <https://example.com></p>", [("bare-lt", "<", "&lt;")]),
    ("email-autolink", "mail <me@example.com>", [("bare-lt", "<", "&lt;")]),
    ("not-a-comment", "<!important>", [("bare-lt", "<", "&lt;")]),
    ("control-character", "<a>\x01</a>", [("invalid-character", "\x01", "")]),
    ("stray-quote-start-tag", '<a">t</a>', [("stray-quote", '"', "")]),
    ("stray-quote-end-tag", '<a>t</a ">', [("stray-quote", '"', "")]),
    ("stray-quote-after-attribute", "<a x='1''>t</a>", [("stray-quote", "'", "")]),
    ("stray-quote-empty-element", '<a x="1" " />', [("stray-quote", '"', "")]),
    (
        "stray-quote-both-tags",
        '<update_frequency">daily</update_frequency">',
        [("stray-quote", '"', ""), ("stray-quote", '"', "")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t, e) for _, t, e in LEXICAL],
    ids=[i for i, _, _ in LEXICAL],
)
def test_lexical_problems_are_warnings_with_a_fix(
    text: str, expected: list[tuple[str, str, str | None]]
) -> None:
    check = check_region(text)
    assert [(p.kind, text[p.start : p.end], p.fix) for p in check.problems] == expected
    assert all(p.severity is Severity.WARNING for p in check.problems)
    assert check.well_formed
    assert check.oracle == "agree"
    assert not strict_parse_fails(blank_out(text, check.problems))


@pytest.mark.parametrize(
    ("text", "escape"),
    [("p95 <200ms", "write &lt;"), ("R&D", "write &amp;"), ("&nbsp;", "write &#160;")],
    ids=["lt", "amp", "entity"],
)
def test_lexical_messages_suggest_the_escape(text: str, escape: str) -> None:
    (problem,) = check_region(text).problems
    assert escape in problem.message


def test_a_stray_quote_is_named_with_its_tag() -> None:
    text = '<metric">x</metric">'
    assert [p.message for p in check_region(text).problems] == [
        'stray " in start tag <metric>: delete it',
        'stray " in end tag </metric>: delete it',
    ]
    # Not where it could start a value: one error for the tag, as before.
    (problem,) = check_region('<a "x">t</a>').problems
    assert problem.kind == "bad-attribute" and problem.severity is Severity.ERROR


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("<step>Run npm install <package> then test</step>", "&lt;package>"),
        ("<usage>/ship <issue-number> [--draft]</usage>", "&lt;issue-number>"),
        ("Replace <YOUR_NAME> with yours.", "&lt;YOUR_NAME>"),
        ("<a>\n  <step>\n  do x\n</a>", None),  # (over lines: an element left open)
        ("<a><b><c/></a>", None),  # (it holds an element)
        ("<a>x <b k='v'> y</a>", None),  # (it has attributes)
    ],
)
def test_an_unclosed_placeholder_is_offered_its_escape(text: str, fix: str | None) -> None:
    (problem,) = check_region(text).problems
    assert problem.kind == "unclosed-element" and problem.severity is Severity.ERROR
    assert problem.fix == fix
    if fix is not None:
        fixed = text[: problem.start] + fix + text[problem.end :]
        assert check_region(fixed).problems == ()


def test_applying_the_fixes_gives_a_clean_region() -> None:
    text = "<rules>p95 <200ms for R&D &nbsp; a && b</rules>"
    check = check_region(text)
    fixed = text
    for p in sorted(check.problems, key=lambda p: p.start, reverse=True):
        assert p.fix is not None
        fixed = fixed[: p.start] + p.fix + fixed[p.end :]
    assert fixed == "<rules>p95 &lt;200ms for R&amp;D &#160; a &amp;&amp; b</rules>"
    assert check_region(fixed).problems == ()


# --------------------------------------------------------------------------------------------
# Information: DOCTYPEs and processing instructions
# --------------------------------------------------------------------------------------------

INFORMATION = [
    ("doctype", "<!DOCTYPE note>\n<note/>", [("doctype", "<!DOCTYPE note>")]),
    ("doctype-lowercase", "<a>\n<!doctype html>\n</a>", [("doctype", "<!doctype html>")]),
    (
        "doctype-internal-subset",
        "<!DOCTYPE x [\n  <!ENTITY a 'b>c'>\n  <!-- ] -->\n]>\n<x/>",
        [("doctype", "<!DOCTYPE x [\n  <!ENTITY a 'b>c'>\n  <!-- ] -->\n]>")],
    ),
    (
        "processing-instruction",
        "<?foo bar?><a/>",
        [("processing-instruction", "<?foo bar?>")],
    ),
    (
        "late-xml-declaration",
        "<a/>\n<?xml version='1.0'?>",
        [("processing-instruction", "<?xml version='1.0'?>")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t, e) for _, t, e in INFORMATION],
    ids=[i for i, _, _ in INFORMATION],
)
def test_doctype_and_processing_instructions_are_information(
    text: str, expected: list[tuple[str, str]]
) -> None:
    check = check_region(text)
    assert found(text, check) == expected
    assert all(p.severity is Severity.INFORMATION for p in check.problems)
    assert check.well_formed


def test_doctype_message() -> None:
    (problem,) = check_region("<!DOCTYPE x [<!ENTITY e 'v'>]><x/>").problems
    assert problem.message == "DOCTYPE ignored: promptls never loads DTDs or expands entities"


def test_billion_laughs_is_never_expanded() -> None:
    entities = "\n".join(f'  <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    text = f'<!DOCTYPE lolz [\n  <!ENTITY lol0 "lol">\n{entities}\n]>\n<lolz>&lol9;</lolz>'
    started = time.perf_counter()
    check = check_region(text)
    assert time.perf_counter() - started < 1.0
    assert [(p.kind, p.severity) for p in check.problems] == [
        ("doctype", Severity.INFORMATION),
        ("undefined-entity", Severity.WARNING),
    ]
    assert check.well_formed
    assert [e.name for e in check.elements] == ["lolz"]


def test_external_entity_is_never_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    text = (
        f'<!DOCTYPE x [<!ENTITY ext SYSTEM "{secret.as_uri()}">]>\n'
        "<x>&ext;</x>\n"
        f'<!ENTITY stray SYSTEM "{secret.as_uri()}">'
    )
    check = check_region(text)
    assert [p.kind for p in check.problems] == ["doctype", "undefined-entity", "bare-lt"]
    assert all("TOP-SECRET" not in p.message for p in check.problems)
    assert check.well_formed


# --------------------------------------------------------------------------------------------
# Mixed regions, masks, the lxml fallback
# --------------------------------------------------------------------------------------------


def test_mixed_region_reports_every_class_in_order() -> None:
    text = (
        "<?xml version='1.0'?>\n"
        "<prompt_component>\n"
        "  <purpose>Keep p95 <200ms for R&D.</purpose>\n"
        "  <!DOCTYPE inner>\n"
        "  <steps>\n"
        "    <step>one\n"
        "  </steps>\n"
        "</prompt_component>\n"
    )
    check = check_region(text)
    assert [(p.kind, text[p.start : p.end], p.severity) for p in check.problems] == [
        ("bare-lt", "<", Severity.WARNING),
        ("bare-amp", "&", Severity.WARNING),
        ("doctype", "<!DOCTYPE inner>", Severity.INFORMATION),
        ("unclosed-element", "<step>", Severity.ERROR),
    ]
    assert not check.well_formed


def test_only_lexical_problems_keep_the_region_well_formed() -> None:
    check = check_region("<a>p95 <200ms &nbsp; R&D</a>")
    assert len(check.problems) == 3
    assert check.well_formed


def test_masks_hide_markup_inside_a_fence() -> None:
    text = "<notes>\n```\n<b> is bold & so on\n```\n</notes>"
    fence_start = text.index("```")
    fence_end = text.rindex("```") + 3
    assert found(text, check_region(text)) == [
        ("unclosed-element", "<b>"),
        ("bare-amp", "&"),
    ]
    masked = check_region(text, [(fence_start, fence_end)])
    assert masked.problems == ()
    assert [e.name for e in masked.elements] == ["notes"]


def test_masks_are_clamped_and_merged() -> None:
    text = "<a>x & y</a>"
    check = check_region(text, [(5, 7), (4, 6), (-3, 0), (12, 99), (7, 3)])
    assert check.problems == ()
    assert [e.name for e in check.elements] == ["a"]


def test_lxml_fallback_reports_what_the_scanner_cannot_see() -> None:
    # libxml2 refuses nesting deeper than 256 without its huge-tree option.
    text = "<a>" * 300 + "</a>" * 300
    check = check_region(text)
    assert check.oracle == "parser-only"
    (problem,) = check.problems
    assert problem.kind == "parser"
    assert problem.severity is Severity.ERROR
    assert 200 * 3 < problem.start < problem.end <= 300 * 3  # where the depth runs out
    assert problem.message == (
        "not well-formed XML: elements nested more than 256 levels deep, which libxml2 (lxml) "
        "refuses to parse"
    )  # (not libxml2's advice to set an option of its own)
    assert not check.well_formed


# --------------------------------------------------------------------------------------------
# Elements, comments, CDATA
# --------------------------------------------------------------------------------------------


def test_elements_in_document_order_with_ranges_and_attributes() -> None:
    text = "<steps kind = \"list\">\n  <step n='1'>a</step>\n  <br/>\n</steps> tail <x/>"
    check = check_region(text)
    names = [(e.name, e.depth, e.self_closing, e.closed) for e in check.elements]
    assert names == [
        ("steps", 0, False, True),
        ("step", 1, False, True),
        ("br", 1, True, True),
        ("x", 0, True, True),
    ]
    steps, step, br, _ = check.elements
    assert text[steps.start : steps.start_tag_end] == '<steps kind = "list">'
    assert text[steps.content_end : steps.end] == "</steps>"
    assert text[step.content_start : step.content_end] == "a"
    assert br.end == br.start_tag_end == br.content_end
    (kind,) = steps.attributes
    assert (kind.name, kind.value) == ("kind", "list")
    assert text[kind.name_start : kind.name_start + 4] == "kind"
    assert text[kind.value_start : kind.value_end] == "list"
    assert step.attributes[0].value == "1"


def test_attribute_values_are_raw_and_come_from_the_slow_path_too() -> None:
    text = "<a b='x &amp; y' xml:lang=\"en\" c='&lt;'/>"
    (element,) = check_region(text).elements
    assert [(a.name, a.value) for a in element.attributes] == [
        ("b", "x &amp; y"),
        ("xml:lang", "en"),
        ("c", "&lt;"),
    ]


def test_unclosed_elements_end_at_the_region_end_or_at_the_closing_ancestor() -> None:
    text = "<root><a><b>x</root><open>tail"
    root, a, b, open_ = check_region(text).elements
    assert root.closed and not a.closed and not b.closed and not open_.closed
    assert a.end == a.content_end == b.end == text.index("</root>")
    assert open_.end == open_.content_end == len(text)


def test_elements_hidden_by_an_unclosed_comment_are_not_reported() -> None:
    text = "<a><b>x<!-- no end"
    check = check_region(text)
    assert found(text, check) == [("unclosed-comment", "<!--")]
    assert [(e.name, e.closed, e.end) for e in check.elements] == [
        ("a", False, len(text)),
        ("b", False, len(text)),
    ]
    assert [(c.start, c.end, c.closed) for c in check.comments] == [(7, len(text), False)]


def test_comments_and_cdata_are_recorded() -> None:
    text = "<a><!-- c1 --><![CDATA[ <b> ]]></a><!-- c2 -->"
    check = check_region(text)
    assert [text[c.start : c.end] for c in check.comments] == ["<!-- c1 -->", "<!-- c2 -->"]
    assert all(c.closed for c in check.comments)
    assert [text[s:e] for s, e in check.cdata] == ["<![CDATA[ <b> ]]>"]
    assert [e.name for e in check.elements] == ["a"]


# --------------------------------------------------------------------------------------------
# raw_element_end and names
# --------------------------------------------------------------------------------------------

RAW_END = [
    ("simple", "<purpose>text</purpose> after", "</purpose>"),
    ("nested-same-name", "<a><a>x</a> y</a> after", "y</a>"),
    ("comment-holds-end-tag", "<a><!-- </a> --> x</a> after", "x</a>"),
    ("cdata-holds-end-tag", "<a><![CDATA[ </a> ]]> x</a>", "x</a>"),
    ("other-names-ignored", "<a><b></c> x</a>", "x</a>"),
    ("end-tag-with-space", "<a>x</a  > after", "</a  >"),
    ("self-closing-nested", "<a><a/>x</a>", "x</a>"),
    ("attributes-with-gt", "<a t='x > y'>z</a>", "z</a>"),
    ("self-closing", "<a x='1'/> after", "<a x='1'/>"),
]


@pytest.mark.parametrize(
    ("text", "ends_with"), [(t, e) for _, t, e in RAW_END], ids=[i for i, _, _ in RAW_END]
)
def test_raw_element_end(text: str, ends_with: str) -> None:
    end = raw_element_end(text, 0)
    assert end is not None
    assert text[:end].endswith(ends_with)


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("<a>never closed", 0),
        ("<a><a>x</a>", 0),
        ("<a><!-- </a>", 0),
        ("not a tag", 0),
        ("<1a>", 0),
        ("<a x='1'", 0),
        ("<a>x</a>", -1),
        ("<a>x</a>", 99),
    ],
    ids=[
        "unclosed",
        "inner-closed-only",
        "in-unclosed-comment",
        "no-tag",
        "bad-name",
        "unterminated",
        "negative-start",
        "past-the-end",
    ],
)
def test_raw_element_end_none(text: str, start: int) -> None:
    assert raw_element_end(text, start) is None


def test_raw_element_end_skips_spans() -> None:
    text = "<a>\n```\n</a>\n```\n</a>"
    fence = (text.index("```"), text.rindex("```") + 3)
    assert raw_element_end(text, 0) == text.index("</a>") + 4
    assert raw_element_end(text, 0, [fence]) == len(text)
    assert raw_element_end(text, 0, [(0, 0), fence]) == len(text)


def test_raw_element_end_from_an_offset() -> None:
    text = "Intro <b>bold</b> and <note>x</note>."
    assert raw_element_end(text, text.index("<note>")) == text.index("</note>") + 7


@pytest.mark.parametrize(
    ("ch", "expected"),
    [
        ("a", True),
        ("Z", True),
        ("_", True),
        (":", True),
        ("é", True),
        ("中", True),
        ("1", False),
        ("-", False),
        (".", False),
        (" ", False),
        ("", False),
        ("ab", False),
    ],
    ids=[
        "a",
        "Z",
        "underscore",
        "colon",
        "e-acute",
        "cjk",
        "digit",
        "hyphen",
        "dot",
        "space",
        "empty",
        "two-chars",
    ],
)
def test_is_name_start(ch: str, expected: bool) -> None:
    assert is_name_start(ch) is expected


# --------------------------------------------------------------------------------------------
# Properties: any input, agreement with lxml, speed
# --------------------------------------------------------------------------------------------

XMLISH_CHARS = "<>/!?-[]&;\"'= \n\tab:x1é\r\x00\ud800\ufffe#%"
XMLISH = st.one_of(
    st.text(alphabet=XMLISH_CHARS, max_size=40),
    st.lists(
        st.one_of(
            st.sampled_from(XMLISH_CHARS),
            st.sampled_from(
                [
                    "<a>",
                    "</a>",
                    "<b x='1'>",
                    "</b>",
                    "<!--",
                    "-->",
                    "<![CDATA[",
                    "]]>",
                    "&amp;",
                    "&nbsp;",
                    "<?p ?>",
                    "<!DOCTYPE d [",
                    "<c/>",
                    "xmlns:p='u'",
                    "p:a",
                    "<a:b>",
                ]
            ),
        ),
        max_size=20,
    ).map("".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=XMLISH, mask=st.tuples(st.integers(-5, 50), st.integers(-5, 50)))
def test_any_input_gives_consistent_offsets(text: str, mask: tuple[int, int]) -> None:
    check = check_region(text, [mask])
    assert_invariants(text, check)
    # Namespace names are the one thing left to lxml alone (libxml2's URI rules).
    assert check.oracle == "agree" or (check.oracle == "parser-only" and "xmlns" in text)
    for start in range(len(text)):
        end = raw_element_end(text, start)
        assert end is None or start < end <= len(text)


FRAGMENT_PARTS = st.sampled_from(
    [
        "<a>",
        "</a>",
        "<b>",
        "</b>",
        "<step n='1'>",
        "</step>",
        "<c/>",
        "<d x='1' y=\"2\"/>",
        "text",
        " ",
        "\n",
        "<!-- c -->",
        "<!--",
        "-->",
        "--",
        "<![CDATA[ < & ]]>",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&lt;",
        "&",
        "&nbsp;",
        "<",
        ">",
        "</",
        "<a x='1'",
        "x=",
        "'",
        '"',
        "<?p data?>",
        "<!DOCTYPE d>",
        "a < b",
        "R&D",
        "</ a>",
        "<a x=1>",
        "<a x>",
        '<a">',
        '</a">',
        "<c x='1' '/>",
        '<b "x">',
    ]
)


@settings(max_examples=600, deadline=None)
@given(parts=st.lists(FRAGMENT_PARTS, max_size=12))
def test_well_formed_agrees_with_a_strict_parse(parts: list[str]) -> None:
    """The scanner alone decides as lxml does on the sanitized fragment (no fallback error added,
    none dropped); checked independently: once the reported warnings and notes are blanked, a
    well-formed region parses, and a region with errors does not parse as written."""
    text = "".join(parts)
    check = check_region(text)
    assert check.oracle == "agree"
    if check.well_formed:
        assert not strict_parse_fails(blank_out(text, check.problems))
    else:
        assert strict_parse_fails(text)


@pytest.mark.parametrize(
    "text",
    [
        "<a " * 20_000,
        "</a>" * 15_000,
        "<a>" * 20_000,
        "<a><b>" * 10_000 + "</c>" * 10_000,
        "<?x " * 15_000,
        "<!DOCTYPE x [ " * 5_000,
        "<a x='" + "<b>" * 20_000,
        "<!-- " + "-- " * 20_000,
        "&" * 60_000,
        "<a>" + "<b x='1' y=\"2\"><!-- c --><![CDATA[ ]]>&amp;</b>" * 20_000 + "</a>",
        "<a " + " ".join(f"x{i}='{i}'" for i in range(20_000)) + "/>",
    ],
    ids=[
        "unterminated",
        "stray",
        "unclosed",
        "mismatched",
        "pi",
        "doctype",
        "quote",
        "hyphens",
        "ampersands",
        "plain",
        "plain-attributes",
    ],
)
def test_garbage_stays_linear(text: str) -> None:
    for packed in (False, True):
        started = time.perf_counter()
        check = check_region(text, packed=packed)
        assert time.perf_counter() - started < 5.0
        assert_invariants(text, check)


def test_a_60kb_region_is_fast() -> None:
    unit = (
        "<purpose>\nYou are a careful reviewer; keep the review concise and actionable.\n"
        '</purpose>\n<steps>\n  <step id="1">Read the diff &amp; the tests.</step>\n'
        '  <step id="2">Check error handling.</step>\n</steps>\n<!-- keep in sync -->\n'
        "<example><![CDATA[ if a < b: pass ]]></example>\n"
    )
    text = unit * (60_000 // len(unit))
    check_region(text)
    best = min(_timed(text) for _ in range(5))
    assert best < 0.1  # typically a few milliseconds; generous for slow CI machines


def _timed(text: str) -> float:
    started = time.perf_counter()
    check_region(text)
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# Checking again after an edit (`recheck_region`)
# --------------------------------------------------------------------------------------------

STEPS = (
    "<steps>\n"
    + "".join(f'  <step id="{i}">Do thing {i} &amp; check it.</step>\n' for i in range(300))
    + "</steps>\n"
)


@pytest.mark.parametrize(
    ("place", "removed", "typed"),
    [
        ('<step id="150">', 2, "x"),  # a start tag renamed: its end tag now mismatches
        ('</step>\n  <step id="150', 3, ""),  # an end tag renamed
        ('id="150"', 1, "kx"),  # an attribute renamed
        ("thing 150", 2, "word"),  # text
        ('<step id="150">', 3, " \n "),  # white space typed in a tag
    ],
    ids=["start-tag", "end-tag", "attribute", "text", "white-space"],
)
def test_a_rename_is_checked_from_near_the_edit(place: str, removed: int, typed: str) -> None:
    """A name (or white space) edited in the middle of a 15,000-character region: the scan
    resumes from a
    checkpoint before the edit and stops where it stands as before (the elements after it are
    moved when read); the check is the one a fresh check gives, problems included."""
    at = STEPS.index(place) + 1 + (place.startswith("</") and 1)
    new = STEPS[:at] + typed + STEPS[at + removed :]
    check = recheck_region(check_region(STEPS), STEPS, new, at, at + removed, at + len(typed))
    assert check is not None and check == check_region(new)
    assert isinstance(check.elements, ShiftedElements) and check.elements.pivot < 160
    back = recheck_region(check, new, STEPS, at, at + len(typed), at + removed)  # (undone)
    assert back is not None and back == check_region(STEPS)


@pytest.mark.parametrize("typed", ["<", ">", '"', "&", "-", ":", "\r", "!"])
def test_markup_typed_is_checked_whole(typed: str) -> None:
    at = STEPS.index('<step id="150">') + 3
    new = STEPS[:at] + typed + STEPS[at:]
    assert recheck_region(check_region(STEPS), STEPS, new, at, at, at + 1) is None


def test_a_rename_after_a_bare_lt_rescans_from_before_it() -> None:
    """Problems that may have been decided by text far ahead (a bare '<' here) are found again:
    the scan resumes before them."""
    text = STEPS.replace("Do thing 10 ", "Do thing 10 < 3 ")
    at = text.index('<step id="150">') + 2
    new = text[:at] + "x" + text[at:]
    check = recheck_region(check_region(text), text, new, at, at, at + 1)
    assert check is not None and check == check_region(new)
    assert [p.kind for p in check.problems][:1] == ["bare-lt"]


NESTED = (
    "<module>\n"
    + "".join(
        f'  <section n="{i}">\n'
        + "".join(f"    <step><action>Do thing {j}</action><done/></step>\n" for j in range(20))
        + "  </section>\n"
        for i in range(20)
    )
    + "</module>\n"
)


def _fragments_parsed(monkeypatch: pytest.MonkeyPatch, reject: str | None = None) -> list[str]:
    """The fragments lxml is asked about from now on; with `reject`, lxml is made to reject
    any fragment holding that text (a disagreement with the scanner)."""
    asked: list[str] = []
    verdict = xml._lxml_verdict

    def spy(fragment: str, prefixes: set[str]) -> tuple[int, str] | None:
        asked.append(fragment)
        if reject is not None and reject in fragment:
            return fragment.index(reject), "rejected here"
        return verdict(fragment, prefixes)

    monkeypatch.setattr(xml, "_lxml_verdict", spy)
    return asked


@pytest.mark.parametrize(
    ("place", "removed", "typed", "well_formed"),
    [
        ('<section n="7">\n    <step><a', 1, "x", False),
        ('<section n="7">\n    <step><action>Do thing 0</action><done', 2, "x", True),
        ('<section n="7">\n    <step><action>Do', 0, "\n", True),
    ],
    ids=["start-tag", "empty-element", "line-break"],
)
def test_a_rename_asks_lxml_only_about_the_element_around_it(
    monkeypatch: pytest.MonkeyPatch, place: str, removed: int, typed: str, well_formed: bool
) -> None:
    """lxml accepted the region before: the innermost element holding the edit in its content
    decides lxml's verdict alone (the text around it reads as before), and the check is the one
    a fresh check gives."""
    at = NESTED.index(place) + len(place) - removed
    new = NESTED[:at] + typed + NESTED[at + removed :]
    old = check_region(NESTED)
    fresh = check_region(new)
    asked = _fragments_parsed(monkeypatch)
    check = recheck_region(old, NESTED, new, at, at + removed, at + len(typed))
    assert check is not None and check == fresh and check.well_formed is well_formed
    assert len(asked) == 1 and len(asked[0]) < 100


def test_where_lxml_alone_rejects_the_element_the_whole_region_says_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scanner accepts what lxml rejects in that element: its offset and message come from
    the whole region, as a fresh check reports them."""
    place = "<action>Do thing 5</action>"
    at = NESTED.index(place, NESTED.index('<section n="4"')) + len("<action>Do thing")
    new = NESTED[:at] + "z" + NESTED[at:]
    old = check_region(NESTED)
    asked = _fragments_parsed(monkeypatch, reject="thingz")
    fresh = check_region(new)
    assert fresh.oracle == "parser-only"
    asked.clear()
    check = recheck_region(old, NESTED, new, at, at, at + 1)
    assert check == fresh and len(asked) == 2
    assert len(asked[0]) < 100 and len(asked[1]) == len(new)


def test_a_rename_in_a_region_lxml_rejected_parses_it_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = NESTED.replace("Do thing 3</action>", "Do thing 3</acton>", 1)
    at = text.index('<section n="12"') + 3
    new = text[:at] + "x" + text[at:]
    old = check_region(text)
    asked = _fragments_parsed(monkeypatch)
    check = recheck_region(old, text, new, at, at, at + 1)
    assert check == check_region(new) and len(asked[0]) == len(new)


# --------------------------------------------------------------------------------------------
# The packed form (what a worker process sends back)
# --------------------------------------------------------------------------------------------

PACKED = [
    *((i, t) for i, t in WELL_FORMED),
    *((i, t) for i, t, _ in STRUCTURAL),
    *((i, t) for i, t, _ in LEXICAL),
    *((i, t) for i, t, _ in INFORMATION),
    ("comments-cdata", "<a><!-- c --><![CDATA[ x < y ]]><b k='v' m=\"w\"/></a><!-- open"),
    ("empty", ""),
]


@pytest.mark.parametrize("text", [t for _, t in PACKED], ids=[i for i, _ in PACKED])
def test_a_packed_check_unpacks_to_the_same_check(text: str) -> None:
    import dataclasses
    import pickle

    check = check_region(text)
    back = unpack_check(pickle.loads(pickle.dumps(pack_check(check))))
    assert back == dataclasses.replace(check, resume=None)
    elements = back.elements
    assert isinstance(elements, PackedElements)
    assert len(elements) == len(check.elements)
    if check.elements:
        assert elements[0] == check.elements[0] and elements[-1] == check.elements[-1]
        assert elements[1:] == check.elements[1:]
        name = check.elements[-1].name
        assert list(back.named(name)) == [e for e in check.elements if e.name == name]
    with pytest.raises(IndexError):
        elements[len(check.elements)]
    assert list(back.named("no-such-element")) == []
    assert tuple(elements) == check.elements and hash(elements) == hash(check.elements)
    # Packed as the scan ends (a worker's check): the same, with nothing kept for a recheck.
    made_packed = check_region(text, packed=True)
    assert made_packed == dataclasses.replace(check, resume=None)
    assert pack_check(made_packed) == pack_check(check)
    assert recheck_region(made_packed, text, text, 0, 0, 0) is None


def _unpacked_equal(text: str, masks: list[tuple[int, int]]) -> None:
    """A worker's check of `text` (packed, perhaps by the plain path) is the scanner's."""
    import dataclasses

    scanned = check_region(text, masks)
    packed = check_region(text, masks, packed=True)
    assert packed == dataclasses.replace(scanned, resume=None)
    assert pack_check(packed) == pack_check(scanned)


_NAMES = st.sampled_from(["a", "step", "depends_on", "x.y-z", "_u", "\u00e9l\u00e8ve", "b2"])
_SPACE = st.sampled_from(["", " ", "\n", "\r\n", "\t", "\n    "])
_TEXT = st.lists(
    st.sampled_from(
        ["text", " ", "\n", "&amp;", "&lt;", "&#65;", "&#x1F600;", ">", "'", '"', "\u00e9"]
    ),
    max_size=4,
).map("".join)


def _attribute(draw: st.DrawFn, name: str) -> str:
    quote = draw(st.sampled_from(["'", '"']))
    quoted = "it's" if quote == '"' else 'say "x"'
    value = draw(st.sampled_from(["", "1", "a > b", "path/to.md", " spaced ", quoted]))
    return f"{draw(_SPACE) or ' '}{name}{draw(_SPACE)}={draw(_SPACE)}{quote}{value}{quote}"


@st.composite
def _plain_element(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(_NAMES)
    attributes = "".join(
        _attribute(draw, n) for n in draw(st.lists(_NAMES, max_size=3, unique=True))
    )
    head = f"<{name}{attributes}{draw(_SPACE)}"
    if depth > 3 or (draw(st.booleans()) and draw(st.booleans())):
        return head + "/>"
    children = draw(
        st.lists(
            st.one_of(
                _TEXT,
                _plain_element(depth + 1),
                st.sampled_from(["<!-- a comment -->", "<!---->", "<![CDATA[ x < y & z ]]>"]),
            ),
            max_size=4,
        )
    )
    return f"{head}>{''.join(children)}</{name}{draw(_SPACE)}>"


PLAIN_REGIONS = st.tuples(
    st.sampled_from(["", "<?xml version='1.0'?>", '\ufeff<?xml version="1.0" ?>\n', "\n  "]),
    st.lists(st.one_of(_plain_element(), _TEXT), min_size=1, max_size=4),
).map(lambda parts: parts[0] + "".join(parts[1]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=PLAIN_REGIONS)
def test_plain_regions_take_the_plain_path_and_find_what_the_scanner_finds(text: str) -> None:
    assert xml._plain_check(text, text) is not None
    _unpacked_equal(text, [])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(XMLISH, st.lists(FRAGMENT_PARTS, max_size=12).map("".join), PLAIN_REGIONS),
    mask=st.tuples(st.integers(-5, 50), st.integers(-5, 50)),
)
def test_a_packed_check_is_the_scanners_whatever_the_input(
    text: str, mask: tuple[int, int]
) -> None:
    _unpacked_equal(text, [mask])


@pytest.mark.parametrize(
    "text",
    [
        "<a>x<?pi data?></a>",
        " <a/><?xml version='1.0'?>",
        "<?xml-stylesheet href='s'?><a/>",
        "<!DOCTYPE a><a/>",
        "<a xmlns='urn:x'/>",
        "<p:a xmlns:p='urn:x'/>",
        "<a href='a&amp;b'/>",
        "<a></b>",
        "<a>",
        "</a>",
        "a < b",
        "<a>&nbsp;</a>",
        "<a x='1' x='2'/>",
        "<!-- a -- b -->",
        "<a/>]]>",
    ],
)
def test_what_is_not_plain_is_left_to_the_scanner(text: str) -> None:
    assert xml._plain_check(text, text) is None
    _unpacked_equal(text, [])


def test_packed_elements_found_by_name_and_attribute_without_making_the_others() -> None:
    check = check_region('<a><m>x</m><b ref="p"/><c/><m/></a>')
    elements = unpack_check(pack_check(check)).elements
    assert isinstance(elements, PackedElements)
    found = list(elements.having({"m"}, {"ref"}))
    assert [(i, e.name) for i, e in found] == [(1, "m"), (2, "b"), (4, "m")]
    assert [e for _, e in found] == [check.elements[i] for i, _ in found]
    assert elements._built is None  # (none made but those)


# The XML 1.0 (fifth edition) productions, as the specification writes them.
_SPEC_NAME_START = (
    ":A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_SPEC_NAME_CHAR = _SPEC_NAME_START + "\\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
_EVERY_CHARACTER = "".join(map(chr, range(0x110000)))


@pytest.mark.parametrize(
    ("built", "spec"),
    [
        (xml.char_class(xml._NAME_START), _SPEC_NAME_START),
        (xml.char_class(xml._NAME_START, xml._NAME_MORE), _SPEC_NAME_CHAR),
        (xml.char_class(xml._NCNAME_START), _SPEC_NAME_START.replace(":", "")),
        (xml.char_class(xml._NCNAME_START, xml._NAME_MORE), _SPEC_NAME_CHAR.replace(":", "")),
    ],
    ids=["NameStartChar", "NameChar", "NCNameStartChar", "NCNameChar"],
)
def test_name_classes_are_the_specifications(built: str, spec: str) -> None:
    """The name character classes, written as negations (faster to compile), match exactly
    the characters of the specification's productions, every code point tried."""
    assert re.findall(built, _EVERY_CHARACTER) == re.findall(f"[{spec}]", _EVERY_CHARACTER)
