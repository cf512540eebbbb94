"""Shortcuts of the analysis must give exactly what a full analysis gives: a file analysed on its
own before the index is built, and (below) incremental updates over random edits."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.tokens import TokenCounter, is_safe_break
from promptls.analysis.workspace import Workspace
from promptls.config import Settings
from tests.conftest import WorkspaceMaker

COMMAND = """---
description: Ship a change
argument-hint: 3
---
```xml
<command purpose="ship">
  <delegation target="modules/dev/change.md">plan</delegation>
  <module>quality/check.md - checks</module>
  <module>quality/missing.md - not there</module>
  <step>unclosed
</command>
```
See [notes](../../notes.txt) and @../../CLAUDE.md
"""
FILES = {
    ".claude/commands/ship.md": COMMAND,
    ".claude/modules/dev/change.md": "```xml\n<module>\n<depends_on>\nquality/check.md\n"
    "</depends_on>\n</module>\n```\n",
    ".claude/modules/quality/check.md": "Check everything twice.\n",
    "notes.txt": "linked text\n",
    "CLAUDE.md": "@.claude/commands/ship.md\n",
}


def _fresh(root: Path) -> WorkspaceIndex:
    s = Settings()
    return WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)


def test_a_file_alone_has_its_own_findings_of_the_full_index(
    make_workspace: WorkspaceMaker,
) -> None:
    root = make_workspace(FILES)
    full = _fresh(root)
    full.index()
    alone = _fresh(root)
    for path, fa in full.files.items():
        early = alone.analyse_alone(path)
        assert early is not None
        assert (early.tokens, early.raw_tokens) == (fa.tokens, fa.raw_tokens)
        assert [(r.status, r.path) for r in early.resolutions] == [
            (r.status, r.path) for r in fa.resolutions
        ]
        own = [(f.code, f.start, f.end) for f in alone.own_findings(early)]
        every = [(f.code, f.start, f.end) for f in full.findings(path)]
        assert set(own) <= set(every)
        assert own == [(f.code, f.start, f.end) for f in full.own_findings(fa)]
    assert not alone.files  # nothing stored
    assert alone.analyse_alone(os.path.join(str(root), "nowhere.md")) is None


# -- incremental updates over random edits --------------------------------------------------------
# The start of a module's XML, in a fence (MODULE) and written straight into the markdown (RAW).
REVIEW_HEAD = """  <purpose>Review the change before it ships; keep it short.</purpose>
  <depends_on>
    quality/check.md
  </depends_on>
  <include>quality/check.md</include>
  <handler workflow="{project-root}/bmad/flows/x.yaml">Then {project-root}/bmad/tasks/w.xml with
    the tasks.</handler>
"""
MODULE = (
    """---
description: a module, like {project-root}/bmad/x.md
---
# Checks

Some prose with `code` and a [link](../../notes.txt).
Plain prose to type in, with no markup: words only.
Load {project-root}/bmad/agents/pm.md with the tasks.

## A heading to retitle

```xml
<module name="review">
"""
    + REVIEW_HEAD
    + """  <procedure>
    <phase id="1" title="read">
      <step>Read the diff &amp; the tests.</step>
      <step>Note every risk in a list: one line each.</step>
      <!-- a comment -- with a double hyphen -->
      <step>Compare with <![CDATA[ <raw> ]]> the plan.</step>
      <step>Unclosed step
    </phase>
    <phase id="2">
      <step>Write the summary: three lines at most.</step>
      <rule>Never skip the tests.</rule>
      <module>quality/check.md - the checks</module>
    </phase>
  </procedure>
  <context_budget>~1,200 tokens</context_budget>
</module>
```

```xml
<rules>
  <rule>One more region, well formed.</rule>
  <rule>components/not-a-line.md is text here.</rule>
</rules>
```
"""
)
# XML written straight into the markdown, as most real frameworks do (raw regions), after a
# frontmatter and a blank line (no safe break: the count pieces cut further on).
RAW = (
    """---
description: review in raw XML
allowed-tools: Read
---

# Review

<command name="review">
"""
    + REVIEW_HEAD
    + """  <procedure>
    <step>Read the diff &amp; the tests, with `git diff` and
    a second line of text; then a third.</step>
    <step>Prose lines inside an element
    # not a heading yet
    more prose</step>
    <!-- a comment -- with a double hyphen -->
    <step>Compare with <![CDATA[ <raw> ]]> the plan.</step>
    <step>Unclosed step
  </procedure>
  <module>quality/check.md - the checks</module>
```xml
<nested>a fence in a raw region</nested>
```
  <context_budget>~1,200 tokens</context_budget>
</command>

<!-- A note for maintainers (a block comment: a memory file loads without it),
     on two lines. -->

Between regions, a paragraph with `code` and a [link](../../notes.txt).

Plain prose to type in, over
two lines with no markup: words only. Load {project-root}/bmad/agents/pm.md with the tasks.

## A heading to retitle

```bash
# a comment in code, not a heading
echo typing in code
```

<notes>an unclosed raw element
runs to the end of its paragraph

<rules>
  <rule>One more region, well formed.</rule>
  <rule>components/not-a-line.md is text here.</rule>
</rules>
"""
)
DOCUMENTS = pytest.mark.parametrize("source", [MODULE, RAW], ids=["fenced", "raw"])
ALPHABET = "abcdefghij klmnop.,:;-_=#*/\t" + "<>&\"'`~[]()@\n\r\\]]>--"


def _edits(seed: int, text: str, count: int) -> list[str]:
    import random

    rng = random.Random(seed)
    versions = []
    for _ in range(count):
        # mostly typing inside element text, sometimes anywhere
        if rng.random() < 0.6:
            spots = [i + 1 for i, ch in enumerate(text) if ch == ">" and i + 1 < len(text)]
        elif rng.random() < 0.5:  # in prose, headings and code
            spots = [i for i, ch in enumerate(text) if ch in "wth#" and i + 1 < len(text)]
        else:
            spots = []
        at = rng.choice(spots) + rng.randint(0, 6) if spots else rng.randint(0, len(text))
        at = min(at, len(text))
        removed = rng.choice([0, 0, 0, 1, 2])
        safe_only = rng.random() < 0.7
        pool = ALPHABET[:28] if safe_only else ALPHABET
        inserted = "".join(rng.choice(pool) for _ in range(rng.choice([0, 1, 1, 1, 3])))
        text = text[:at] + inserted + text[at + removed :]
        versions.append(text)
    return versions


def _summary(index: WorkspaceIndex, path: str) -> object:
    fa = index.files[path]
    return (
        fa.doc,
        fa.raw_tokens,
        fa.tokens,
        fa.resolutions,
        fa.findings,
        index.findings(path),
        index.load_set(path),
    )


@DOCUMENTS
def test_shifted_document_equals_a_fresh_parse(source: str) -> None:
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references

    shifted = prose = extracted = 0
    for seed in range(20):
        old = source
        doc = parse_document(old, "module")
        refs = extract_references(doc)
        for new in _edits(seed, old, 60):
            edit = text_edit(old, new)
            result = shift_document(doc, new, edit, refs)
            fresh = parse_document(new, "module")
            fresh_refs = extract_references(fresh)
            if result is not None:
                shifted += 1
                prose += not any(r.start <= edit.start <= r.end for r in doc.regions)
                assert result[0] == fresh
                assert result[1] is None or result[1] == fresh_refs  # (None: extract again)
                extracted += result[1] is None
            old, doc, refs = new, fresh, fresh_refs
    assert shifted > 120  # the shortcut is really exercised
    assert prose > 25  # in the markdown too
    assert extracted > 5  # and next to references


@DOCUMENTS
def test_line_breaks_typed_and_deleted_shift_as_a_fresh_parse_says(source: str) -> None:
    """Enter typed (a line break, with indentation or not) and line breaks deleted (Backspace
    at a line's start), anywhere: a shift gives the fresh parse, and most of those in words
    are shifts."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references

    doc = parse_document(source, "module")
    refs = extract_references(doc)
    shifted = 0
    for at in range(1, len(source)):
        edits = [source[:at] + "\n" + source[at:], source[:at] + "\n    " + source[at:]]
        if source[at] == "\n":
            edits.append(source[:at] + source[at + 1 :])
        for new in edits:
            result = shift_document(doc, new, text_edit(source, new), refs)
            if result is not None:
                fresh = parse_document(new, "module")
                assert result[0] == fresh, (at, new[at - 20 : at + 20])
                assert result[1] is None or result[1] == extract_references(fresh)
                shifted += source[at - 1].isalpha()
    assert shifted > 40


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("See [the notes](notes.md\nab) here.\n", "See [the notes](notes.md\n) here.\n"),
        ("See [the notes](\nab\nnotes.md) here.\n", "See [the notes](\n\nnotes.md) here.\n"),
        ("See [the notes](notes.md\n) here.\n", "See [the notes](notes.md\nab) here.\n"),
    ],
    ids=["closing-line", "blank-line", "broken"],
)
def test_a_link_running_on_from_an_earlier_line_is_read_again(before: str, after: str) -> None:
    """A link's target and title may follow its `](` on the next lines: an edit on such a line
    (no bracket on it) may make or break the link, so the references are read again."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references

    doc = parse_document(before, "memory")
    result = shift_document(doc, after, text_edit(before, after), extract_references(doc))
    assert result is not None and result[1] is None
    assert result[0] == parse_document(after, "memory")
    assert extract_references(result[0]) != extract_references(doc)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "# T\n\n<task>\n<example>\n[a](./a.ext)\n</example>\n</task>\n",
            "# T\n\n<task>\n<examplx>\n[a](./a.ext)\n</example>\n</task>\n",
        ),
        (
            "# T\n\n<task>\n<exampl>\n[a](./a.ext)\n</example>\n</task>\n",
            "# T\n\n<task>\n<example>\n[a](./a.ext)\n</example>\n</task>\n",
        ),
    ],
    ids=["example-renamed-away", "example-made"],
)
def test_a_rename_that_moves_an_example_reads_the_references_again(before: str, after: str) -> None:
    """Links inside an `<example>` are no references: renaming its tag (checked again from a
    checkpoint) changes which links are, so the references are extracted again."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import region_references, reparse_region, text_edit
    from promptls.analysis.references import extract_references

    doc = parse_document(before, "module")
    edit = text_edit(before, after)
    rechecked = reparse_region(doc, after, edit, {})
    assert rechecked is not None and rechecked == parse_document(after, "module")
    assert region_references(doc, rechecked, edit, extract_references(doc)) is None
    assert extract_references(rechecked) != extract_references(doc)


@DOCUMENTS
@pytest.mark.parametrize(
    "place",
    ["quality/check.md - the", "quality/check.md\n  </depends_on>", "check.md</include>"],
    ids=["module", "depends_on", "include"],
)
def test_typing_in_paths_shifts_and_reads_the_references_again(source: str, place: str) -> None:
    """Typing in the text of `<module>`, `<depends_on>` or an include element (paths the
    references are read from) shifts the document and reads the references again."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references

    at = source.index(place) + len("quality/ch")
    if place == "check.md</include>":
        at = source.index(place) + len("check")
    for typed in ("x", "/", " y", "\n"):
        new = source[:at] + typed + source[at:]
        doc = parse_document(source, "module")
        result = shift_document(doc, new, text_edit(source, new), extract_references(doc))
        assert result is not None and result[1] is None, typed
        assert result[0] == parse_document(new, "module")


@pytest.mark.parametrize(
    ("before", "after", "checked"),
    [
        ('<r a="1">\n<s>x</s>\n</r>\n', '<r ab="1">\n<s>x</s>\n</r>\n', True),  # attribute
        ('<r a="1">\n<s>x</s>\n</r>\n', '<r a="12">\n<s>x</s>\n</r>\n', True),  # its value
        ('<r a="1">\n<s>x</s>\n</r>\n', '<rx a="1">\n<s>x</s>\n</r>\n', False),  # its own name
        ("<r>\n<s/>\n</r>\n", "<r>\n<s/ >\n</r>\n", False),  # `/>` broken
        ("<r>\n<s>x</s>\n</r>\n", "<r>\n<s>x</s >\n</r>\n", False),  # in an end tag
        ("<r>\n<s>x</s>\n</r>\n", "<r>\n<s>x y</s>\n</r>\n", True),  # text (shifted first)
        ("<r>\n<s>x</s>\n</r>\n", "<r>\n<sx>x</s>\n</r>\n", True),  # an inner tag renamed
        ("<r>\n<s>x</s>\n</r>\n", "<r>\n<s>x</sy>\n</r>\n", True),  # its end tag
        ("<r>\n<s>x</s>\n</r>\n", "<r>\n<r>x</s>\n</r>\n", False),  # to the region's name
        ("<q>x\n\n<r>\n<s>x</s>\n</r>\n", "<q>x\n\n<r>\n<q>x</s>\n</r>\n", False),  # (<q> looks)
    ],
)
def test_raw_start_tags_checked_again_past_their_name(
    before: str, after: str, checked: bool
) -> None:
    """In XML written straight into the markdown, an edit in a start tag past its name (an
    attribute, its value) keeps every extent: the region is checked again; so does a renamed
    tag whose name, before and after, is no name whose end tag was looked for (a region's own,
    that of a line-start tag outside the regions); otherwise, or in a `/>`, it may not (the
    file is parsed again)."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import reparse_region, text_edit

    doc = parse_document(before, "memory")
    result = reparse_region(doc, after, text_edit(before, after), {})
    assert (result is not None) == checked
    if result is not None:
        assert result == parse_document(after, "memory")


@DOCUMENTS
def test_a_region_checked_again_equals_a_fresh_parse(source: str) -> None:
    """Edits the shortcut cannot take (markup typed, a tag renamed, a problem made or mended)
    inside one region: that region is checked again and the rest shifted, or (None) the file is
    parsed again. Whenever it answers, the answer is the fresh parse; and so are the references
    when `region_references` gives them without extracting them again."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import (
        region_references,
        reparse_region,
        shift_document,
        text_edit,
    )
    from promptls.analysis.references import extract_references

    rechecked = moved = 0
    for seed in range(30):
        old = source
        doc = parse_document(old, "module")
        for new in _edits(seed, old, 60):
            edit = text_edit(old, new)
            fresh = parse_document(new, "module")
            refs = extract_references(doc)
            if shift_document(doc, new, edit, refs) is None:
                result = reparse_region(doc, new, edit, {})
                if result is not None:
                    rechecked += 1
                    assert result == fresh
                    kept = region_references(doc, result, edit, refs)
                    assert kept is None or kept == extract_references(fresh)
                    moved += kept is not None
            old, doc = new, fresh
    assert rechecked > 100
    assert moved > 30


def test_typing_in_one_text_node_after_another_chains_shifts_without_moving_every_element() -> None:
    """A click elsewhere and a letter typed there, again and again: each keystroke adds a shift
    to the same base elements, nothing is built until read (at most `SHIFTS_MAX` chained), and
    every version equals a fresh parse."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import reparse_region, shift_document, text_edit
    from promptls.analysis.references import extract_references
    from promptls.analysis.xml import SHIFTS_MAX, ShiftedElements

    text = MODULE
    doc = parse_document(text, "module")
    nodes = ["Review the change", "Note every risk", "Write the summary", "Never skip"]
    chained = []
    last = 2 * SHIFTS_MAX + 2
    for n in range(last + 1):
        at = text.index(nodes[n % len(nodes)])
        new = text[:at] + "x" + text[at:]
        result = shift_document(doc, new, text_edit(text, new), extract_references(doc))
        assert result is not None
        doc, text = result[0], new
        elements = doc.regions[0].check.elements
        assert isinstance(elements, ShiftedElements)
        chained.append(len(elements.shifts))
        assert elements._built is None  # (nothing moved yet)
        if n < last:
            assert doc == parse_document(new, "module")  # (which builds them)
    assert max(chained) == SHIFTS_MAX and chained[:3] == [1, 2, 3]
    assert chained[SHIFTS_MAX] == 1  # (folded into the offsets by the next keystroke)
    # A rename then checks the region again from the shifted elements, folded and not built.
    assert elements.offsets is not None and elements._built is None
    at = text.index("<rule>") + 2
    new = text[:at] + "x" + text[at:]
    rechecked = reparse_region(doc, new, text_edit(text, new), {})
    assert rechecked is not None and rechecked == parse_document(new, "module")


@DOCUMENTS
def test_typing_on_composes_shifts_that_equal_a_fresh_parse(source: str) -> None:
    """Keystrokes in one text node chain shifts (each from the previous shifted document, the
    elements after it moved lazily and only once); the result always equals a fresh parse,
    also when the typing moves to another node, deletes, or the elements are read midway."""
    import random

    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references
    from promptls.analysis.xml import ShiftedElements

    composed = 0
    for seed in range(12):
        rng = random.Random(seed)
        text = source
        doc = parse_document(text, "module")
        refs = extract_references(doc)
        spots = [i + 1 for i, ch in enumerate(text) if ch == ">" and text[i + 1 : i + 2].isalpha()]
        at = rng.choice(spots)
        for _ in range(80):
            if rng.random() < 0.1:  # move elsewhere
                at = rng.choice([i + 1 for i, ch in enumerate(text) if ch == ">"])
            if rng.random() < 0.2 and at > 0 and text[at - 1].isalpha():  # backspace
                new, at = text[: at - 1] + text[at:], at - 1
            else:
                new = text[:at] + rng.choice("abc .,") + text[at:]
                at += 1
            result = shift_document(doc, new, text_edit(text, new), refs)
            fresh = parse_document(new, "module")
            if result is None:
                doc, refs = fresh, extract_references(fresh)
            else:
                before = [r.check.elements for r in doc.regions]
                doc, moved = result
                refs = moved if moved is not None else extract_references(doc)
                for region, old_elements in zip(doc.regions, before, strict=True):
                    elements = region.check.elements
                    if isinstance(elements, ShiftedElements) and elements.base is getattr(
                        old_elements, "base", None
                    ):
                        composed += 1
                if rng.random() < 0.2:  # read midway: built once, still composable
                    for region in doc.regions:
                        list(region.check.elements)
                assert doc == fresh
                assert refs == extract_references(fresh)
            text = new
    assert composed > 300  # typing on really composes


@pytest.mark.parametrize(
    ("before", "after", "shifts"),
    [
        ("---\ntitle here\n\nprose\n", "---\ntitle: here\n\nprose\n", False),  # YAML now
        ("---\na: 1\n---x\nprose\n", "---\na: 1\n---\nprose\n", False),  # closed now
        ("Prose\nmore prose\n", "Prose\n# more prose\n", True),  # a heading now
        ("# Title\nprose\n", "# Title typed\nprose\n", True),  # a heading retitled
        ("# Title\nprose\n", "#Title\nprose\n", True),  # no heading any more
        ("Prose\nxy\n<r>\nx</r>\n", "Prose\n\n<r>\nx</r>\n", False),  # a blank line now
        ("Prose\n <r>a</r>\n", "Prose\nx <r>a</r>\n", False),  # no region start there now
        ("a `x\ny\nz` b\n", "a `x\nyy\nz` b\n", False),  # in a code span
        ("```bash\n# x\n```\n", "```bash\n# xy\n```\n", True),  # code, no heading
        ("<!-- a -x> b -->\ntext\n", "<!-- a -> b -->\ntext\n", False),  # in a comment
        ("Prose line one\nline two\n", "Prose line one typed\nline two\n", True),
        ("---\na: 1\n---\n\nProse\n", "---\na: 1\n---\n\nProse typed\n", True),
        ("---\na: 1\n---\nbody\n", "---\na: 12\n---\nbody\n", True),  # in the YAML
        ("---\na: 1\n---\nbody\n", '---\na: "[1\n---\nbody\n', True),  # YAML broken
        ("---\na: 1\n---\nbody\n", "---\na: 1\n---x\nbody\n", False),  # not closed there now
        ("---\na: 1\n---\nbody\n", "---\na: 1\n\n---\nbody\n", False),  # a line more
        ("---\na: 1\n--x-\nbody\n", "---\na: 1\n---\nbody\n", False),  # closed now
        ("x\n---\na: b\n---\ntext\n", "---\na: b\n---\ntext\n", False),  # one begins now
        ("x---\na\n---\nt\n", "---\na\n---\nt\n", False),  # (the first letter deleted)
        ("Run `ls` now\n", "Run `ls` now typed\n", True),  # beside code, not in it
        ("Run `ls` now\n", "Ru\nn `ls` now\n", True),  # a line break beside code
        ("Run `ls` now\n", "Run `ls`x now\n", False),  # touching its backticks
        ("a ``` b\n", "a\n``` b\n", False),  # a fence could open there now
        ("x ~~~ y\n", "x ~~~ yz\n", True),  # a fence mark inside a line opens nothing
        ("Prose one\nprose two\n", "Prose one\n\nprose two\n", True),  # paragraphs split
        ("Prose one\n\nprose two\n", "Prose one\nprose two\n", True),  # and joined
        ("Prose\nxy\nmore\n", "Prose\n\nmore\n", True),  # a line emptied
        ("```bash\na\nb\n```\n", "```bash\na\n\nb\n```\n", True),  # in code
        ("```md\n<r>\n</r>\n```\n", "```md\n<r></r>\n```\n", True),  # tags in code: text
        ("```md\n<r>\nx\n```\n", "```md\n<r>y\nx\n```\n", True),
        ("a `x` b\nmore\n", "a `x` b\n\nmore\n", False),  # code spans pair by paragraph
        ("<r>text\n\nmore\n", "<r>text\nmore\n", False),  # an unclosed element's paragraph
        ("\r<r>\n\t\nx\n", "\r<r>\nx\n", False),  # (a lone CR ends a line too)
        ("\r# Title\n", "\r# Tite\n", True),
        ("# T\n\nprose\n", "# T\nprose\n", True),  # (the heading line is not edited)
        ("# T\nprose\n", "# T\n\nprose\n", True),  # Enter at a heading's end
        ("# T\nprose\n", "# T\n# prose\n", True),  # a heading made
        ("Prose\n# T\n", "Prose# T\n", True),  # a heading joined to prose: none now
        ("Prose\n```\n#", "Prose\n```\n# x", True),  # typed at the end of an unclosed fence
        ("```xml\n<s>run `ls` x</s>\n```\n", "```xml\n<s>run `ls` xy</s>\n```\n", True),
        ("```xml\n<s>run `ls` x</s>\n```\n", "```xml\n<s>r\nun `ls` x</s>\n```\n", True),
    ],
)
def test_shifts_in_the_markdown_keep_its_structure(before: str, after: str, shifts: bool) -> None:
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references

    for kind in ("memory", "command"):
        doc = parse_document(before, kind)
        result = shift_document(doc, after, text_edit(before, after), extract_references(doc))
        assert (result is not None) == shifts
        if result is not None:
            fresh = parse_document(after, kind)
            assert result[0] == fresh
            assert result[1] is None or result[1] == extract_references(fresh)


ADJACENT = "```xml\n<r><a>q</a><b>z</b><c></c>\n<d>long text</d>\n<e>tail</e></r>\n```\n"


@pytest.mark.parametrize(
    ("at", "removed", "inserted"),
    [
        (ADJACENT.index("<b>"), 0, "x"),  # an empty text node between two elements
        (ADJACENT.index("</c>"), 0, "x"),  # an empty element
        (ADJACENT.index("</b>"), 1, ""),  # a text node emptied
        (ADJACENT.index("</b>"), 1, "yy"),
        (ADJACENT.index("text"), 0, " more"),  # moves the elements after it
        (ADJACENT.index("text"), 4, ""),
        (ADJACENT.index("tail"), 2, "x"),
    ],
    ids=["between", "empty", "emptied", "replaced", "insert", "delete", "last"],
)
def test_shift_at_element_boundaries(at: int, removed: int, inserted: str) -> None:
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import shift_document, text_edit
    from promptls.analysis.references import extract_references

    doc = parse_document(ADJACENT, "module")
    new = ADJACENT[:at] + inserted + ADJACENT[at + removed :]
    result = shift_document(doc, new, text_edit(ADJACENT, new), extract_references(doc))
    if result is not None:
        assert result[0] == parse_document(new, "module")
    shifted = shift_document(parse_document(new, "module"), ADJACENT, text_edit(new, ADJACENT), [])
    if shifted is not None:  # and back
        assert shifted[0] == doc


@DOCUMENTS
@pytest.mark.parametrize(
    "kind_path", [".claude/modules/dev/review.md", ".claude/commands/rev.md", "docs/CLAUDE.md"]
)
def test_incremental_updates_equal_a_full_analysis(
    make_workspace: WorkspaceMaker, kind_path: str, source: str
) -> None:
    root = make_workspace({**FILES, kind_path: source})
    index = _fresh(root)
    index.index()
    path = os.path.join(index.workspace.folders[0], kind_path)
    counter = TokenCounter()
    shortcuts = 0
    for seed in range(3):
        for version, text in enumerate(_edits(seed, source, 40), 1):
            index.workspace.overlay[path] = text
            index.update(path, version)
            counted = index._chunk_bounds.get((path, "file"), ("",))[0]
            shortcuts += counted is text  # counted by the edit
            reference = _fresh(root)
            reference.workspace.overlay[path] = text
            reference.index()
            assert _summary(index, path) == _summary(reference, path)
            fa = index.files[path]
            assert fa.raw_tokens == counter.count_exact(text)
            assert fa.tokens == counter.count_exact(fa.doc.loaded_text())
    assert shortcuts > (10 if source is MODULE else 4)  # (random edits soon break the XML)


def test_lines_joined_at_chunk_cuts_recount_only_the_chunks_around(
    make_workspace: WorkspaceMaker,
) -> None:
    """Backspace at the start of a line where the count is cut into chunks joins two chunks:
    they are counted again together (and cut again), never the whole file; so are a deleted
    run of lines across cuts and typing at the very end. The counts stay those of full encodes."""
    from promptls.analysis.tokens import split_chunks

    body = "\n".join(f"Line {i} of the notes, with words to count." for i in range(400))
    root = make_workspace({"notes/CLAUDE.md": body})
    index = _fresh(root)
    index.index()
    path = os.path.join(index.workspace.folders[0], "notes/CLAUDE.md")
    counter = TokenCounter()
    text, version = body, 0

    def edit(new: str) -> None:
        nonlocal text, version
        text, version = new, version + 1
        index.workspace.overlay[path] = text
        index.update(path, version)
        assert index.files[path].raw_tokens == counter.count_exact(text)
        assert index._chunk_bounds[(path, "file")][0] is text  # counted by the edit
        bounds = index._chunk_bounds[(path, "file")][1]
        assert bounds[0] == 0 and bounds[-1] == len(text) and bounds == sorted(bounds)
        assert all(is_safe_break(text, b) for b in bounds)
        assert max(b - a for a, b in itertools.pairwise(bounds)) < len(text) // 4

    edit(text.replace("Line 7 ", "Line 7x "))  # (the first edit of the buffer)
    for _ in range(6):  # join the lines at the first cuts, one after the other
        cuts = list(itertools.accumulate(len(c) for c in split_chunks(text)))[:-1]
        edit(text[: cuts[len(cuts) // 2] - 1] + text[cuts[len(cuts) // 2] :])
    cut = list(itertools.accumulate(len(c) for c in split_chunks(text)))[1]
    edit(text[: cut - 700] + text[cut + 700 :])  # a run of lines across a cut, deleted
    edit(text + " and more at the end")
    edit(text[:-3])


def test_typing_in_a_memory_file_with_comments_counts_what_loads(
    make_workspace: WorkspaceMaker,
) -> None:
    """Keystrokes after a block comment in a memory file (which loads without its comments)
    shift the analysis and re-count one chunk of the loaded text, chaining from the last
    keystroke; the counts stay those of full encodes, the comment is never counted as loaded."""
    root = make_workspace({"CLAUDE.md": RAW})
    index = _fresh(root)
    index.index()
    path = os.path.join(index.workspace.folders[0], "CLAUDE.md")
    counter = TokenCounter()
    at = RAW.index("</rule>")
    text = RAW
    for version, ch in enumerate("typing on, then more words." * 2, 1):
        text = text[:at] + ch + text[at:]
        at += 1
        index.workspace.overlay[path] = text
        index.update(path, version)
        fa = index.files[path]
        assert fa.doc.comments and fa.doc.loaded_text() != text
        assert fa.raw_tokens == counter.count_exact(text)
        assert fa.tokens == counter.count_exact(fa.doc.loaded_text())
        assert index._loaded_counts[path][0] is text  # counted by the edit, not again


@pytest.mark.parametrize(
    "text", ["", "a", "\n", "a\nb", "a\n\nb\n", "\n\n", "x\r\ny\rz\n", "é\n😀\nz", MODULE]
)
def test_line_index_fast_path_finds_the_same_lines(text: str) -> None:
    import re

    from promptls.analysis.text import LineIndex

    expected = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
    index = LineIndex(text)
    assert [index.line_start(i) for i in range(index.line_count)] == expected


def test_missing_paths_in_scanned_folders_match_the_disk(make_workspace: WorkspaceMaker) -> None:
    from promptls.analysis.workspace import Status

    root = make_workspace(FILES)
    s = Settings()
    ws = Workspace([root], s.kinds, s.exclude)
    ws.scan()
    folder = ws.folders[0]
    new_file = os.path.join(folder, ".claude/modules/quality/new.md")
    deep_file = os.path.join(folder, ".claude/modules/fresh/area/deep.md")
    for path in (new_file, deep_file, os.path.join(folder, "notes.txt/child.md")):
        assert ws.status(path) is Status.MISSING  # answered from the scan
        assert not os.path.exists(path)
    assert ws.status(os.path.join(folder, ".claude/modules/fresh")) is Status.MISSING
    Path(new_file).write_text("new\n")
    os.makedirs(os.path.dirname(deep_file))
    Path(deep_file).write_text("deep\n")
    ws.forget([new_file, deep_file])
    assert ws.status(new_file) is Status.FILE
    assert ws.status(deep_file) is Status.FILE
    assert ws.status(os.path.join(folder, ".claude/modules/fresh")) is Status.DIRECTORY
    assert ws.status(os.path.join(folder, ".claude/modules/quality/other.md")) is Status.MISSING


@pytest.mark.parametrize(
    "text",
    [
        "---\na: 1\n---\n\n# Title\nbody\n",  # a blank line: no safe break at the end
        "---\na: 1\n---\n# Title\n",  # a safe break
        "---\na: 1\n---\n\n\n   \n",  # nothing but whitespace after it
        "---\na: 1\n---\n",
        "---\r\na: 1\r\n---\r\n\r\n  indented\r\n",
        "---\na: 1\n---\n \tword\n",
        "no frontmatter\n",
    ],
)
@pytest.mark.parametrize("kind", ["command", "module"])
def test_count_pieces_give_exact_file_and_loaded_counts(
    make_workspace: WorkspaceMaker, text: str, kind: str
) -> None:
    """rawTokens is the count of the file and tokens that of what loads (for a command, the
    file without its frontmatter), each as one full encode gives it, whichever way the
    frontmatter ends; in a full analysis and after an edit."""
    rel = ".claude/commands/c.md" if kind == "command" else ".claude/modules/m.md"
    root = make_workspace({rel: text})
    index = _fresh(root)
    index.index()
    path = os.path.join(index.workspace.folders[0], rel)
    counter = TokenCounter()
    for version, edited in enumerate([text, text + "<r>one more line</r>\n", text + "x"], 1):
        index.workspace.overlay[path] = edited
        index.update(path, version)
        fa = index.files[path]
        assert fa.raw_tokens == counter.count_exact(edited)
        assert fa.tokens == counter.count_exact(fa.doc.loaded_text())
        if kind == "command" and edited.startswith("---"):
            assert fa.doc.loaded_text() == edited.split("---", 2)[2].split("\n", 1)[1]


def test_whole_counts_equal_exact_counts() -> None:
    counter = TokenCounter()
    texts = [MODULE, COMMAND, "", "x" * 5000, MODULE * 3]
    assert counter.count_whole(texts) == [counter.count_exact(t) for t in texts]
    assert counter.count_whole(texts) == counter.count_many(texts)


def test_lines_fast_path_matches_the_line_pattern() -> None:
    import random
    import re

    from promptls.analysis.document import _lines

    pattern = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")

    def slow(text: str) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        for m in pattern.finditer(text):
            start, full = m.start(), m.end()
            if start == full == len(text) and out:
                break
            out.append((start, start + len(m.group(0).rstrip("\r\n")), full))
            if full == len(text):
                break
        return out

    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice("ab\n \t") for _ in range(rng.randint(0, 12)))
        assert _lines(text) == slow(text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab \n", max_size=60).map(lambda t: t * 3),
    spot=st.integers(0, 200),
    removed=st.integers(0, 4),
    inserted=st.text(alphabet="ab \n", max_size=4),
)
def test_an_edit_known_from_the_replace_is_the_edit_found_by_comparing(
    text: str, spot: int, removed: int, inserted: str
) -> None:
    """A keystroke applied with `LineIndex.replace` is known to `text_edit` from the span it
    replaced: widened to the longest common prefix and suffix (repeated characters around the
    edit move them), it is exactly what comparing the two texts finds."""
    from promptls.analysis.incremental import _compared, text_edit
    from promptls.analysis.text import LineIndex, replaced_span

    a = min(spot, len(text))
    b = min(a + removed, len(text))
    new = LineIndex(text).replace(a, b, inserted).text
    assert replaced_span(text, new) == (a, b)
    assert text_edit(text, new) == _compared.__wrapped__(text, new)


def test_an_edit_in_a_long_run_is_found_by_comparing() -> None:
    """A space typed into a run of spaces longer than `_WIDEN_MAX`: the common prefix runs past
    the bound, and the texts are compared instead (the same edit)."""
    from promptls.analysis.incremental import _WIDEN_MAX, _compared, _widened, text_edit
    from promptls.analysis.text import LineIndex

    text = "x" + " " * (3 * _WIDEN_MAX) + "y"
    new = LineIndex(text).replace(1, 1, " ").text
    assert _widened(text, new, 1, 1) is None
    assert text_edit(text, new) == _compared.__wrapped__(text, new)
    assert text_edit(text, text + "z") == _compared.__wrapped__(text, text + "z")  # (not known)


XML_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<behavior id="MEMORY" version="1.0">
  <metadata>
    <name>Memory</name>
    <purpose>Store what was learned; search before asking</purpose>
  </metadata>
  <imports>
    <import>@./shared/loading.md</import>
  </imports>
  <!-- STORAGE -->
  <storage>
    <pattern>memory/[topic]/[subtopic].md with dated entries</pattern>
    <step>Security check (no credentials &amp; no keys)</step>
    <step>Path resolution</step>
  </storage>
  <rules><![CDATA[ raw <text> & more ]]></rules>
</behavior>
"""


@pytest.mark.parametrize(
    ("kind", "xml_file"),
    [("module", False), ("other", False), ("project-config", False), ("module", True)],
)
def test_an_xml_document_is_checked_again_as_one_region(kind: str, xml_file: bool) -> None:
    """A file opening with `<?xml` is one XML document, whatever its kind, and so is a file
    named `*.xml` without it: typing in element text shifts it, other edits check it again
    (from the scan's checkpoint before them); and whenever either answers, the answer is the
    fresh parse (which an `.xml` file's stays, whatever is typed)."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import (
        region_references,
        reparse_region,
        shift_document,
        text_edit,
    )
    from promptls.analysis.references import extract_references

    shifted = rechecked = 0
    start = XML_DOCUMENT.split("\n", 1)[1] if xml_file else XML_DOCUMENT
    for seed in range(20):
        old = start
        doc = parse_document(old, kind, xml_file=xml_file)
        assert [r.form for r in doc.regions] == ["document"]
        for new in _edits(seed, old, 40):
            edit = text_edit(old, new)
            fresh = parse_document(new, kind, xml_file=xml_file)
            assert fresh.xml_file is xml_file
            refs = extract_references(doc)
            moved = shift_document(doc, new, edit, refs)
            if moved is not None:
                shifted += 1
                assert moved[0] == fresh
                assert moved[1] is None or moved[1] == extract_references(fresh)
                old, doc = new, moved[0]  # (typing on composes)
                continue
            result = reparse_region(doc, new, edit, {})
            if fresh.regions[0].form != "document":  # (the declaration broken: markdown now)
                assert result is None
                break
            assert result == fresh
            rechecked += 1
            kept = region_references(doc, result, edit, refs)
            assert kept is None or kept == extract_references(fresh)
            old, doc = new, fresh
    assert shifted > 100 and rechecked > 100


def test_an_edit_that_breaks_the_declaration_parses_the_file_again() -> None:
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import reparse_region, text_edit

    doc = parse_document(XML_DOCUMENT, "module")
    after = "x" + XML_DOCUMENT
    assert reparse_region(doc, after, text_edit(XML_DOCUMENT, after), {}) is None
    assert parse_document(after, "module").regions[0].form != "document"


def test_typing_in_a_placeholder_decides_its_escape_again() -> None:
    """An element never closed that may be a placeholder (`<s>words`) is offered the escape of
    its start tag only while no line break follows it inside its parent: a line break deleted
    there (a safe edit in a text node) must not keep the old verdict by shifting the check."""
    from promptls.analysis.document import parse_document
    from promptls.analysis.incremental import reparse_region, shift_document, text_edit
    from promptls.analysis.references import extract_references

    old = "```xml\n<m>\n  <s>words a > b\n</m>\n```\n"  # (a text node after the '>')
    new = old.replace("b\n</m>", "b</m>")
    fixes = [
        [p.fix for p in parse_document(t, "module").regions[0].check.problems] for t in (old, new)
    ]
    assert fixes == [[None], ["&lt;s>"]]
    doc = parse_document(old, "module")
    edit = text_edit(old, new)
    assert shift_document(doc, new, edit, extract_references(doc)) is None
    assert reparse_region(doc, new, edit, {}) == parse_document(new, "module")
