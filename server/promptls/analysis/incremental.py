"""Edits that provably keep a document's structure: the parse of the edited text is the old parse
with offsets shifted, so a keystroke costs work proportional to the edit, not to the file.

`text_edit` finds the one span where two versions of a text differ. `shift_document` returns the
new `Document` (and the new references) without parsing again when the edit is *safe*: it lies
in the text of an XML element inside a ```xml fence or of XML written straight into the markdown
(a raw region: then on lines that stay non-blank and no heading, outside fences and code spans),
or in the markdown around the regions (prose, a heading's title, code in a fence; see
`_prose_headings`), away from markup and the fence lines, and neither the removed nor the
inserted text holds a character that could start or end a structure (see `SAFE_CHARS`; line
feeds are allowed where no line becomes blank, a heading, or the start of a comment or tag).
Backticks and tildes elsewhere on the edited lines are no obstacle unless a line could open or
close a fence or the edit touches a run of backticks (see `_code_marks_kept`).
Next to a reference, the references alone are extracted again (returned as None). An edit in the
YAML of a frontmatter parses only the frontmatter again.

`reparse_region` takes an edit inside one XML region that changes markup (a tag renamed, `<`
typed): the region is checked again, everything else shifted; a rename (name characters typed
or deleted) resumes the scan near the edit (`xml.recheck_region`). Otherwise both return None and
the caller parses from scratch. The tests compare every path with a fresh parse over random
edits, and so does a property under `make fuzz`.
"""

from __future__ import annotations

import bisect
import functools
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from promptls.analysis.document import (
    Document,
    Fence,
    Frontmatter,
    Heading,
    RegionCache,
    Span,
    XmlRegion,
    atx_heading,
    checked_region,
    frontmatter_end,
    is_xml_document,
    parse_frontmatter,
    raw_masks,
    raw_skips,
)
from promptls.analysis.references import (
    EXAMPLE_ELEMENTS,
    INCLUDE_ELEMENTS,
    PROJECT_ROOT,
    Reference,
    xml_references,
)
from promptls.analysis.text import common_prefix, common_suffix, replaced_span
from promptls.analysis.xml import (
    NAME_RE,
    SHIFTS_MAX,
    Shift,
    ShiftedElements,
    XmlCheck,
    XmlComment,
    XmlElement,
    XmlProblem,
    placeholder_shaped,
)

#: Characters an edit may remove or insert and still keep the structure: ASCII letters, digits,
#: spaces and punctuation that means nothing to XML, markdown fences, code spans or references
#: (no `<>&`, quotes, backticks, tildes, brackets, parentheses, `@`, backslash, line breaks).
SAFE_CHARS = frozenset(string.ascii_letters + string.digits + " \t.,:;!?-_+=%$#*/^|")
#: Elements whose text is (or holds) a path to load: an edit inside them re-extracts references.
_PATH_ELEMENTS = INCLUDE_ELEMENTS | {"module"}
_LINE_ELEMENTS = frozenset({"depends_on", "provides_to"})


@dataclass(frozen=True, slots=True)
class TextEdit:
    """`old[start:old_end]` became `new[start:new_end]`; everything else is the same."""

    start: int
    old_end: int
    new_end: int

    @property
    def delta(self) -> int:
        """How far offsets after the edit move."""
        return self.new_end - self.old_end


def text_edit(old: str, new: str) -> TextEdit:
    """The single span where `old` and `new` differ (the longest common prefix and suffix).
    When `new` was made from `old` by `LineIndex.replace` (a keystroke the server applied), it
    is found from the span replaced, looking only at the characters around it; else by
    comparing the texts (`_compared`)."""
    span = replaced_span(old, new)
    if span is not None:
        found = _widened(old, new, *span)
        if found is not None:
            return found
    return _compared(old, new)


_WIDEN_MAX = 256
"""How far `_widened` looks past the span replaced before it leaves the search to comparing
the texts (typing a space into a long run of spaces, say)."""


def _widened(old: str, new: str, start: int, end: int) -> TextEdit | None:
    """`_compared(old, new)` for `new` = `old` with `[start, end)` replaced: the text before
    `start` and after `end` is common, so the common prefix and suffix are found by widening
    them from there, a character at a time. None past `_WIDEN_MAX` characters."""
    n_old, n_new = len(old), len(new)
    limit = min(n_old, n_new)
    prefix = start
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
        if prefix - start > _WIDEN_MAX:
            return None
    room = limit - prefix  # the suffix may not overlap the prefix
    suffix = n_old - end
    if suffix >= room:
        suffix = room
    else:
        known = suffix
        while suffix < room and old[n_old - suffix - 1] == new[n_new - suffix - 1]:
            suffix += 1
            if suffix - known > _WIDEN_MAX:
                return None
    return TextEdit(prefix, n_old - suffix, n_new - suffix)


@functools.lru_cache(maxsize=4)
def _compared(old: str, new: str) -> TextEdit:
    """`text_edit` by comparing the texts: the longest common prefix and suffix, found with
    slice comparisons (C speed: `common_prefix`, `common_suffix`). The last few are remembered:
    a keystroke's analysis and then its diagnostics both ask for the same one (each text's hash
    is made once and kept by the string)."""
    prefix = common_prefix(old, new)
    suffix = common_suffix(old, new, min(len(old), len(new)) - prefix)
    return TextEdit(prefix, len(old) - suffix, len(new) - suffix)


def _safe(text: str, *, breaks: bool = False) -> bool:
    """Whether `text` holds only `SAFE_CHARS` (and, with `breaks`, line feeds)."""
    return all(ch in SAFE_CHARS or (breaks and ch == "\n") for ch in text)


def _line_start(text: str, offset: int) -> int:
    """Where the line holding `offset` starts."""
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


def _line_of(text: str, start: int, end: int) -> str:
    """The whole line(s) holding `text[start:end]`."""
    first = _line_start(text, start)
    ends = [i for i in (text.find("\n", end), text.find("\r", end)) if i >= 0]
    return text[first : min(ends) if ends else len(text)]


#: A line that could open or close a code fence.
_FENCE_LINE = re.compile(r"[ \t]*(?:```|~~~)")


def _code_marks_kept(text: str, start: int, old_end: int, line: str, new_line: str) -> bool:
    """Whether an edit of `text[start:old_end]` (which neither types nor removes a backtick or
    tilde) on the lines `line`, now `new_line`, keeps the markdown's code: no line before or
    after it could open or close a fence, and no run of backticks touches the edit (it would be
    lengthened, split or joined, and code spans paired otherwise)."""
    if "`" not in line and "~" not in line and "`" not in new_line and "~" not in new_line:
        return True
    if text[start - 1 : start] == "`" or text[old_end : old_end + 1] == "`":
        return False
    return not any(_FENCE_LINE.match(each) for each in (*line.split("\n"), *new_line.split("\n")))


def _whole_document(doc: Document) -> bool:
    """Whether `doc` is one XML document (see `is_xml_document`): no markdown, its one region
    the whole text."""
    return len(doc.regions) == 1 and doc.regions[0].form == "document"


def _touching(
    old: str,
    lines: tuple[str, str],
    paths: bool,
    refs: Sequence[Reference],
    start: int,
    old_end: int,
) -> bool:
    """Whether an edit of `[start, old_end)` of `old` may change the references: the edited
    lines (before, after) hold what may start one (`@`, `[`, a `components/` path, a
    `{project-root}/` path), a link
    opened on an earlier line may run on into them (a `](` not closed before them: a link's
    target and title may follow on the next lines), the edit lies in an element whose text is
    a path (`paths`), or it touches one of `refs`."""
    if (
        paths
        or any(
            "@" in line or "[" in line or "components/" in line or PROJECT_ROOT in line
            for line in lines
        )
        or any(r.start <= old_end and start <= r.end for r in refs)
    ):
        return True
    line_start = old.rfind("\n", 0, start) + 1
    opened = old.rfind("](", 0, line_start)
    return opened >= 0 and old.find(")", opened, line_start) < 0


def shift_document(
    doc: Document, new_text: str, edit: TextEdit, refs: Sequence[Reference]
) -> tuple[Document, list[Reference] | None] | None:
    """The document and references of `new_text` (= `doc.text` with `edit`), when the edit is
    safe (see the module docstring); None when they must be computed from scratch. The
    references are None when they must be extracted again from the document: the edit touches
    one, or its line holds what may start one (`@`, `[`, a `components/` or `{project-root}/`
    path)."""
    old = doc.text
    start, old_end, new_end = edit.start, edit.old_end, edit.new_end
    if doc.reduced:
        return None
    if _whole_document(doc):
        return _shift_in_document(doc, new_text, edit, refs)
    fm = doc.frontmatter
    if fm is not None and fm.content_start <= start and old_end <= fm.content_end:
        return _shift_in_frontmatter(doc, new_text, edit, refs)
    if fm is None and new_text.startswith(("---", "\ufeff---")):
        return None  # (a frontmatter may begin now: the first line deleted)
    if not (_safe(old[start:old_end], breaks=True) and _safe(new_text[start:new_end], breaks=True)):
        return None
    line = _line_of(old, start, old_end)
    new_line = _line_of(new_text, start, new_end)
    if (
        "\r" in line
        or "\r" in new_line
        or not _code_marks_kept(old, start, old_end, line, new_line)
    ):
        return None
    region = next((r for r in doc.regions if r.start < start and old_end < r.end), None)
    headings: tuple[Heading, ...] | None = None
    check: XmlCheck | None = None
    paths = False  # the edit lies in an element whose text is a path: its references change
    if region is None:
        prose = _prose_headings(doc, new_text, edit, line, new_line)
        if prose is None:
            return None
        headings = prose
    elif region.form == "raw" and not _raw_edit_safe(doc, start, old_end, line, new_line):
        return None
    else:
        shifted_check = _shift_check(
            old, region, start - region.start, old_end - region.start, edit.delta
        )
        if shifted_check is None:
            return None
        check, paths = shifted_check
    touching = _touching(old, (line, new_line), paths, refs, start, old_end)
    move = _Move(old_end, edit.delta)
    replacement: tuple[XmlRegion, XmlRegion] | None = None
    if region is not None and check is not None:
        replacement = (region, XmlRegion(region.form, region.start, move.at(region.end), check))
    shifted = move.document(doc, new_text, replacement, headings=headings)
    return shifted, None if touching else move.references(refs)


def _shift_in_document(
    doc: Document, new_text: str, edit: TextEdit, refs: Sequence[Reference]
) -> tuple[Document, list[Reference] | None] | None:
    """`shift_document` of one XML document (no markdown: its one region is the whole text):
    letters, digits, spaces, line breaks and plain punctuation typed or deleted in the text of
    an element shift its check, as in a region of a markdown file."""
    old = doc.text
    start, old_end, new_end = edit.start, edit.old_end, edit.new_end
    if not (_safe(old[start:old_end], breaks=True) and _safe(new_text[start:new_end], breaks=True)):
        return None
    (region,) = doc.regions
    shifted_check = _shift_check(old, region, start, old_end, edit.delta)
    if shifted_check is None:
        return None
    check, paths = shifted_check
    lines = (_line_of(old, start, old_end), _line_of(new_text, start, new_end))
    touching = _touching(old, lines, paths, refs, start, old_end)
    move = _Move(old_end, edit.delta)
    shifted = move.document(
        doc, new_text, (region, XmlRegion(region.form, 0, len(new_text), check))
    )
    return shifted, None if touching else move.references(refs)


def _shift_in_frontmatter(
    doc: Document, new_text: str, edit: TextEdit, refs: Sequence[Reference]
) -> tuple[Document, list[Reference]] | None:
    """An edit in the YAML of a closed frontmatter, on one line: the frontmatter is parsed
    again (its keys, or its error) and everything after it moved, when it still ends on the
    same line (else None)."""
    fm = doc.frontmatter
    changed = doc.text[edit.start : edit.old_end] + new_text[edit.start : edit.new_end]
    if fm is None or "\n" in changed or "\r" in changed or frontmatter_end(doc.text) != fm.end:
        return None
    new = parse_frontmatter(new_text)
    delta = edit.delta
    expected = (fm.start, fm.content_start, fm.content_end + delta, fm.end + delta)
    if new is None or (new.start, new.content_start, new.content_end, new.end) != expected:
        return None
    move = _Move(edit.old_end, delta)
    return move.document(doc, new_text, frontmatter=new), move.references(refs)


_MARKERS = ("<!--", "-->", "<![CDATA[", "]]>")


def reparse_region(
    doc: Document, new_text: str, edit: TextEdit, cache: RegionCache | None = None
) -> Document | None:
    """The document of `new_text` (= `doc.text` with `edit`) when the edit lies inside one XML
    region and keeps the markdown and the region's extent: that region is checked again (with
    `cache`), everything else shifted; None when the file must be parsed again. (For an edit
    `shift_document` cannot take: markup typed, a tag renamed, a problem made or mended.)

    Any characters but backticks and tildes may be typed in a ```xml fence (its lines are what
    ends it), line breaks too. XML written straight into the markdown ends where its element's end
    tag is, found among the tags of the whole file: there the edit must also leave every tag
    name, `<`, `>`, `/`, quote, comment and CDATA mark as it was, on a line that stays a line
    with words and no heading, outside fences and code spans."""
    old = doc.text
    start, old_end, new_end = edit.start, edit.old_end, edit.new_end
    if doc.reduced:
        return None
    if _whole_document(doc):
        return _recheck_document(doc, new_text, edit, cache)
    removed, inserted = old[start:old_end], new_text[start:new_end]
    line = _line_of(old, start, old_end)
    new_line = _line_of(new_text, start, new_end)
    if any(ch in each for each in (removed, inserted) for ch in "`~"):
        return None
    if not _code_marks_kept(old, start, old_end, line, new_line):
        return None
    region = next((r for r in doc.regions if r.start < start and old_end <= r.end), None)
    if region is None or (region.form == "raw" and any(ch in line + new_line for ch in "\r\n")):
        return None
    delta = edit.delta
    if not _marks_kept(doc, removed, inserted, line, new_line, raw=region.form == "raw"):
        return None
    if region.form == "raw":
        if old_end >= region.end:
            return None
        if not _tag_names_kept(old, region, start) and not _renamed_apart(
            doc, new_text, region, edit
        ):
            return None
        if not _raw_edit_safe(doc, start, old_end, line, new_line):
            return None

    move = _Move(old_end, delta)
    fences = move.fences(doc.fences)
    code_spans = tuple(move.span(c) for c in doc.code_spans)
    end = region.end + delta
    body = new_text[region.start : end]
    if region.form == "fence":
        masks: list[tuple[int, int]] = []
    else:
        skip = raw_skips([(f.start, f.end) for f in fences], code_spans)
        starts, ends = [s for s, _ in skip], [e for _, e in skip]
        masks = raw_masks(skip, starts, ends, region.start, end)
    edited = (
        region.check,
        old[region.start : region.end],
        start - region.start,
        old_end - region.start,
        new_end - region.start,
    )
    checked = XmlRegion(region.form, region.start, end, checked_region(body, masks, cache, edited))
    return move.document(doc, new_text, (region, checked))


def _recheck_document(
    doc: Document, new_text: str, edit: TextEdit, cache: RegionCache | None
) -> Document | None:
    """`reparse_region` of one XML document (no markdown around it: its one region is the
    whole text, whatever the edit): checked again from the scan's last checkpoint before the
    edit. None when the text no longer opens as XML (a markdown file now, unless its kind says
    otherwise)."""
    if not is_xml_document(new_text, doc.kind, doc.xml_file):
        return None
    (region,) = doc.regions
    edited = (region.check, doc.text, edit.start, edit.old_end, edit.new_end)
    checked = checked_region(new_text, (), cache, edited)
    return Document(
        text=new_text,
        kind=doc.kind,
        regions=(XmlRegion("document", 0, len(new_text), checked),),
        xml_file=doc.xml_file,
    )


#: The forms of the references read from XML elements (`references.xml_references`).
_XML_FORMS = frozenset(
    "delegation pattern module-attribute attribute module include dependency provides".split()
)


def region_references(
    old: Document, doc: Document, edit: TextEdit, refs: Sequence[Reference]
) -> list[Reference] | None:
    """The references of `doc`, made from `old` by `reparse_region` (`refs`: those of `old`),
    when they are `refs` moved: the region checked again yields the same paths, moved, and
    the edited lines hold nothing another reference is read from (`@`, brackets, parentheses,
    a `components/` or `{project-root}/` path), and the region has no `<example>` (whose links
    are no references: the check again may have moved where it ends). None when they must be
    extracted again."""
    start, old_end, new_end = edit.start, edit.old_end, edit.new_end
    lines = _line_of(old.text, start, old_end) + "\n" + _line_of(doc.text, start, new_end)
    if any(ch in lines for ch in "@[]()") or "components/" in lines or PROJECT_ROOT in lines:
        return None
    region = next((r for r in doc.regions if r.start < start and new_end <= r.end), None)
    before = next((r for r in old.regions if region and r.start == region.start), None)
    if region is None or before is None:
        return None
    if any(next(r.check.named(name), None) for r in (before, region) for name in EXAMPLE_ELEMENTS):
        return None  # (where its links are illustrations may have changed)
    move = _Move(old_end, edit.delta)
    was = {
        (r.form, r.target, r.start, r.end)
        for r in move.references(
            [r for r in refs if r.form in _XML_FORMS and before.start <= r.start < before.end]
        )
    }
    now = {
        (r.form, r.target, r.start, r.end)
        for r in xml_references(doc.text, region.start, region.check)
    }
    return move.references(refs) if was == now else None


@dataclass(frozen=True, slots=True)
class _Move:
    """Where the offsets of a text before an edit are after it: from the end of what the edit
    replaced on, moved by the difference in length; before it, where they were."""

    old_end: int
    delta: int

    def at(self, offset: int) -> int:
        return offset + self.delta if offset >= self.old_end else offset

    def span(self, s: Span) -> Span:
        return Span(self.at(s.start), self.at(s.end)) if s.end >= self.old_end else s

    def fences(self, fences: Sequence[Fence]) -> tuple[Fence, ...]:
        at = self.at
        return tuple(
            Fence(at(f.start), at(f.end), f.info, at(f.content_start), at(f.content_end), f.closed)
            if f.end >= self.old_end
            else f
            for f in fences
        )

    def headings(self, headings: Sequence[Heading]) -> tuple[Heading, ...]:
        at, old_end = self.at, self.old_end
        return tuple(
            Heading(h.level, h.title, at(h.start), at(h.end)) if h.end >= old_end else h
            for h in headings
        )

    def references(self, refs: Sequence[Reference]) -> list[Reference]:
        at, old_end = self.at, self.old_end
        return [
            Reference(r.form, r.target, at(r.start), at(r.end)) if r.end >= old_end else r
            for r in refs
        ]

    def document(
        self,
        doc: Document,
        new_text: str,
        replaced: tuple[XmlRegion, XmlRegion] | None = None,
        *,
        headings: Sequence[Heading] | None = None,
        frontmatter: Frontmatter | None = None,
    ) -> Document:
        """`doc` moved into `new_text`, with `replaced` = (a region, what it became), and
        `headings` (of `new_text`, not moved) and `frontmatter` for its own when given."""
        at, span, old_end = self.at, self.span, self.old_end
        return Document(
            text=new_text,
            kind=doc.kind,
            frontmatter=doc.frontmatter if frontmatter is None else frontmatter,
            headings=self.headings(doc.headings) if headings is None else tuple(headings),
            fences=self.fences(doc.fences),
            code_spans=tuple(span(c) for c in doc.code_spans),
            comments=tuple(span(c) for c in doc.comments),
            unclosed_comment=span(doc.unclosed_comment) if doc.unclosed_comment else None,
            regions=tuple(
                replaced[1]
                if replaced is not None and r is replaced[0]
                else (XmlRegion(r.form, at(r.start), at(r.end), r.check) if r.end >= old_end else r)
                for r in doc.regions
            ),
            reduced=False,
            opaque=tuple(span(s) for s in doc.opaque),
            xml_file=doc.xml_file,
        )


def _marks_kept(
    doc: Document, removed: str, inserted: str, line: str, new_line: str, *, raw: bool
) -> bool:
    """Whether an edit keeps what the extents of XML written straight into the markdown are
    found from: its tags are looked for in the whole text, outside fences, and a start tag's
    `>` or a comment's `-->` inside them too. Nothing to keep when no line outside the fences
    starts with a tag (unless the edit is in `raw` XML); else no `<`, `>`, `/` or quote may be
    typed or removed, and no comment or CDATA mark made or broken."""
    if not raw and not _raw_starts_outside_fences(doc):
        return True
    if any(ch in removed or ch in inserted for ch in "<>/\"'"):
        return False
    return all(line.count(m) == new_line.count(m) for m in _MARKERS)


def _tag_names_kept(text: str, region: XmlRegion, start: int) -> bool:
    """Whether an edit at `start` in a raw region leaves every tag's name and its `/>` as they
    were (what the extents of raw XML are found from): it lies in text (after the last `>`), or
    in a start tag past its name and not right after a `/`; never in an end tag, a comment,
    CDATA or a processing instruction."""
    lt = text.rfind("<", region.start, start)
    if lt < text.rfind(">", region.start, start):
        return True
    name = NAME_RE.match(text, lt + 1)
    return name is not None and start > name.end() and text[start - 1] != "/"


_NAME_CHARS = re.compile(r"[A-Za-z0-9_.]*")


def _renamed_apart(doc: Document, new: str, region: XmlRegion, edit: TextEdit) -> bool:
    """Whether an edit in a raw region only renames a tag (name characters typed or deleted in
    its name) whose name, before and after, is none of `_searched_names`: where XML written
    straight into the markdown ends is found from the tags of its own name alone (and an
    element before this region may have looked for its end tag through it)."""
    old = doc.text
    start, old_end, new_end = edit.start, edit.old_end, edit.new_end
    if not (
        _NAME_CHARS.fullmatch(old, start, old_end) and _NAME_CHARS.fullmatch(new, start, new_end)
    ):
        return False
    lt = old.rfind("<", region.start, start)
    if lt < 0 or lt < old.rfind(">", region.start, start):
        return False
    at = lt + 2 if old.startswith("</", lt) else lt + 1
    was, now = NAME_RE.match(old, at), NAME_RE.match(new, at)
    if was is None or now is None or not (at <= start and old_end <= was.end()):
        return False
    searched = _searched_names(old, doc)
    return was.group(0) not in searched and now.group(0) not in searched


def _searched_names(text: str, doc: Document) -> set[str]:
    """The names of the tags at a line's start whose end tag was looked for: the roots of the
    raw regions and every other line-start tag outside them (inside them, no line starts a
    region)."""
    names: set[str] = set()
    pos = 0
    for r in [*(r for r in doc.regions if r.form == "raw"), None]:
        end = r.start if r is not None else len(text)
        names.update(m.group(1) for m in _LINE_TAG.finditer(text, pos, end))
        if r is not None:
            root = NAME_RE.match(text, r.start + 1)
            if root is not None:
                names.add(root.group(0))
            pos = r.end
    return names


#: A tag at the start of a line (a line ends at a line feed or a lone carriage return).
_LINE_TAG = re.compile(r"(?:^|(?<=\r))[ \t]*<([A-Za-z_][\w.:-]*)", re.MULTILINE)


_RAW_START_LINE = re.compile(r"^[ \t]*<[A-Za-z_]", re.MULTILINE)


def _raw_starts_outside_fences(doc: Document) -> bool:
    """Whether a line outside the fences starts with a tag (where XML written straight into the
    markdown may start)."""
    text, pos = doc.text, 0
    for fence in [*doc.fences, None]:
        end = fence.start if fence is not None else len(text)
        if _RAW_START_LINE.search(text, pos, end) is not None:
            return True
        if fence is not None:
            pos = fence.end
    return False


def _prose_headings(
    doc: Document, new_text: str, edit: TextEdit, line: str, new_line: str
) -> tuple[Heading, ...] | None:
    """For an edit in the markdown around the XML regions (prose, a heading, a fence of code):
    the headings of the edited text (those on the edited lines found again), when the edit
    keeps the markdown's structure; else None. The edit must lie after a closed frontmatter (a
    line of `---` typed anywhere could close one never closed), away from the regions, comments
    and code spans. Inside a fence, anything goes (code). Outside, the lines must not start
    with `<` (an XML region could start there); a line made or left blank (Enter at a line's
    end, Backspace joining a blank line) splits or joins paragraphs, which pair code spans and
    end XML elements never closed: then the paragraph must hold neither a backtick nor a line
    starting with `<` (see `_plain_paragraph`). Headings are lines of their own in this model
    (nothing else depends on them), so the edited lines are simply looked at again.
    Where XML is written straight into the markdown, its extents are found from the tags of the
    whole text: then the edit must not lie inside a tag, or make or break a comment's end."""
    text = doc.text
    start, old_end = edit.start, edit.old_end
    if doc.frontmatter is not None and start <= doc.frontmatter.end:
        return None
    if frontmatter_end(text) == 0 and text.lstrip("\ufeff").startswith("---"):
        return None
    spans = [(r.start, r.end) for r in doc.regions] + [(c.start, c.end) for c in doc.comments]
    spans += [(c.start, c.end) for c in doc.code_spans]
    spans += [(f.start, f.content_start) for f in doc.fences]  # its first line, where code starts
    spans += [(f.content_end, f.end) for f in doc.fences if f.closed]
    if doc.unclosed_comment is not None:
        spans.append((doc.unclosed_comment.start, doc.unclosed_comment.end))
    if any(s <= old_end and start <= e for s, e in spans):
        return None
    if _raw_starts_outside_fences(doc) and (
        any(line.count(m) != new_line.count(m) for m in _MARKERS)
        or text.rfind("<", 0, start) > text.rfind(">", 0, start)
    ):
        return None  # a tag (its name, a `/>`) or a comment's end, where raw XML may look
    move = _Move(old_end, edit.delta)
    if any(
        f.content_start < start and (old_end < f.end or (old_end == f.end and not f.closed))
        for f in doc.fences
    ):
        return move.headings(doc.headings)  # code: no markdown inside (to the end if unclosed)
    lines = [*line.split("\n"), *new_line.split("\n")]
    if any(each.lstrip(" \t").startswith("<") for each in lines):
        return None
    if not all(each.strip() for each in lines) and not (
        _plain_paragraph(text, start, old_end) and _plain_paragraph(new_text, start, edit.new_end)
    ):
        return None
    first = _line_start(text, start)  # the edited lines: [first, last) before the edit
    last = first + len(line)
    edited: list[Heading] = []
    at = first
    for each in new_line.split("\n"):
        found = atx_heading(each)
        if found is not None:
            edited.append(Heading(found[0], found[1], at, at + len(each)))
        at += len(each) + 1
    return (
        *(h for h in doc.headings if h.start < first),
        *edited,
        *move.headings([h for h in doc.headings if h.start > last]),
    )


def _plain_paragraph(text: str, start: int, end: int) -> bool:
    """Whether the lines of `text[start:end]` and those around them up to the nearest blank
    lines hold no backtick and no line starting with `<`."""
    first = text.rfind("\n", 0, start) + 1
    while first > 0:
        before = text.rfind("\n", 0, first - 1) + 1
        if not text[before : first - 1].strip(" \t"):
            break
        first = before
    last = text.find("\n", end)
    last = len(text) if last < 0 else last
    while last < len(text):
        after = text.find("\n", last + 1)
        after = len(text) if after < 0 else after
        if not text[last + 1 : after].strip(" \t"):
            break
        last = after
    paragraph = text[first:last]
    return "`" not in paragraph and not any(
        each.lstrip(" \t").startswith("<") for each in paragraph.splitlines()
    )


def _raw_edit_safe(doc: Document, start: int, old_end: int, line: str, new_line: str) -> bool:
    """Whether an edit inside a raw region (XML written straight into the markdown) keeps the
    markdown around it: what a fence hides from markdown is in plain view there. The edited line
    must stay a line with words that is no heading and starts no comment (a blank line ends a
    paragraph, and with it an unclosed element's region and the pairing of code spans; a
    comment indented three spaces or fewer is one of the markdown), and the edit must not lie
    in or next to a fence, a code span (masked from the region's check; a fence nested in the
    region may be a region of its own) or a block comment of the markdown."""
    for text in (*line.split("\n"), *new_line.split("\n")):
        if not text.strip() or atx_heading(text) is not None:
            return False
        if text.lstrip(" \t").startswith("<!--"):
            return False
    spans = [(f.start, f.end) for f in doc.fences] + [(c.start, c.end) for c in doc.code_spans]
    spans += [(c.start, c.end) for c in doc.comments]
    return not any(s <= old_end and start <= e for s, e in spans)


def _start_of(element: XmlElement) -> int:
    return element.start


def _shift_check(
    text: str, region: XmlRegion, start: int, old_end: int, delta: int
) -> tuple[XmlCheck, bool] | None:
    """The check of the region after replacing its `[start, old_end)` (region offsets), when
    that span lies in the text of an element, away from markup, and whether that text is a
    path the references are read from; else None."""
    base_at, region_end = region.start, region.end

    def back(ch: str) -> int:
        found = text.rfind(ch, base_at, base_at + start)
        return found - base_at if found >= 0 else -1

    def ahead(ch: str) -> int:
        found = text.find(ch, base_at + old_end, region_end)
        return found - base_at if found >= 0 else -1

    before = max(back("<"), back(">"), back("&"))
    if before < 0 or text[base_at + before] != ">":
        return None
    after = [i for i in (ahead("<"), ahead(">")) if i >= 0]
    amp = ahead("&")
    if not after or text[base_at + min(after)] != "<" or (0 <= amp < min(after)):
        return None
    node_start, node_end = before + 1, min(after)
    if node_start == node_end:
        # An empty text node (`</a><b>`, `<a></a>`): an offset there may be an end before the
        # insertion (`</a>`'s) or a start after it (`<b>`'s); not told apart here.
        return None
    check = region.check
    for c in check.comments:
        if c.start < node_end and node_start < c.end:
            return None
    for c_start, c_end in check.cdata:
        if c_start < node_end and node_start < c_end:
            return None
    for p in check.problems:
        if node_start <= p.start <= node_end or node_start <= p.end <= node_end:
            return None
    # Elements ending before the text node stay as they are; those starting after it move
    # whole, lazily (`ShiftedElements`); those around it (its ancestors, or an unclosed element
    # running past it) keep their start and may contain it: only these are made again. Typing
    # on in the text node the previous edit shifted folds into that shift; typing in another
    # adds one.
    elements = check.elements
    node = (node_start, node_end)
    if not isinstance(elements, ShiftedElements):
        shifted = ShiftedElements(tuple(elements), (), (-1, -1))
    elif len(elements.shifts) < SHIFTS_MAX or elements.node == node:
        shifted = elements
    else:
        shifted = elements.folded()
    around: list[tuple[int, XmlElement]]
    if shifted.node == node:
        shifts = shifted.shifts[:-1]
        pivot, before, last_around = shifted.shifts[-1]
        total, around = before + delta, list(last_around.items())
    else:
        shifts = shifted.shifts
        pivot = bisect.bisect_left(shifted, node_end, key=_start_of)
        total, around = delta, []
        # The innermost element holding the text node is the last one starting before it or
        # one of its ancestors; it and its ancestors are those around the node.
        parents = shifted.parents()
        k = pivot - 1
        while k >= 0 and shifted[k].end < node_end:
            k = parents[k]
        while k >= 0:
            around.append((k, shifted[k]))
            k = parents[k]
    inside = paths = False
    moved_around: dict[int, XmlElement] = {}
    for i, e in around:
        if e.start_tag_end <= node_start and node_end <= e.content_end:
            if e.self_closing:
                return None
            if placeholder_shaped(shifted, i):
                # Its "never closed" problem offers an escape when its text reads like a
                # placeholder (`xml._placeholder_fixed`): a line break or words typed there may
                # change that, and a check decides it again.
                return None
            # Paths are read from a `<module>`'s first text, an include element's whole
            # text and the lines of `<depends_on>`/`<provides_to>`.
            paths = paths or e.name in _LINE_ELEMENTS
            paths = paths or (
                e.name in _PATH_ELEMENTS
                and (node_start == e.content_start or node_end == e.content_end)
            )
            inside = True
        moved_around[i] = XmlElement(
            e.name,
            e.start,
            e.start_tag_end,
            e.end + delta,
            e.content_start,
            e.content_end + delta if e.content_end >= node_end else e.content_end,
            e.depth,
            e.attributes,
            e.self_closing,
            e.closed,
        )
    if not inside:
        return None

    def at(offset: int) -> int:
        return offset + delta if offset >= node_end else offset

    moved = XmlCheck(
        problems=tuple(
            XmlProblem(at(p.start), at(p.end), p.severity, p.message, p.kind, p.fix)
            if p.end >= node_end
            else p
            for p in check.problems
        ),
        elements=shifted.then(
            (*shifts, Shift(pivot, total, moved_around)), (node_start, node_end + delta)
        ),
        comments=tuple(
            XmlComment(at(c.start), at(c.end), c.closed) if c.end >= node_end else c
            for c in check.comments
        ),
        cdata=tuple((at(s), at(e)) for s, e in check.cdata),
        well_formed=check.well_formed,
        oracle=check.oracle,
        resume=check.resume.moved(start, old_end, old_end + delta) if check.resume else None,
    )
    return moved, paths
