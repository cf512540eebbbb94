"""Parsing one file: frontmatter with key positions, markdown structure, XML regions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptls.analysis.document import (
    RegionCache,
    frontmatter_end,
    parse_document,
    parse_packed,
    unpack_document,
)

FM = "---\ndescription: Ship it\nallowed-tools: Bash(git:*)\n---\n# Ship\n"


def test_frontmatter_keys_and_positions() -> None:
    doc = parse_document(FM, "command")
    assert doc.frontmatter is not None
    assert [k.name for k in doc.frontmatter.keys] == ["description", "allowed-tools"]
    key = doc.frontmatter.keys[0]
    assert FM[key.start : key.end] == "description"
    assert FM[key.value_start : key.value_end] == "Ship it"
    assert key.value == "Ship it"
    assert doc.frontmatter.end == FM.index("# Ship")
    assert frontmatter_end(FM) == doc.frontmatter.end


FM_ERRORS = [
    ("bad-yaml", "---\ndescription: 'open\n---\nbody\n", "not valid YAML"),
    (
        "colon-in-plain-value",
        "---\ndescription: Runs a loop: review, fix, merge\n---\nbody\n",
        "a value holding `: ` needs quotes around it",
    ),
    (
        "text-after-a-list",
        "---\nskills:\n  - [PROJECT]-api-patterns\n---\nbody\n",
        "the value ended at its closing `]`: put quotes around all of it",
    ),
    (
        "text-after-a-quoted-value",
        '---\ndescription: "Ship" it now\n---\nbody\n',
        'the value ended at its closing `"`: put quotes around all of it',
    ),
    ("not-mapping", "---\n- a\n- b\n---\nbody\n", "must be a mapping"),
    ("never-closed", "---\ndescription: x\nbody\n", "never closed"),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in FM_ERRORS], ids=[c[0] for c in FM_ERRORS]
)
def test_frontmatter_errors(text: str, message: str) -> None:
    doc = parse_document(text, "command")
    assert doc.frontmatter is not None and doc.frontmatter.error is not None
    assert message in doc.frontmatter.error[0]
    _, start, end = doc.frontmatter.error
    assert 0 <= start <= end <= len(text)


@pytest.mark.parametrize("kind", ["module", "command", "other"])
def test_a_file_opening_with_an_xml_declaration_is_one_xml_document(kind: str) -> None:
    text = (
        '\ufeff<?xml version="1.0"?>\n<!-- a note -->\n<behavior>\n  <step>x</step>\n</behavior>\n'
    )
    doc = parse_document(text, kind)
    assert [(r.form, r.start, r.end) for r in doc.regions] == [("document", 0, len(text))]
    # (`<?xml-stylesheet ...?>` is a processing instruction, not the declaration)
    assert [
        r.form for r in parse_document("<?xml-stylesheet href='s'?>\n<a/>\n", kind).regions
    ] != ["document"]


@pytest.mark.parametrize("kind", ["module", "other"])
def test_a_file_named_xml_is_one_xml_document(kind: str) -> None:
    """A `*.xml` file is XML whatever it opens with: a fence or backticks inside are text of its
    elements, not markdown; several top-level elements are one region, checked as a sequence
    of elements (as a prompt's XML blocks are). The same text in a markdown file is markdown
    holding raw XML."""
    text = (
        "<task id='t'>\n  <code>\n```xml\n<step n='2'>\n```\n  </code>\n"
        "  <note>Run `make`\n\n and `test`</note>\n</task>\n"
    )
    doc = parse_document(text, kind, xml_file=True)
    assert doc.xml_file
    assert [(r.form, r.start, r.end) for r in doc.regions] == [("document", 0, len(text))]
    assert not doc.fences and not doc.code_spans
    assert not doc.regions[0].check.well_formed  # (`<step n='2'>` inside <code> is a tag)
    assert parse_document(text, kind).fences  # (as markdown, a fence)
    two = parse_document("<a>x</a>\n<b>y</b>\n", kind, xml_file=True)
    assert [r.form for r in two.regions] == ["document"]
    assert two.regions[0].check.well_formed
    assert [e.name for e in two.regions[0].check.elements] == ["a", "b"]
    assert all(r.form == "raw" for r in parse_document("<a>x</a>\n<b>y</b>\n", kind).regions)


def test_horizontal_rule_is_not_frontmatter() -> None:
    assert parse_document("---\nJust a rule\n", "command").frontmatter is None


def test_headings_fences_and_code_spans() -> None:
    text = "# Title\n\nUse `<b>` here.\n\n```bash\necho '<a>'\n# not a heading\n```\n## Two\n"
    doc = parse_document(text, "module")
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Title"), (2, "Two")]
    assert len(doc.fences) == 1 and doc.fences[0].language == "bash" and doc.fences[0].closed
    assert [text[s.start : s.end] for s in doc.code_spans] == ["`<b>`"]
    assert doc.regions == ()


REGIONS = [
    ("xml-fence", "```xml\n<a><b/></a>\n```\n", [("fence", "<a><b/></a>\n")]),
    ("XML-fence-case", "```XML title\n<a/>\n```\n", [("fence", "<a/>\n")]),
    ("bash-fence-not-checked", "```bash\n<a>\n```\n", []),
    ("untagged-fence-not-checked", "```\n<a>\n```\n", []),
    (
        "raw-one-line",
        "Intro\n\n<purpose>Check it</purpose>\n",
        [("raw", "<purpose>Check it</purpose>")],
    ),
    (
        "raw-multi-line",
        "<rules>\n  <rule>a</rule>\n\n  <rule>b</rule>\n</rules>\nafter\n",
        [("raw", "<rules>\n  <rule>a</rule>\n\n  <rule>b</rule>\n</rules>")],
    ),
    ("raw-html-void-ignored", "Line<br>\n<br>\nText\n", []),
    (
        "raw-unclosed-paragraph",
        "<steps>\n<step>one</step>\n\nMore text\n",
        [("raw", "<steps>\n<step>one</step>")],
    ),
    ("inline-code-not-xml", "Write `<tag>` like this\n", []),
    (
        "indented-backticks-do-not-close",
        "```xml\n<a>\n    ```\n</a>\n```\n",
        [("fence", "<a>\n    ```\n</a>\n")],
    ),
    ("info-string-does-not-close", "```xml\n<a/>\n```json\n```\n", [("fence", "<a/>\n```json\n")]),
    ("four-space-fence-is-not-a-fence", "    ```xml\n    <a>\n", []),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in REGIONS], ids=[c[0] for c in REGIONS]
)
def test_xml_regions(text: str, expected: list[tuple[str, str]]) -> None:
    doc = parse_document(text, "module")
    assert [(r.form, text[r.start : r.end]) for r in doc.regions] == expected


def test_prompt_component_document_with_cdata() -> None:
    text = (
        "<prompt_component>\n  <body><![CDATA[\n```bash\necho </body>\n```\n]]></body>\n"
        "</prompt_component>\n"
    )
    doc = parse_document(text, "component")
    assert len(doc.regions) == 1
    region = doc.regions[0]
    assert text[region.start : region.end] == text.rstrip("\n")
    assert region.check.well_formed
    assert region.check.cdata


def test_whole_xml_file_is_one_region() -> None:
    text = '<?xml version="1.0"?>\n<config><name>x</name></config>\n'
    doc = parse_document(text, "project-config")
    assert [(r.form, r.start, r.end) for r in doc.regions] == [("document", 0, len(text))]
    assert doc.regions[0].check.well_formed


def test_malformed_region_points_at_culprit() -> None:
    text = "# M\n\n```xml\n<module>\n  <step>one\n</module>\n```\nafter\n"
    doc = parse_document(text, "module")
    (region,) = doc.regions
    problems = [p for p in region.check.problems if p.severity == 1]
    assert problems
    culprit = problems[0]
    assert text[region.start + culprit.start : region.start + culprit.end].startswith("<step")


LOADED = [
    ("command-strips-frontmatter", "command", FM, "# Ship\n"),
    ("module-keeps-frontmatter", "module", FM, FM),
    ("memory-strips-block-comments", "memory", "a\n<!-- note\nmore -->\nb\n", "a\nb\n"),
    ("memory-keeps-fenced-comments", "memory", "```\n<!-- c -->\n```\n", "```\n<!-- c -->\n```\n"),
    ("memory-keeps-inline-comments", "memory", "a <!-- c --> b\n", "a <!-- c --> b\n"),
    ("command-keeps-comments", "command", "a\n<!-- c -->\nb\n", "a\n<!-- c -->\nb\n"),
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), [c[1:] for c in LOADED], ids=[c[0] for c in LOADED]
)
def test_loaded_text(kind: str, text: str, expected: str) -> None:
    assert parse_document(text, kind).loaded_text() == expected


def test_unclosed_block_comment() -> None:
    doc = parse_document("a\n<!-- never closed\nb\n", "memory")
    assert doc.unclosed_comment is not None
    assert doc.loaded_text() == "a\n"


BUDGETS = [
    ("estimated", "<context_budget>Estimated tokens: ~6,000</context_budget>", 6000),
    ("k-suffix", "<context_budget>~10K tokens</context_budget>", 10000),
    ("none", "<context_budget>small</context_budget>", None),
]


@pytest.mark.parametrize(("xml", "expected"), [c[1:] for c in BUDGETS], ids=[c[0] for c in BUDGETS])
def test_context_budget(xml: str, expected: int | None) -> None:
    text = f"```xml\n<command>\n{xml}\n</command>\n```\n"
    found = parse_document(text, "command").context_budget()
    assert (found[0] if found else None) == expected
    if found:
        assert text[found[1] : found[2]].replace(",", "").rstrip("kK").strip().isdigit()


def test_reduced_document() -> None:
    doc = parse_document("<a>" * 10, "module", reduced=True)
    assert doc.reduced and doc.regions == ()


PACKED_DOCUMENTS = [
    ("frontmatter", FM + "\n```xml\n<a>x</a>\n```\n", "command"),
    ("bad-frontmatter", "---\na: [\n---\n# T\n", "agent"),
    (
        "raw-xml-with-masked-fence",
        "<raw>\n```\n<not-xml>\n```\n</raw>\n\n`code` and <b>x</b>\n",
        "module",
    ),
    ("same-region-twice", "```xml\n<a/>\n```\n\n```xml\n<a/>\n```\n", "module"),
    ("malformed", "# H\n\n```xml\n<a><b></a>\n```\n<!-- open comment\n", "memory"),
    ("xml-file", '<?xml version="1.0"?>\n<config><x a="1"/></config>\n', "project-config"),
    ("plain", "no markup at all\n", "module"),
]


@pytest.mark.parametrize(
    ("text", "kind"),
    [(t, k) for _, t, k in PACKED_DOCUMENTS],
    ids=[i for i, _, _ in PACKED_DOCUMENTS],
)
def test_a_packed_document_unpacks_to_the_same_document(text: str, kind: str) -> None:
    """What a worker process sends back: the same document, and the region checks cached under
    the keys `parse_document` looks them up by."""
    import pickle

    here: RegionCache = {}
    expected = parse_document(text, kind, regions=here)
    _, packed = parse_packed(text, kind)
    cache: RegionCache = {}
    got = unpack_document(text, kind, pickle.loads(pickle.dumps(packed)), cache)
    assert got == expected
    assert cache.keys() == here.keys()
    assert parse_document(text, kind, regions=cache) == expected
    assert all(
        r.check is cache[(text[r.start : r.end], ())] for r in got.regions if r.form != "raw"
    )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="`\n\r \tab", max_size=40))
def test_fast_code_span_patterns_match_the_plain_ones(text: str) -> None:
    """The patterns written for `re`'s literal-prefix search find what the plain ones find."""
    import re

    from promptls.analysis import document

    def spans(pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        return [m.span() for m in pattern.finditer(text)]

    assert spans(document._BACKTICKS) == spans(re.compile("`+"))
    if "\r" not in text:
        assert spans(document._BLANK_LINE_BREAK) == spans(document._SPAN_BREAK)
