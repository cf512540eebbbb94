"""Verified compression of XML regions: a smaller text that means the same, checked before use.

Given the text of one XML region (a ```xml fence body, raw elements in markdown, a whole
``.xml`` file), `compress_xml` removes indentation and whitespace-only text between elements,
collapses whitespace runs inside text, normalises the spacing inside tags (``a = "x"`` becomes
``a="x"``, one space between attributes), self-closes empty elements (``<x></x>`` becomes
``<x/>``) and, on request only, removes comments (comments inside a fence reach the model, so by
default they stay). CDATA sections, attribute values, entity and character references, comments
and processing instructions are copied byte for byte, and an element with
``xml:space="preserve"`` is copied whole.

There are two levels, each with a *canonical form* that a result must share with the original:

* ``lossless``: the C14N form of the fragment with whitespace-only text nodes dropped. Every
  text node holding more than whitespace is byte-identical.
* ``whitespace`` (the default): also, in every other text node, runs of whitespace become one
  space, and the whitespace right after the parent's start tag (leading whitespace of the
  parent's first text) and right before its end tag (trailing whitespace of its last text) is
  dropped. Whitespace between a word and a child's tag (``foo <b>bar</b> baz``) stays one
  space, so words are never glued together: the model reads the same words.

Inside an ``xml:space="preserve"`` subtree nothing is normalised at either level. Whitespace
means the four XML whitespace characters (space, tab, CR, LF), never NBSP or other Unicode
spaces.

Every result is verified before it is returned: it is re-parsed with lxml as a fragment wrapped
in a root element (no DTD, no entity resolution, no network) and its canonical form compared
with the original's; a result that fails is never returned. Where the original had a line
break (between elements, after a start tag, before an end tag, in text), the result has a line
break or nothing (one space in text): each such place is decided by the tokenizer, not the
character count, counting the text around it up to the nearest points no token crosses (see
`_CUT`), the shorter on a tie. Its count is exact, and never more than that of any whole style
(no whitespace between elements; one line break between sibling elements; one element per line;
each with and without the line breaks of text kept), which are tried next, fewest tokens first,
should it fail a check.

Some spans are copied verbatim and hidden from lxml behind same-length placeholders: the
lexical problems that a model reads fine but a strict parser rejects (a bare ``<`` or ``&``, an
HTML entity), markdown code spans, fences and block comments inside a raw region (a fence or
block comment keeps its own lines), an XML declaration and a DOCTYPE. So a region with
``p95 <200ms`` in its text still compresses.

What promptls itself reads line by line is kept too: a line that is only a ``components/...``
path stays a line, and so does each line of a ``<depends_on>`` or ``<provides_to>`` list. In a
raw region no comment is moved to the start of a line (it would become a markdown block
comment, which Claude Code strips from memory files).

A region that is not well-formed gets only the line-local trim: trailing whitespace and
indentation of each line removed, lines never joined, checked by the sequence of non-whitespace
characters and the number of lines (and only at the ``whitespace`` level: nothing about a
malformed region can be proven lossless).

`compress_document` applies this to every XML region of a parsed document and parses the
edited document again: its frontmatter, fences, block comments, code spans, regions and
references must be as they were, or the region falls back to its smallest form that keeps them.

Pure: imports neither pygls nor lsprotocol.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from promptls.analysis.cache import SizedLRU
from promptls.analysis.document import Document, RegionCache, XmlRegion, parse_document
from promptls.analysis.findings import Severity
from promptls.analysis.references import extract_references
from promptls.analysis.text import apply_spans
from promptls.analysis.tokens import TokenCounter, load_encoding
from promptls.analysis.xml import NAME_RE, XmlCheck, check_region

__all__ = [
    "LEVELS",
    "Compressed",
    "CompressionPool",
    "Level",
    "RegionEdit",
    "apply_edits",
    "canonical",
    "compress_document",
    "compress_documents",
    "compress_xml",
    "equivalent",
    "line_trim",
]

Level = Literal["lossless", "whitespace"]
LEVELS: tuple[Level, ...] = ("lossless", "whitespace")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compressed:
    """A verified, smaller replacement for one region's whole text."""

    text: str
    tokens_before: int
    tokens_after: int
    level: str
    restructured: bool
    """False for the line-local trim (of a region that could not be parsed, or whose
    restructured forms all changed the markdown around it)."""

    @property
    def saved(self) -> int:
        """Tokens saved (`tokens_before - tokens_after`)."""
        return self.tokens_before - self.tokens_after

    @property
    def percent(self) -> float:
        """Tokens saved as a percentage of `tokens_before` (0 for an empty region)."""
        return self.saved / self.tokens_before * 100 if self.tokens_before else 0.0


@dataclass(frozen=True, slots=True)
class RegionEdit:
    """A verified compression of one XML region of a document."""

    start: int
    """Offset into the document text (the region's start)."""
    end: int
    """Offset into the document text (the region's end)."""
    new_text: str
    compressed: Compressed
    element: str
    """Name of the region's first top-level element ("" if none), for titles."""


RegionResults = MutableMapping[tuple[object, ...], Compressed | None]
"""Results of `compress_xml` for regions, by all they depend on (see `_compress_region`)."""

_UNKNOWN = object()


# --------------------------------------------------------------------------------------------
# Lexical building blocks
# --------------------------------------------------------------------------------------------

_WS_CHARS = " \t\r\n"
_WS_ONLY = re.compile("[ \t\r\n]*+")
# Whitespace runs other than a single space: the only runs worth rewriting in the middle of text.
_NONTRIVIAL_WS = re.compile("[ \t\r\n]{2,}|[\t\r\n]")
_NAME = NAME_RE.pattern
_S = "[ \t\r\n]"
_START_TAG = re.compile(
    f"<({_NAME})((?:{_S}++{_NAME}{_S}*+={_S}*+(?:\"[^\"]*+\"|'[^']*+'))*+){_S}*+(/?)>"
)
_ATTRIBUTE = re.compile(f"({_NAME}){_S}*+={_S}*+(\"[^\"]*+\"|'[^']*+')")
_END_TAG = re.compile(f"</({_NAME}){_S}*+>")
_COMMENT = re.compile(r"<!--[\s\S]*?-->")
_CDATA = re.compile(r"<!\[CDATA\[[\s\S]*?\]\]>")
_PI = re.compile(r"<\?[\s\S]*?\?>")
_XML_DECLARATION = re.compile(r"\A\ufeff?[ \t\r\n]*+(<\?xml)(?=[ \t\r\n?])[\s\S]*?\?>")
# Tags, for the namespace prefixes to declare on the wrapper.
_TAG_NAMES = re.compile(f"<(/?)({_NAME})((?:[^<>\"']|\"[^\"]*+\"|'[^']*+')*+)>")
_ATTRIBUTE_NAME = re.compile(f"({_NAME}){_S}*+=")
_LINE = re.compile(r"([^\r\n]*+)(\r\n|\r|\n|\Z)")
_FENCE_MARKS = ("```", "~~~")
_FINAL_NEWLINE = re.compile(r"(?:\r\n|\r|\n)\Z")

_WRAPPER = "_promptls_compress_root"
_XML_NS_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
# The placeholder for a span of text hidden from lxml: a private-use character, valid in XML
# text, never whitespace, never markup.
_PLACEHOLDER = "\ue000"

# Kinds of verbatim spans.
_TEXT = 0  # opaque text (a lexical problem, a markdown code span): copied as is
_BLOCK = 1  # a fence or block comment in a raw region: copied as is, and must start a line
_NODE = 2  # an XML declaration or DOCTYPE: copied as is, seen by lxml as a processing instruction
_TAG = 3  # a stray quote where a tag ends (`<a">`): copied as is, seen by lxml as a space


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        recover=False,
        remove_comments=False,
        remove_blank_text=False,
    )


def _has_newline(s: str) -> bool:
    return "\n" in s or "\r" in s


def _has_blank_line(s: str) -> bool:
    """Whether the whitespace `s` holds two line breaks or more (a blank line)."""
    return s.count("\n") + s.count("\r") - s.count("\r\n") >= 2


def _is_ws(s: str) -> bool:
    return _WS_ONLY.fullmatch(s) is not None


# --------------------------------------------------------------------------------------------
# Canonical forms
# --------------------------------------------------------------------------------------------


def _prefixes(*texts: str) -> list[str]:
    """Namespace prefixes used by element and attribute names, to declare on the wrapper.

    A prompt fragment may write `<p:x>` without declaring `p`. Declaring a prefix more than is
    used changes nothing, as long as both sides of a comparison get the same declarations.
    """
    found: set[str] = set()
    for text in texts:
        if ":" not in text:
            continue
        for m in _TAG_NAMES.finditer(text):
            names = [m.group(2)]
            if not m.group(1):
                names.extend(a.group(1) for a in _ATTRIBUTE_NAME.finditer(m.group(3)))
            for name in names:
                prefix, colon, _ = name.partition(":")
                if colon and prefix:
                    found.add(prefix)
    found.discard("xml")
    found.discard("xmlns")
    return sorted(found)


def _parse_fragment(work: str, prefixes: Sequence[str]) -> etree._Element | None:
    declarations = "".join(f' xmlns:{p}="urn:promptls:prefix:{k}"' for k, p in enumerate(prefixes))
    wrapped = f"<{_WRAPPER}{declarations}>{work}</{_WRAPPER}>"
    try:
        return etree.fromstring(wrapped.encode("utf-8"), _parser())
    except (etree.XMLSyntaxError, UnicodeEncodeError, ValueError):
        return None


def _normalise(element: etree._Element, level: Level) -> None:
    """Bring a parsed tree to the level's canonical form, in place (iteratively: no recursion)."""
    todo = [element]
    while todo:
        el = todo.pop()
        if el.get(_XML_NS_SPACE) == "preserve":
            continue
        children = list(el)
        if el.text is not None and _is_ws(el.text):
            el.text = None
        for child in children:
            if child.tail is not None and _is_ws(child.tail):
                child.tail = None
        if level == "whitespace":
            if el.text is not None:
                el.text = _NONTRIVIAL_WS.sub(" ", el.text).lstrip(" ")
            for child in children:
                if child.tail is not None:
                    child.tail = _NONTRIVIAL_WS.sub(" ", child.tail)
            if children:
                last = children[-1]
                if last.tail is not None:
                    last.tail = last.tail.rstrip(" ")
            elif el.text is not None:
                el.text = el.text.rstrip(" ")
        todo.extend(child for child in children if isinstance(child.tag, str))


def _canonical_work(
    work: str, level: Level, drop_comments: bool, prefixes: Sequence[str]
) -> bytes | None:
    root = _parse_fragment(work, prefixes)
    if root is None:
        return None
    if drop_comments:
        etree.strip_tags(root, etree.Comment)
    _normalise(root, level)
    # C14N compares names, namespaces, attribute values (exactly, as parsed), text, comments and
    # processing instructions; CDATA sections were already merged into text by the parser.
    return etree.tostring(root, method="c14n", with_comments=True)


def _declaration_as_pi(text: str) -> str:
    """`text` with a leading XML declaration renamed to a processing instruction lxml accepts
    inside the wrapper (same length: offsets stay aligned)."""
    m = _XML_DECLARATION.match(text)
    if m is None:
        return text
    return f"{text[: m.start(1)]}<?_ml{text[m.end(1) :]}"


def canonical(text: str, level: Level, *, drop_comments: bool = False) -> bytes | None:
    """The level's canonical form of a fragment (None if it does not parse).

    The fragment is wrapped in a root element that declares every namespace prefix its names
    use; a leading XML declaration is allowed. Comments are removed first when `drop_comments`.
    """
    work = _declaration_as_pi(text)
    return _canonical_work(work, level, drop_comments, _prefixes(work))


def equivalent(before: str, after: str, level: Level, *, drop_comments: bool = False) -> bool:
    """Whether two fragments parse and have the same canonical form at `level`."""
    work_before, work_after = _declaration_as_pi(before), _declaration_as_pi(after)
    prefixes = _prefixes(work_before, work_after)
    a = _canonical_work(work_before, level, drop_comments, prefixes)
    return a is not None and a == _canonical_work(work_after, level, drop_comments, prefixes)


# --------------------------------------------------------------------------------------------
# A small tree of the source, with offsets
# --------------------------------------------------------------------------------------------


class _Text:
    """A text node: raw character data, CDATA sections and verbatim spans, in order."""

    __slots__ = ("segments", "ws_only")

    def __init__(self) -> None:
        # (kind, start, end): kind -1 is raw character data, else a verbatim span kind (CDATA
        # sections are verbatim text).
        self.segments: list[tuple[int, int, int]] = []
        self.ws_only = True  # nothing but raw whitespace


class _Node:
    """A comment or processing instruction (or a verbatim node span): copied as is."""

    __slots__ = ("comment", "end", "start")

    def __init__(self, start: int, end: int, *, comment: bool = False) -> None:
        self.start = start
        self.end = end
        self.comment = comment


class _Element:
    __slots__ = ("attributes", "end", "end_stray", "items", "name", "preserve", "start", "stray")

    def __init__(
        self, name: str, start: int, attributes: list[tuple[str, int, int]], preserve: bool
    ) -> None:
        self.name = name
        self.start = start
        self.end = start
        self.attributes = attributes  # (name, value start, value end incl. quotes)
        self.preserve = preserve
        self.items: list[_Text | _Node | _Element] = []
        # A stray quote before the '>' of the start tag and of the end tag (a `_TAG` span).
        self.stray: tuple[int, int] | None = None
        self.end_stray: tuple[int, int] | None = None


_RAW = -1


class _Source:
    """The region text, its work copy (verbatim spans replaced by placeholders) and its tree."""

    def __init__(self, text: str, spans: Sequence[tuple[int, int, int]]) -> None:
        self.text = text
        self.spans = spans  # merged (start, end, kind), sorted
        self.span_starts = [s for s, _, _ in spans]
        self.work = _declaration_as_pi(_work_copy(text, spans))
        self.prefixes: set[str] = set()

    def parse(self, remove_comments: bool) -> _Element | None:
        """The tree of the work copy, or None when the scanner cannot follow it."""
        work = self.work
        root = _Element("", 0, [], preserve=False)
        stack = [root]
        n = len(work)
        pos = 0
        while pos < n:
            lt = work.find("<", pos)
            if lt < 0:
                lt = n
            if lt > pos:
                self._add_text(stack[-1], pos, lt)
            if lt >= n:
                break
            parent = stack[-1]
            m: re.Match[str] | None
            if work.startswith("<!--", lt):
                m = _COMMENT.match(work, lt)
                if m is None:
                    return None
                if not remove_comments:
                    parent.items.append(_Node(lt, m.end(), comment=True))
            elif work.startswith("<![CDATA[", lt):
                m = _CDATA.match(work, lt)
                if m is None:
                    return None
                self._add_segment(parent, _TEXT, lt, m.end())
            elif work.startswith("<?", lt):
                m = _PI.match(work, lt)
                if m is None:
                    return None
                parent.items.append(_Node(lt, m.end()))
            elif work.startswith("</", lt):
                m = _END_TAG.match(work, lt)
                if m is None or len(stack) == 1 or m.group(1) != parent.name:
                    return None
                parent.end = m.end()
                parent.end_stray = self._stray(lt, m.end())
                stack.pop()
            else:
                m = _START_TAG.match(work, lt)
                if m is None:
                    return None
                attributes: list[tuple[str, int, int]] = []
                preserve = False
                for a in _ATTRIBUTE.finditer(work, m.start(2), m.end(2)):
                    attributes.append((a.group(1), a.start(2), a.end(2)))
                    if a.group(1) == "xml:space" and a.group(2)[1:-1] == "preserve":
                        preserve = True
                name = m.group(1)
                if ":" in m.group(0):
                    self._note_prefixes(name, attributes)
                element = _Element(name, lt, attributes, preserve)
                element.stray = self._stray(lt, m.end())
                parent.items.append(element)
                if m.group(3):
                    element.end = m.end()
                else:
                    stack.append(element)
            pos = m.end()
        return root if len(stack) == 1 else None

    def _stray(self, start: int, end: int) -> tuple[int, int] | None:
        """The `_TAG` span inside the tag [start, end), if any (the scanner allows one, just
        before the tag's end)."""
        k = bisect.bisect_left(self.span_starts, start)
        if k < len(self.spans) and self.spans[k][0] < end and self.spans[k][2] == _TAG:
            return self.spans[k][0], self.spans[k][1]
        return None

    def _note_prefixes(self, name: str, attributes: Sequence[tuple[str, int, int]]) -> None:
        for qname in (name, *(a[0] for a in attributes)):
            prefix, colon, _ = qname.partition(":")
            if colon and prefix and prefix not in ("xml", "xmlns"):
                self.prefixes.add(prefix)

    def _add_segment(self, parent: _Element, kind: int, start: int, end: int) -> None:
        items = parent.items
        last = items[-1] if items else None
        if isinstance(last, _Text):
            node = last
        else:
            node = _Text()
            items.append(node)
        node.segments.append((kind, start, end))
        if node.ws_only and (kind != _RAW or _WS_ONLY.fullmatch(self.work, start, end) is None):
            node.ws_only = False

    def _add_text(self, parent: _Element, start: int, end: int) -> None:
        """Character data [start, end), cut at the verbatim spans inside it."""
        k = bisect.bisect_right(self.span_starts, start) - 1
        k = max(k, 0)
        pos = start
        while k < len(self.spans) and self.spans[k][0] < end:
            s, e, kind = self.spans[k]
            k += 1
            if e <= pos:
                continue
            s, e = max(s, pos), min(e, end)
            if s > pos:
                self._add_segment(parent, _RAW, pos, s)
            self._add_segment(parent, kind if kind != _NODE else _TEXT, s, e)
            pos = e
        if pos < end:
            self._add_segment(parent, _RAW, pos, end)


def _work_copy(text: str, spans: Sequence[tuple[int, int, int]]) -> str:
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for s, e, kind in spans:
        parts.append(text[pos:s])
        length = e - s
        if kind == _NODE:
            parts.append("<?_ " + "x" * (length - 6) + "?>" if length >= 6 else "x" * length)
        elif kind == _TAG:
            parts.append(" " * length)
        else:
            parts.append(_PLACEHOLDER * length)
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def _merge_spans(spans: Sequence[tuple[int, int, int]], n: int) -> list[tuple[int, int, int]]:
    """Clamp, drop empty, and merge overlapping spans (a fence wins over other kinds)."""
    out: list[tuple[int, int, int]] = []
    for s, e, kind in sorted((max(0, s), min(n, e), k) for s, e, k in spans):
        if e <= s:
            continue
        if out and s < out[-1][1]:
            ps, pe, pk = out[-1]
            merged = _BLOCK if _BLOCK in (pk, kind) else _TEXT
            out[-1] = (ps, max(pe, e), merged)
        else:
            out.append((s, e, kind))
    return out


# --------------------------------------------------------------------------------------------
# Emitting one candidate
# --------------------------------------------------------------------------------------------

# A piece of the result: a literal string (the same in the text and its work copy), a span of
# the source (taken from the text for the result, from the work copy for verification), or one
# of the choices below, which each layout style fills in its own way.
_Piece = str | tuple[int, int] | int

_EDGE_NL = 0  # whitespace with a line break right after a start tag or before an end tag
_INNER_NL = 1  # whitespace-only text with a line break between two sibling elements
_TEXT_NL = 2  # a whitespace run with a line break inside text (one space, or a line break)
_BLANK = 3
"""Added to a choice's kind when its run held a blank line: filled as the kind is, except by
the styles that keep paragraphs (`_Style.paragraphs`)."""


@dataclass(frozen=True, slots=True)
class _Style:
    """One way to lay out the same content: what each choice becomes."""

    edge_newline: bool  # a line break after a start tag / before an end tag, where one was
    inner_newline: bool  # a line break between sibling elements, where one was
    text_newline: bool  # a whitespace run in text holding a line break becomes a line break
    paragraphs: bool = False  # a run that held a blank line stays as it was (a raw region)

    def choices(self, newline: str) -> tuple[str | None, ...]:
        """What each kind of choice becomes (None: the run as it was)."""
        kinds = (
            newline if self.edge_newline else "",
            newline if self.inner_newline else "",
            newline if self.text_newline else " ",
        )
        return (*kinds, *((None,) * 3 if self.paragraphs else kinds))


_STYLES = (
    _Style(False, False, False),
    _Style(False, True, False),
    _Style(True, True, False),
    _Style(False, False, True),
    _Style(False, True, True),
    _Style(True, True, True),
)
# Tried when no style above keeps the markdown around a raw region: the white space that held a
# blank line stays as it was (with the indentation after it), so that each block of the
# markdown starts as it did and no paragraph runs into the next (backticks kept apart by a
# blank line, say, would pair up into a new code span).
_PARAGRAPH_STYLES = (_Style(False, False, False, True), _Style(False, True, True, True))

# In text: runs of spaces and tabs to collapse, and whitespace runs that hold a line break.
_SPACE_RUN = re.compile("[ \t]{2,}|\t")
_NEWLINE_RUN = re.compile("[ \t]*+[\r\n][ \t\r\n]*+")
# What promptls reads line by line (see references.py): a line that is only a component path,
# and the lines of these elements.
_COMPONENT_LINE = re.compile(
    r"(?:[-*+][ \t]+)?components/[\w.@/-]+\.(?:md|markdown|xml|txt|ya?ml|json|toml)"
)
_LINE_ELEMENTS = frozenset({"depends_on", "provides_to"})


class _Template:
    """The result of one level with the layout choices left open: built once, rendered per style.

    Besides the XML rules, it keeps what the markdown and promptls's own reading of the text
    depend on: a markdown fence inside a raw region starts a line; in a raw region a comment
    never starts a line (in markdown that would make it a block comment, which Claude Code
    strips from memory files); a line that is only a `components/...` path stays a line, and
    so does every line of a `<depends_on>` or `<provides_to>` list (promptls reads those
    references line by line).
    """

    def __init__(self, source: _Source, level: Level, newline: str, *, markdown: bool) -> None:
        self.text = source.text
        self.level = level
        self.newline = newline
        self.markdown = markdown
        self.keep_lines = 0  # depth of elements whose text lines are references
        self.out: list[_Piece] = []
        self.blank_runs: list[str] = []
        """The whitespace of each choice that held a blank line, in order."""

    def run(self, ws: str, *, edge: bool) -> None:
        """A whitespace run that stays (inside text) or may go (at an edge)."""
        if edge:
            if _has_newline(ws):
                self.out.append(self.slot(_EDGE_NL, ws))
        else:
            self.out.append(self.slot(_TEXT_NL, ws) if _has_newline(ws) else " ")

    def slot(self, kind: int, ws: str) -> int:
        """The choice of kind `kind` for the whitespace run `ws`."""
        if not _has_blank_line(ws):
            return kind
        self.blank_runs.append(ws)
        return kind + _BLANK

    def content(self, items: Sequence[_Text | _Node | _Element], *, root: bool) -> None:
        text, out = self.text, self.out
        ws_only = [isinstance(it, _Text) and it.ws_only for it in items]
        has_node = any(not isinstance(it, _Text) for it in items)
        last = len(items) - 1
        for i, item in enumerate(items):
            if isinstance(item, _Element):
                self.element(item)
            elif isinstance(item, _Node):
                out.append((item.start, item.end))
            else:
                nxt = items[i + 1] if i < last else None
                before_comment = self.markdown and isinstance(nxt, _Node) and nxt.comment
                if not ws_only[i]:
                    self.text_node(
                        item, first=i == 0, last=i == last, root=root, before_comment=before_comment
                    )
                    continue
                if not has_node:
                    continue
                run = "".join(text[s:e] for _, s, e in item.segments)
                if i in (0, last):
                    if not root and not before_comment:
                        self.run(run, edge=True)
                # Between two nodes (even in mixed content) no word touches the run: it goes,
                # or stays as a line break where one was.
                elif _has_newline(run) and not before_comment:
                    out.append(self.slot(_INNER_NL, run))

    def text_node(
        self, node: _Text, *, first: bool, last: bool, root: bool, before_comment: bool
    ) -> None:
        text, out = self.text, self.out
        # Consecutive raw segments (split by a removed comment) are one piece of text.
        parts: list[str | tuple[int, int, int]] = []
        for kind, s, e in node.segments:
            if kind == _RAW:
                if parts and isinstance(parts[-1], str):
                    parts[-1] += text[s:e]
                else:
                    parts.append(text[s:e])
            else:
                parts.append((kind, s, e))
        if self.level == "lossless":
            for part in parts:
                out.append(part if isinstance(part, str) else (part[1], part[2]))
            return
        count = len(parts)
        for k, part in enumerate(parts):
            if not isinstance(part, str):
                out.append((part[1], part[2]))
                continue
            at_start = first and k == 0
            at_end = last and k == count - 1
            nxt = parts[k + 1] if k + 1 < count else None
            before_block = nxt is not None and not isinstance(nxt, str) and nxt[0] == _BLOCK
            no_newline = before_comment and k == count - 1  # a comment follows this text
            body = part.strip(_WS_CHARS)
            if not body:  # one run, between two verbatim spans or at an edge
                if before_block:
                    out.append(self.newline)
                elif at_start or at_end:
                    if not root and not no_newline:
                        self.run(part, edge=True)
                elif no_newline:
                    out.append(" ")
                else:
                    self.run(part, edge=False)
                continue
            lead = part[: len(part) - len(part.lstrip(_WS_CHARS))]
            trail = part[len(part.rstrip(_WS_CHARS)) :]
            component = _component_lines(body)
            first_line = component is not None and component[0]
            last_line = component is not None and component[-1]
            if lead:
                if at_start and root:
                    pass
                elif first_line and _has_newline(lead):
                    out.append(self.newline)
                elif at_start:
                    self.run(lead, edge=True)
                elif self.keep_lines and _has_newline(lead):
                    out.append(self.newline)
                else:
                    self.run(lead, edge=False)
            self.body(body, component)
            if trail:
                if before_block:
                    out.append(self.newline)
                elif at_end and root:
                    pass
                elif last_line and _has_newline(trail) and not no_newline:
                    out.append(self.newline)
                elif at_end:
                    self.run(trail, edge=True)
                elif no_newline:
                    out.append(" ")
                elif self.keep_lines and _has_newline(trail):
                    out.append(self.newline)
                else:
                    self.run(trail, edge=False)

    def body(self, body: str, component: Sequence[bool] | None) -> None:
        """Text between its first and last non-whitespace character, runs collapsed; a line
        break stays where `component` (which lines are component paths) or the element says."""
        out = self.out
        pos = 0
        for k, m in enumerate(_NEWLINE_RUN.finditer(body), 1):
            out.append(_collapse(body[pos : m.start()]))
            keep = self.keep_lines or (component is not None and (component[k - 1] or component[k]))
            out.append(self.newline if keep else self.slot(_TEXT_NL, m.group()))
            pos = m.end()
        out.append(_collapse(body[pos:] if pos else body))

    def element(self, el: _Element) -> None:
        out = self.out
        if el.preserve:
            out.append((el.start, el.end))
            return
        out.append("<" + el.name)
        for name, vs, ve in el.attributes:
            out.append(f" {name}=")
            out.append((vs, ve))
        if el.stray is not None:  # (the quote in the result; in the work copy, a space)
            out.append(el.stray)
        mark = len(out)
        out.append(">")
        lines = el.name in _LINE_ELEMENTS
        self.keep_lines += lines
        self.content(el.items, root=False)
        self.keep_lines -= lines
        if len(out) == mark + 1 and el.end_stray is None:
            out[mark] = "/>"
        elif el.end_stray is not None:
            out.extend((f"</{el.name}", el.end_stray, ">"))
        else:
            out.append(f"</{el.name}>")


def _blank_lines(ws: str, parts: Sequence[str], at: int) -> str:
    """The white space `ws` (holding a blank line) at `parts[at]`, as the paragraph styles keep
    it: its line breaks, and the indentation of its last line only where what follows starts
    with a fence mark (as the line-local trim keeps it)."""
    breaks = "".join(c for c in ws if c in "\r\n")
    following = next((p for p in parts[at + 1 :] if p), "")
    if following.startswith(_FENCE_MARKS):
        return breaks + ws[len(ws.rstrip(" \t")) :]
    return breaks


def _collapse(line: str) -> str:
    """Runs of spaces and tabs (no line breaks inside) as one space."""
    return _SPACE_RUN.sub(" ", line) if "  " in line or "\t" in line else line


def _component_lines(body: str) -> list[bool] | None:
    """Which lines of `body` are only a component path (None when none can be)."""
    if "components/" not in body:
        return None
    return [_COMPONENT_LINE.fullmatch(line) is not None for line in _NEWLINE_RUN.split(body)]


class _Layout:
    """The pieces resolved against one source string; `fill` renders one style quickly. With
    `dedent` (the `whitespace` level), each markdown fence copied loses its indentation (see
    `_fence_dedent_cuts`)."""

    __slots__ = ("blocks", "parts", "runs", "slots")

    def __init__(
        self,
        pieces: Sequence[_Piece],
        source: str,
        blocks: set[tuple[int, int]],
        blank_runs: Sequence[str] = (),
        *,
        dedent: bool = False,
    ) -> None:
        parts: list[str] = []
        slots: list[tuple[int, int]] = []
        block_at: list[int] = []
        runs: list[str] = []  # each slot's whitespace as it was, when it held a blank line
        pending = iter(blank_runs)
        for p in pieces:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, int):
                slots.append((len(parts), p))
                runs.append(next(pending) if p >= _BLANK else "")
                parts.append("")
            elif p in blocks:
                block_at.append(len(parts))
                block = source[p[0] : p[1]]
                if dedent:  # (the same content, but not the same text: not lossless)
                    block = _cut(block, _fence_dedent_cuts(block, 0, len(block)))
                parts.append(block)
            else:
                parts.append(source[p[0] : p[1]])
        self.parts = parts
        self.slots = slots
        self.runs = [
            _blank_lines(run, parts, at) if run else run
            for (at, _), run in zip(slots, runs, strict=True)
        ]
        self.blocks = block_at

    def styled(self, choices: tuple[str | None, ...]) -> list[str]:
        """The value of each slot when every slot of a kind is filled the same way (None: as
        it was)."""
        return [
            run if (value := choices[code]) is None else value
            for (_, code), run in zip(self.slots, self.runs, strict=True)
        ]

    def fill_each(self, values: Sequence[str]) -> list[str]:
        """The parts with the k-th slot filled with `values[k]`."""
        parts = self.parts.copy()
        for (at, _), value in zip(self.slots, values, strict=True):
            parts[at] = value
        return parts

    def blocks_start_lines(self, parts: Sequence[str]) -> bool:
        """Every markdown fence copied into the result starts a line (or the text)."""
        for at in self.blocks:
            k = at - 1
            while k >= 0 and not parts[k]:
                k -= 1
            if k >= 0 and not parts[k].endswith(("\n", "\r")):
                return False
        return True


# Where a text can be cut for counting: between an ASCII letter and an ASCII character that is
# not a letter, a digit or an apostrophe. Every tiktoken encoding's pre-tokenizer ends a word
# piece at the first character that is not a letter (a contraction such as 's, the one way a
# word piece goes on, starts with an apostrophe), and no piece starting at such a character
# takes in the letter before it; tokens never cross pieces. So the count of a text is the sum
# of the counts of its parts between such points, and parts that begin and end at them can be
# counted apart or joined in any order.
_CUT = re.compile(r"(?<=[A-Za-z])[\x00-\x26\x28-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]")
_LAST_CUT = re.compile(r"(?s:.*)(?<=[A-Za-z])[\x00-\x26\x28-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]")
# A group with more slots than this tries only the fills where slots of a kind agree.
_EACH_SLOT_MAX = 3


def _cheapest(
    layout: _Layout, counter: TokenCounter, newline: str, ending: str
) -> tuple[list[str], int]:
    """The fill of every slot that gives the fewest tokens (the shorter on a tie), and the
    count of the result (the layout followed by `ending`).

    Each slot is decided with its neighbours only: the layout is cut (see `_CUT`) into the
    text every fill shares, counted once, and groups of slots with the text around them up to
    the nearest cuts, each group counted for every way to fill its slots. The sum is the exact
    count of the result, and it is never more than any one style's (every style fills each
    group in one of the ways tried).
    """
    options = (("", newline), ("", newline), (" ", newline))  # by slot kind
    parts = layout.parts
    shared: list[str] = []
    groups: list[list[str | int]] = []  # text, slot number, text, ..., text
    group: list[str | int] = []
    pos = 0
    for k, (at, _) in enumerate([*layout.slots, (len(parts), -1)]):
        text = "".join(parts[pos:at])
        if k == len(layout.slots):
            text += ending
        pos = at + 1
        first = _CUT.search(text)
        if first is None:
            group.append(text)
        else:
            last = _LAST_CUT.match(text)
            assert last is not None
            group.append(text[: first.start()])
            if len(group) > 1:
                groups.append(group)
            else:
                shared.append(group[0])  # type: ignore[arg-type]
            shared.append(text[first.start() : last.end() - 1])
            group = [text[last.end() - 1 :]]
        if k < len(layout.slots):
            group.append(k)
    if len(group) > 1:
        groups.append(group)
    else:
        shared.append(group[0])  # type: ignore[arg-type]

    kinds = [code % _BLANK for _, code in layout.slots]  # (each slot decided on its own)
    texts = ["".join(shared)]
    tried: list[tuple[list[int], list[tuple[str, ...]]]] = []
    for g in groups:
        slots: list[int] = g[1::2]  # type: ignore[assignment]
        if len(slots) == 1:
            fills: list[tuple[str, ...]] = [(v,) for v in options[kinds[slots[0]]]]
        elif len(slots) <= _EACH_SLOT_MAX:
            fills = list(itertools.product(*(options[kinds[k]] for k in slots)))
        else:
            present = sorted({kinds[k] for k in slots})
            fills = [
                tuple(dict(zip(present, pick, strict=True))[kinds[k]] for k in slots)
                for pick in itertools.product(*(options[c] for c in present))
            ]
        tried.append((slots, fills))
        texts.extend(_filled(g, fill) for fill in fills)
    counts = counter.count_many(texts)
    total = counts[0]
    values = [""] * len(kinds)
    n = 1
    for g, (slots, fills) in zip(groups, tried, strict=True):
        best = n
        for j in range(n + 1, n + len(fills)):
            if (counts[j], len(texts[j])) < (counts[best], len(texts[best])):
                best = j
        chosen, score = list(fills[best - n]), (counts[best], len(texts[best]))
        if len(slots) > _EACH_SLOT_MAX:
            chosen, score = _improve_each(
                g, chosen, score, [options[kinds[k]] for k in slots], counter
            )
        total += score[0]
        for k, value in zip(slots, chosen, strict=True):
            values[k] = value
        n += len(fills)
    return values, total


def _filled(group: list[str | int], fill: Sequence[str]) -> str:
    """The text of a group (text, slot number, text, ...) with its slots filled by `fill`."""
    pieces: list[str] = group.copy()  # type: ignore[assignment]
    pieces[1::2] = fill
    return "".join(pieces)


def _improve_each(
    group: list[str | int],
    fill: list[str],
    score: tuple[int, int],
    choices: list[tuple[str, str]],
    counter: TokenCounter,
) -> tuple[list[str], tuple[int, int]]:
    """A group with too many slots to try every fill: from the best fill where slots of a kind
    agree, change one slot at a time while that gives fewer tokens (or as many in fewer
    characters), until no single change does. Without it a second compression of the result,
    where the groups fall differently, could still find a saving."""
    for _ in range(len(fill)):  # (each round improves the score, or ends the search)
        improved = False
        for i, options in enumerate(choices):
            for value in options:
                if value == fill[i]:
                    continue
                trial = [*fill[:i], value, *fill[i + 1 :]]
                text = _filled(group, trial)
                candidate = (counter.count(text), len(text))
                if candidate < score:
                    fill, score, improved = trial, candidate, True
        if not improved:
            break
    return fill, score


# --------------------------------------------------------------------------------------------
# The line-local trim
# --------------------------------------------------------------------------------------------


def line_trim(text: str, protect: Sequence[tuple[int, int]] = (), *, markdown: bool = False) -> str:
    """Remove each line's indentation and trailing spaces and tabs; never join lines.

    A run of whitespace that overlaps a `protect` span (a CDATA section, a preserved element, a
    markdown fence) is kept. A line that starts with a fence mark (```` ``` ```` or ``~~~``)
    keeps its indentation: indented four spaces or more it is text, unindented it would open or
    close a markdown fence. With `markdown`, a line that starts with a comment keeps its
    indentation (unindented, it would become a markdown block comment).
    """
    return _cut(text, _line_trim_cuts(text, protect, markdown=markdown))


_FENCE_OPENING = re.compile(r"( {1,3})(?:```|~~~)")


def _fence_dedent_cuts(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans to remove so that the markdown fence `text[start:end]`, indented N spaces (one
    to three), starts its line: up to N spaces of each of its lines. A fence's content is its
    lines with up to N spaces of indentation removed (CommonMark), so it stays the same: the
    same code, a shorter prompt. None when a line starts with a tab within those N columns (a
    tab's width in columns depends on where it stands), or when a line between the first and
    the last starts with a fence mark (less indented, it might close the fence)."""
    m = _FENCE_OPENING.match(text, start, end)
    if m is None:
        return []
    indent = len(m.group(1))
    lines: list[tuple[int, str]] = []
    pos = start
    while pos < end:
        m = _LINE.match(text, pos, end)
        if m is None:  # pragma: no cover - the pattern always matches
            break
        if m.group(1) or m.end() < end:
            lines.append((pos, m.group(1)))
        if m.end() == pos:
            break
        pos = m.end()
    cuts: list[tuple[int, int]] = []
    for k, (at, line) in enumerate(lines):
        stripped = line.lstrip(" ")
        if 0 < k < len(lines) - 1 and stripped.startswith(_FENCE_MARKS):
            return []
        spaces = min(indent, len(line) - len(stripped))
        if spaces < indent and line[spaces : spaces + 1] == "\t":
            return []
        if spaces:
            cuts.append((at, at + spaces))
    return cuts


def _cut(text: str, cuts: Sequence[tuple[int, int]]) -> str:
    """`text` without the (sorted, disjoint) spans `cuts`."""
    return apply_spans(text, [(start, end, "") for start, end in cuts])


def _line_trim_cuts(
    text: str, protect: Sequence[tuple[int, int]], *, markdown: bool
) -> list[tuple[int, int]]:
    """The spans `line_trim` removes, in order."""
    spans: list[tuple[int, int]] = []
    for s, e in sorted(protect):
        if e <= s:
            continue
        if spans and s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], e))
        else:
            spans.append((s, e))
    starts = [s for s, _ in spans]

    def protected(a: int, b: int) -> bool:
        """Whether [a, b) overlaps a span (they are disjoint: only the last one before b can)."""
        k = bisect.bisect_left(starts, b) - 1
        return k >= 0 and spans[k][1] > a

    cuts: list[tuple[int, int]] = []
    pos = 0
    n = len(text)
    while pos <= n:
        m = _LINE.match(text, pos)
        if m is None:  # pragma: no cover - the pattern always matches
            break
        body_start, body_end = m.start(1), m.end(1)
        line = m.group(1)
        stripped_left = line.lstrip(" \t")
        a = body_start + len(line) - len(stripped_left)
        if a > body_start and (
            protected(body_start, a)
            or (markdown and stripped_left.startswith("<!--"))
            or stripped_left.startswith(_FENCE_MARKS)
        ):
            a = body_start
        stripped = line.rstrip(" \t")
        b = body_start + len(stripped)
        if b < body_end and protected(b, body_end):
            b = body_end
        if b > a:  # (the line keeps [a, b))
            if a > body_start:
                cuts.append((body_start, a))
            if b < body_end:
                cuts.append((b, body_end))
        elif body_end > body_start:
            cuts.append((body_start, body_end))
        if m.end() == pos or m.end() >= n:
            break
        pos = m.end()
    return cuts


def _line_trim_ok(before: str, after: str) -> bool:
    return "".join(before.split()) == "".join(after.split()) and len(before.splitlines()) == len(
        after.splitlines()
    )


def _trim_protection(
    check: XmlCheck, spans: Sequence[tuple[int, int, int]]
) -> list[tuple[int, int]]:
    protect = [(s, e) for s, e, _ in spans]
    protect.extend(check.cdata)
    protect.extend(
        (el.start, el.end)
        for el in check.elements
        if any(a.name == "xml:space" and a.value == "preserve" for a in el.attributes)
    )
    return protect


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


_VERBATIM_KINDS = {"doctype": _NODE, "stray-quote": _TAG}


def _verbatim_spans(
    text: str,
    check: XmlCheck,
    masks: Sequence[tuple[int, int]],
    blocks: Sequence[tuple[int, int]],
) -> list[tuple[int, int, int]]:
    spans: list[tuple[int, int, int]] = [(s, e, _TEXT) for s, e in masks]
    spans.extend((s, e, _BLOCK) for s, e in blocks)
    for problem in check.problems:
        if problem.severity == Severity.ERROR or problem.kind == "processing-instruction":
            continue
        kind = _VERBATIM_KINDS.get(problem.kind, _TEXT)
        spans.append((problem.start, problem.end, kind))
    merged = _merge_spans(spans, len(text))
    return merged


def _level(level: str) -> Level:
    if level == "lossless":
        return "lossless"
    if level == "whitespace":
        return "whitespace"
    raise ValueError(f"unknown compression level {level!r}: use one of {', '.join(LEVELS)}")


#: An element with more attributes than this gets only the line-local trim: libxml2's canonical
#: form sorts an element's attributes by insertion into a list, in time quadratic in their number
#: (20,000 attributes: 0.6 s a canonical form; 100,000: 45 s for a check).
MAX_VERIFIED_ATTRIBUTES = 256


def _too_many_attributes(check: XmlCheck) -> bool:
    return any(len(e.attributes) > MAX_VERIFIED_ATTRIBUTES for e in check.elements)


def compress_xml(
    text: str,
    counter: TokenCounter,
    *,
    level: Level | str = "whitespace",
    remove_comments: bool = False,
    well_formed: bool | None = None,
    check: XmlCheck | None = None,
    masks: Sequence[tuple[int, int]] = (),
    blocks: Sequence[tuple[int, int]] = (),
    keep_final_newline: bool = False,
    markdown: bool = False,
    accept: Callable[[str], bool] | None = None,
) -> Compressed | None:
    """A verified, smaller text for one region; None when nothing can be saved (or verified).

    `check` is the region's `check_region` result (computed when not given); `well_formed`
    overrides its verdict. `masks` are spans of the text to copy verbatim (markdown code spans
    inside a raw region) and `blocks` spans that must also keep their own lines (markdown
    fences and block comments inside a raw region); both are offsets into `text`. With
    `keep_final_newline` (fence bodies, whole files), a final line break stays. With `markdown`
    (a raw region), a comment is never moved to the start of a line. `accept`, when given, is a
    last check of each verified candidate (the smallest accepted one wins).
    """
    mode = _level(level)
    if not text:
        return None
    if check is None:
        check = check_region(text, [*masks, *blocks])
    if well_formed is None:
        well_formed = check.well_formed
    spans = _verbatim_spans(text, check, masks, blocks)
    tokens_before = counter.count(text)

    def trimmed(
        protect: Sequence[tuple[int, int]] = (),
        verified: Callable[[list[tuple[int, int]]], bool] | None = None,
    ) -> Compressed | None:
        """The line-local trim (also keeping the white space of `protect`), when it passes
        `verified` (given its cuts) and the checks every result passes."""
        if mode != "whitespace":
            return None
        cuts = _line_trim_cuts(text, [*_trim_protection(check, spans), *protect], markdown=markdown)
        # (Inside the fences, disjoint from those: a fence's content is the same by construction,
        # and hidden from the work copy.)
        dedents = [
            c for s, e, kind in spans if kind == _BLOCK for c in _fence_dedent_cuts(text, s, e)
        ]
        result = _cut(text, sorted([*cuts, *dedents]) if dedents else cuts)
        if not (cuts or dedents) or not _line_trim_ok(text, result):
            return None
        if verified is not None and not verified(cuts):
            return None
        if accept is not None and not accept(result):
            return None
        after = counter.count(result)
        if after >= tokens_before:
            return None
        return Compressed(result, tokens_before, after, mode, restructured=False)

    if not well_formed or _too_many_attributes(check):
        return trimmed()

    ending = ""
    body = text
    if keep_final_newline:
        m = _FINAL_NEWLINE.search(text)
        if m is not None:
            ending = m.group(0)
            body = text[: m.start()]
    if any(e > len(body) for _, e, _ in spans):
        spans = _merge_spans(spans, len(body))
    source = _Source(body, spans)
    tree = source.parse(remove_comments)
    if tree is None:
        return trimmed()
    prefixes = sorted(source.prefixes)
    reference = _canonical_work(source.work, mode, remove_comments, prefixes)
    if reference is None:
        return trimmed()

    newline = "\r\n" if "\r\n" in body else "\n"
    template = _Template(source, mode, newline, markdown=markdown)
    template.content(tree.items, root=True)
    block_spans = {(s, e) for s, e, kind in source.spans if kind == _BLOCK}
    runs = template.blank_runs
    layout = _Layout(template.out, body, block_spans, runs, dedent=mode == "whitespace")
    work_layout = (
        _Layout(template.out, source.work, block_spans, runs) if source.work != body else layout
    )

    def forms() -> Iterator[tuple[list[str], str, int]]:
        """Fills of the slots: each slot decided on its own, then (should that one fail a check
        below) each style, filling every slot of a kind the same way, fewest tokens first, then
        in a raw region the styles that keep its blank lines."""
        values, count = _cheapest(layout, counter, newline, ending)
        yield values, "".join(layout.fill_each(values)) + ending, count
        seen: set[str] = set()
        for group in (_STYLES, _PARAGRAPH_STYLES if markdown else ()):
            styles: dict[str, list[str]] = {}
            for style in group:
                values = layout.styled(style.choices(newline))
                text = "".join(layout.fill_each(values)) + ending
                if text not in seen:
                    seen.add(text)
                    styles[text] = values
            texts = list(styles)
            counts = counter.count_many(texts)
            for i in sorted(range(len(texts)), key=lambda i: (counts[i], len(texts[i]), i)):
                yield styles[texts[i]], texts[i], counts[i]

    tried: set[str] = set()
    for values, candidate, count in forms():
        if count >= tokens_before or candidate == text or candidate in tried:
            continue
        tried.add(candidate)
        if not layout.blocks_start_lines(layout.fill_each(values)):
            continue
        work = "".join(work_layout.fill_each(values))
        if _canonical_work(work, mode, remove_comments, prefixes) != reference:
            continue
        if accept is None or accept(candidate):
            return Compressed(candidate, tokens_before, count, mode, restructured=True)
    # No restructured form passed (most often the markdown around it: backticks that pair up
    # once blank lines are gone): the line-local trim, verified as they are, its cuts made in
    # the work copy too (they never reach the final line break). Comments and attribute values
    # keep their white space.
    kept = [(c.start, c.end) for c in check.comments]
    kept.extend((a.value_start, a.value_end) for el in check.elements for a in el.attributes)
    return trimmed(
        kept,
        lambda cuts: (
            _canonical_work(_cut(source.work, cuts), mode, remove_comments, prefixes) == reference
        ),
    )


def _first_element(region: XmlRegion) -> str:
    elements = region.check.elements
    return min(elements, key=lambda el: el.start).name if elements else ""


def compress_document(
    doc: Document,
    counter: TokenCounter,
    *,
    level: Level | str = "whitespace",
    remove_comments: bool = False,
    results: RegionResults | None = None,
    checks: RegionCache | None = None,
) -> list[RegionEdit]:
    """One verified edit per compressible XML region of the document, in document order.

    Fence bodies, raw regions and whole .xml documents are compressed; markdown outside the
    regions is untouched. A fence body keeps its final line break so the closing fence stays on
    its own line; code spans, fences and block comments inside a raw region are copied verbatim.
    The edited document is parsed again and must keep its shape: the same frontmatter, fences,
    block comments, code spans, regions (and their verdicts) and references, in order. A region
    whose smallest form would change that is compressed again, keeping only the forms that
    don't; if none does, it gets no edit.

    `results`, when given, remembers each region's compression by all it depends on (its text
    and form, the code spans, fences and comments inside it, the options): an edit compresses
    again only the regions it touched, and a region repeated in another file is compressed
    once. The shape of the edited document is still checked whole; `checks` remembers the XML
    checks of its regions by their text (see `parse_document`), so that the regions an edit left
    as they were are not checked again.
    """
    if doc.reduced or not doc.regions:
        return []
    mode = _level(level)
    planned: list[tuple[XmlRegion, RegionEdit]] = []
    for region in doc.regions:
        result = _compress_region(doc, region, counter, mode, remove_comments, None, results)
        if result is not None:
            edit = RegionEdit(region.start, region.end, result.text, result, _first_element(region))
            planned.append((region, edit))
    if not planned:
        return []
    shape = _Shape(doc, checks)
    if shape.kept_by([edit for _, edit in planned]):
        return [edit for _, edit in planned]
    kept: list[RegionEdit] = []
    for region, edit in planned:
        if len(planned) > 1 and shape.kept_by([*kept, edit]):
            kept.append(edit)
            continue

        def accept(
            candidate: str, region: XmlRegion = region, compressed: Compressed = edit.compressed
        ) -> bool:
            trial = RegionEdit(region.start, region.end, candidate, compressed, "")
            return shape.kept_by([*kept, trial])

        result = _compress_region(doc, region, counter, mode, remove_comments, accept)
        if result is not None:
            kept.append(
                RegionEdit(region.start, region.end, result.text, result, _first_element(region))
            )
    return kept


# Below this much XML, worker processes cost more to start than they save.
_PROCESSES_MIN_CHARS = 256_000


def compress_documents(
    docs: Sequence[Document],
    counter: TokenCounter,
    *,
    level: Level | str = "whitespace",
    remove_comments: bool = False,
    processes: int = 1,
    results: RegionResults | None = None,
    checks: RegionCache | None = None,
) -> list[list[RegionEdit]]:
    """`compress_document` of each document, in order.

    Compressing is Python work that holds the GIL (threads would not help), so with
    `processes` > 1 and enough XML to repay them, the documents are compressed on that many
    worker processes (a `CompressionPool`), each parsing its documents again from their text
    and kind (the same parse, so the same edits). What the workers cannot do (they could not
    be started, or one died) is done here, document by document. `results` and `checks` as
    for `compress_document` (here; each worker has its own).
    """
    mode = _level(level)

    def here(doc: Document) -> list[RegionEdit]:
        return compress_document(
            doc,
            counter,
            level=mode,
            remove_comments=remove_comments,
            results=results,
            checks=checks,
        )

    sizes = [sum(r.end - r.start for r in d.regions) if not d.reduced else 0 for d in docs]
    sent = sorted((i for i, n in enumerate(sizes) if n), key=lambda i: -sizes[i])
    if processes < 2 or len(sent) < 2 or sum(sizes) < _PROCESSES_MIN_CHARS:
        return [here(d) for d in docs]
    pool = CompressionPool(min(processes, len(sent)), counter.name, mode, remove_comments)
    try:
        for i in sent:  # largest first, so that no worker is left with a big one at the end
            pool.submit(str(i), docs[i].text, docs[i].kind, docs[i].xml_file)
        pool.done_submitting()
        out: list[list[RegionEdit]] = []
        for i, doc in enumerate(docs):
            edits = pool.take(str(i), doc.text) if sizes[i] else []
            out.append(here(doc) if edits is None else edits)
        return out
    finally:
        pool.close()


class CompressionPool:
    """Compressions computed on worker processes while this process does other work (the
    command line's index: they start as each file is read). Each document goes as its text and
    kind, and the worker parses it again: the same parse, so the same edits."""

    def __init__(
        self, processes: int, encoding: str, level: Level | str, remove_comments: bool
    ) -> None:
        from promptls.analysis.processes import FAILURES, start_workers

        self._failures = FAILURES
        self._options = (encoding, _level(level), remove_comments)
        # Forked workers inherit the encoding: loaded once here, not once in each of them.
        load_encoding(encoding)
        self._workers = start_workers(processes)
        self._sending = self._workers is not None
        self._jobs: dict[str, tuple[str, Future[list[RegionEdit]]]] = {}

    @property
    def running(self) -> bool:
        """Whether worker processes could be started (and jobs are still taken)."""
        return self._sending

    def submit(self, key: str, text: str, kind: str, xml_file: bool = False) -> None:
        """Compress the document `key` (the text of a file of `kind`; `xml_file`: named
        `*.xml`) on a worker."""
        if not self._sending or self._workers is None:
            return
        try:
            job = self._workers.submit(_compress_job, (text, kind, xml_file, *self._options))
        except (RuntimeError, *self._failures):  # (the pool broke)
            self._sending = False
            return
        self._jobs[key] = (text, job)

    def done_submitting(self) -> None:
        """No more jobs (the workers go on with those sent until `close`)."""
        self._sending = False

    def take(self, key: str, text: str) -> list[RegionEdit] | None:
        """The edits of document `key` if it was sent with this very text, waiting for them;
        None if it was not (or its worker failed): then compute them here."""
        job = self._jobs.pop(key, None)
        if job is None or job[0] != text:
            return None
        try:
            return job[1].result()
        except self._failures:
            return None

    def close(self) -> None:
        """Cancel the jobs no one took, and wait for the workers to exit."""
        self.done_submitting()
        for _, job in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
            self._workers = None


_JOB_COUNTERS: dict[str, TokenCounter] = {}
_JOB_RESULTS: RegionResults = SizedLRU(maxsize=8_000_000, sizeof=lambda key: len(key[0]))
_JOB_CHECKS: RegionCache = SizedLRU(maxsize=8_000_000, sizeof=lambda key: len(key[0]))


def _compress_job(job: tuple[str, str, bool, str, Level, bool]) -> list[RegionEdit]:
    """One document's compressions, in a worker process (see `compress_documents`)."""
    text, kind, xml_file, encoding, level, remove_comments = job
    counter = _JOB_COUNTERS.get(encoding)
    if counter is None:
        counter = _JOB_COUNTERS[encoding] = TokenCounter(encoding)
    doc = parse_document(text, kind, regions=_JOB_CHECKS, xml_file=xml_file)
    return compress_document(
        doc,
        counter,
        level=level,
        remove_comments=remove_comments,
        results=_JOB_RESULTS,
        checks=_JOB_CHECKS,
    )


def _compress_region(
    doc: Document,
    region: XmlRegion,
    counter: TokenCounter,
    level: Level,
    remove_comments: bool,
    accept: Callable[[str], bool] | None,
    results: RegionResults | None = None,
) -> Compressed | None:
    text = doc.text[region.start : region.end]
    masks: list[tuple[int, int]] = []  # code spans
    fences: list[tuple[int, int]] = []
    comments: list[tuple[int, int]] = []
    if region.form == "raw":

        def clip(start: int, end: int) -> tuple[int, int] | None:
            if start < region.end and end > region.start:
                return max(start, region.start) - region.start, min(end, region.end) - region.start
            return None

        for into, spans in (
            (masks, doc.code_spans),
            (fences, doc.fences),
            (comments, doc.comments),
        ):
            for span in spans:
                if (clipped := clip(span.start, span.end)) is not None:
                    into.append(clipped)
    # The region's check is made from its text, code spans and fences (see `parse_document`),
    # so these make the whole input of `compress_xml`.
    key = (text, region.form, *masks, None, *fences, None, *comments, level, remove_comments)
    key += (counter.name,)
    if accept is None and results is not None:
        found = results.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
    result = compress_xml(
        text,
        counter,
        level=level,
        remove_comments=remove_comments,
        check=region.check,
        masks=masks,
        blocks=fences + comments,
        keep_final_newline=region.form != "raw",
        markdown=region.form == "raw",
        accept=accept,
    )
    if accept is None and results is not None:
        results[key] = result
    return result


class _Shape:
    """What an edit of a document's XML regions must leave as it was."""

    def __init__(self, doc: Document, checks: RegionCache | None = None) -> None:
        self.doc = doc
        self.checks = checks
        self.fences = [(f.info, f.closed) for f in doc.fences]
        self.comments = self._comments(doc)
        self.code_spans = [doc.text[c.start : c.end] for c in doc.code_spans]
        self.references = [(r.form, r.target) for r in extract_references(doc)]

    @staticmethod
    def _comments(doc: Document) -> list[str]:
        out = ["".join(doc.text[c.start : c.end].split()) for c in doc.comments]
        return [*out, "unclosed"] if doc.unclosed_comment is not None else out

    def kept_by(self, edits: Sequence[RegionEdit]) -> bool:
        doc = self.doc
        new = parse_document(
            apply_edits(doc.text, edits), doc.kind, regions=self.checks, xml_file=doc.xml_file
        )
        ordered = sorted(edits, key=lambda e: e.start)
        ends = [e.end for e in ordered]
        deltas = [0]
        for e in ordered:
            deltas.append(deltas[-1] + len(e.new_text) - (e.end - e.start))

        def shift(pos: int) -> int:
            return pos + deltas[bisect.bisect_right(ends, pos)]

        if (doc.frontmatter is None) != (new.frontmatter is None) or (
            doc.frontmatter is not None
            and new.frontmatter is not None
            and shift(doc.frontmatter.end) != new.frontmatter.end
        ):
            return False
        if len(doc.regions) != len(new.regions):
            return False
        by_start = {e.start: e for e in ordered}
        for old, fresh in zip(doc.regions, new.regions, strict=True):
            edit = by_start.get(old.start)
            start = shift(old.start)
            end = start + len(edit.new_text) if edit is not None else shift(old.end)
            if (old.form, start, end, old.check.well_formed) != (
                fresh.form,
                fresh.start,
                fresh.end,
                fresh.check.well_formed,
            ):
                return False
        return (
            self.fences == [(f.info, f.closed) for f in new.fences]
            and self.comments == self._comments(new)
            and self.code_spans == [new.text[c.start : c.end] for c in new.code_spans]
            and self.references == [(r.form, r.target) for r in extract_references(new)]
        )


def apply_edits(text: str, edits: Sequence[RegionEdit]) -> str:
    """`text` with the (non-overlapping) edits applied."""
    return apply_spans(text, sorted((e.start, e.end, e.new_text) for e in edits))


def _same_structure(doc: Document, edits: Sequence[RegionEdit]) -> bool:
    """Whether the edited document keeps the shape of `doc` (see `compress_document`)."""
    return _Shape(doc).kept_by(edits)
