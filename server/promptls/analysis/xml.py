"""XML checking for the XML regions of prompt files, and a scanner for their elements.

An XML region is the body of a ```xml fence, a run of raw elements written straight into
markdown, or a whole ``.xml`` file. Each region is checked on its own as a *fragment*: it may
hold several top-level elements with text around them. The scanner here is a hand-written,
regex-driven tokenizer that keeps going after a mistake and points at the real culprit (the
unclosed start tag, the mismatched end tag, the broken comment), with heuristics that report one
finding per real mistake rather than a cascade.

Findings come in three classes:

* structural problems (``Severity.ERROR``): the fragment is not well-formed XML;
* lexical problems (``Severity.WARNING``): things a model reads fine but a strict parser rejects
  (a bare ``<`` or ``&``, an HTML entity such as ``&nbsp;``); each carries in ``fix`` the
  replacement text for its range (``&lt;``, ``&amp;``, ``&#160;``) when there is an obvious one;
* information (``Severity.INFORMATION``): a DOCTYPE or a processing instruction, ignored.

After the scan, lxml serves as the oracle: a sanitized copy of the region (lexical problems,
DOCTYPEs and processing instructions blanked out) is wrapped in a root element and parsed
strictly, never resolving entities, loading a DTD or touching the network. ``well_formed`` is
exactly lxml's verdict on that copy; the scanner is designed to agree with it, and the rare
disagreement is settled in lxml's favour (see ``XmlCheck.oracle``).

A worker process indexing the workspace checks a *plain* region (well formed, no namespaces,
no processing instruction but an XML declaration: most regions) with one pattern instead of the
scanner, for the same result (`_plain_check`).

This module is pure Python plus lxml; it knows nothing about the language server protocol.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import html.entities
import itertools
import operator
import re
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple, overload

from lxml import etree

from promptls.analysis.findings import Severity

__all__ = [
    "NAME_RE",
    "SHIFTS_MAX",
    "PackedCheck",
    "PackedElements",
    "RawElementEnds",
    "Shift",
    "ShiftedElements",
    "XmlAttribute",
    "XmlCheck",
    "XmlComment",
    "XmlElement",
    "XmlProblem",
    "check_region",
    "is_name_start",
    "moved_element",
    "pack_check",
    "raw_element_end",
    "resume_from",
    "unpack_check",
]


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XmlProblem:
    """One problem in a region; `start`/`end` are offsets (str indices) into the region text.

    `kind` is a stable id: "unclosed-element", "mismatched-end-tag", "stray-end-tag",
    "unterminated-tag", "bad-attribute", "duplicate-attribute", "bad-name", "unclosed-comment",
    "nested-comment", "double-hyphen-in-comment", "unclosed-cdata" (errors); "bare-lt",
    "bare-amp", "undefined-entity", "bad-char-ref", "cdata-end-in-text", "invalid-character",
    "stray-quote" (warnings); "doctype", "processing-instruction" (information); "parser"
    (lxml's verdict when the scanner found nothing). `fix` is the replacement text for the
    range, when there is an obvious one.
    """

    start: int
    end: int
    severity: Severity
    message: str
    kind: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class XmlAttribute:
    """An attribute of a start tag; `value` is the raw text between the quotes (not decoded)."""

    name: str
    value: str
    name_start: int
    value_start: int
    value_end: int


@dataclass(frozen=True, slots=True)
class XmlElement:
    """An element found by the scanner.

    `end` is the offset just after the end tag's '>' (== `start_tag_end` for `<x/>`).
    An element never closed has `closed=False` and ends at the end of the region, or, when an
    ancestor's end tag closed it implicitly, at the '<' of that end tag (`content_end == end`).
    """

    name: str
    start: int
    start_tag_end: int
    end: int
    content_start: int
    content_end: int
    depth: int
    attributes: tuple[XmlAttribute, ...]
    self_closing: bool
    closed: bool


@dataclass(frozen=True, slots=True)
class XmlComment:
    """A `<!-- ... -->` comment; an unclosed one runs to the end of the region."""

    start: int
    end: int
    closed: bool


@dataclass(frozen=True, slots=True)
class XmlCheck:
    """The result of checking one region.

    `oracle` tells how the scanner's verdict compared with lxml's strict parse: "agree";
    "parser-only" (lxml rejected what the scanner accepted: one "parser" problem was added);
    "scanner-only" (lxml accepted what the scanner rejected: its errors were dropped); or
    "unavailable" (lxml failed in an unexpected way; the scanner's verdict stands).
    """

    problems: tuple[XmlProblem, ...]
    elements: Sequence[XmlElement]
    """In document order (of start tags): a tuple, or `ShiftedElements` after an edit."""
    comments: tuple[XmlComment, ...]
    cdata: tuple[tuple[int, int], ...]
    well_formed: bool
    oracle: str = "agree"
    resume: _Resume | None = field(default=None, compare=False, repr=False)
    """What `recheck_region` resumes the scan from (None: check the region whole next time)."""

    def named(self, name: str) -> Iterator[XmlElement]:
        """The elements called `name`, in document order (without building the others of a
        `ShiftedElements`)."""
        elements = self.elements
        if isinstance(elements, (ShiftedElements, PackedElements)):
            yield from elements.named(name)
        else:
            yield from (e for e in elements if e.name == name)


class _LazyElements(Sequence[XmlElement]):
    """A region's elements made when first read: one by one (`_make`), or all at once as a tuple
    (`built`, kept), which then serves every read."""

    __slots__ = ("_built",)

    def __init__(self) -> None:
        self._built: tuple[XmlElement, ...] | None = None

    def _make(self, k: int) -> XmlElement:
        raise NotImplementedError

    def _make_all(self) -> tuple[XmlElement, ...]:
        return tuple([self._make(k) for k in range(len(self))])

    def built(self) -> tuple[XmlElement, ...]:
        """The elements, as a tuple (made on the first call)."""
        built = self._built
        if built is None:
            built = self._built = self._make_all()
        return built

    @overload
    def __getitem__(self, i: int) -> XmlElement: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[XmlElement]: ...

    def __getitem__(self, i: int | slice) -> XmlElement | Sequence[XmlElement]:
        if isinstance(i, slice) or self._built is not None:
            return self.built()[i]
        n = len(self)
        k = i + n if i < 0 else i
        if not 0 <= k < n:
            raise IndexError(i)
        return self._make(k)

    def __iter__(self) -> Iterator[XmlElement]:
        return iter(self.built())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _LazyElements):
            return self.built() == other.built()
        if isinstance(other, tuple):
            return self.built() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.built())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.built()!r})"


class Shift(NamedTuple):
    """One edit in a text node, as `ShiftedElements` applies it: the elements from `pivot` on
    move by `delta` whole; `around` (index -> element) are the text node's ancestors as made
    anew (their ends moved)."""

    pivot: int
    delta: int
    around: dict[int, XmlElement]


#: Shifts a `ShiftedElements` chains before the next edit folds them into its offsets: reading
#: an element costs one step per shift, folding a few integer operations per element.
SHIFTS_MAX = 8


class ShiftedElements(_LazyElements):
    """The elements of a region after edits in its text nodes, computed when first read.

    Element k is `overrides[k]` (an element made anew), else `base[k]` moved by `offsets[k]`
    (no offsets: by 0); then `shifts` applied in order (see `Shift`). Typing on in the same
    text node folds into the last shift (`node` is where that text node now is), and typing in
    another one adds a shift, so a keystroke costs the depth of the node (its ancestors found
    through `parents`) and a search for the first element after it, not the number of
    elements. Past `SHIFTS_MAX` shifts the next edit folds them into the offsets (`folded`,
    integer work only); the moved elements are built once, by whoever reads them all first
    (outline, hints, a worker thread). `names` (where each name is in `base`) and `parents` are
    made on first use and handed on to the next shift of the same base, so that a finding
    reading one element name each keystroke (`<context_budget>`) does not look at every element
    each time.
    """

    __slots__ = ("_names", "_parents", "base", "node", "offsets", "overrides", "shifts")

    def __init__(
        self,
        base: tuple[XmlElement, ...],
        shifts: tuple[Shift, ...],
        node: tuple[int, int],
        names: dict[str, list[int]] | None = None,
        parents: list[int] | None = None,
        offsets: list[int] | None = None,
        overrides: dict[int, XmlElement] | None = None,
    ) -> None:
        self.base = base
        self.shifts = shifts
        self.node = node
        self.offsets = offsets
        self.overrides = overrides or {}
        self._names = names
        self._parents = parents
        super().__init__()

    @property
    def pivot(self) -> int:
        """The first element moved whole (by the last shift)."""
        return self.shifts[-1].pivot

    def names(self) -> dict[str, list[int]]:
        """Where each element name is in `base` (made once per base)."""
        names = self._names
        if names is None:
            names = {}
            for i, e in enumerate(self.base):
                names.setdefault(e.name, []).append(i)
            self._names = names
        return names

    def parents(self) -> list[int]:
        """The index of each element's parent in `base` (-1 at the top; made once per base)."""
        parents = self._parents
        if parents is None:
            parents = []
            last_at: list[int] = []  # the last element seen at each depth
            for i, e in enumerate(self.base):
                depth = e.depth
                parents.append(last_at[depth - 1] if 0 < depth <= len(last_at) else -1)
                del last_at[depth:]
                last_at.append(i)
            self._parents = parents
        return parents

    def then(self, shifts: tuple[Shift, ...], node: tuple[int, int]) -> ShiftedElements:
        """The same elements before `shifts`, with `shifts` (what is made of the base is taken
        on: `names`, `parents`)."""
        return ShiftedElements(
            self.base, shifts, node, self._names, self._parents, self.offsets, self.overrides
        )

    def folded(self) -> ShiftedElements:
        """The same elements with the shifts folded into the offsets and overrides."""
        offsets, overrides = self._flattened()
        return ShiftedElements(
            self.base, (), (-1, -1), self._names, self._parents, offsets, overrides
        )

    def _flattened(self) -> tuple[list[int], dict[int, XmlElement]]:
        """What moves `base[k]` to element k, for each k, and the elements made anew (which
        the offsets do not apply to): the shifts folded in."""
        remade = dict(self.overrides)
        for shift in self.shifts:
            remade.update(shift.around)
        return self._total_offsets(), {k: self._make(k) for k in remade}

    def _total_offsets(self) -> list[int]:
        """What moves `base[k]` to element k, for each k not overridden."""
        steps = [0] * (len(self.base) + 1)
        for shift in self.shifts:
            steps[shift.pivot] += shift.delta
        moves = itertools.accumulate(steps[:-1])
        return list(moves if self.offsets is None else map(operator.add, self.offsets, moves))

    def _make_all(self) -> tuple[XmlElement, ...]:
        base, shifts = self.base, self.shifts
        if self.offsets is None and not self.overrides and len(shifts) == 1:
            pivot, delta, around = shifts[0]
            head = (
                [around.get(i, e) for i, e in enumerate(base[:pivot])] if around else base[:pivot]
            )
            return (*head, *(moved_element(e, delta) for e in base[pivot:]))
        offsets, overrides = self._flattened()
        return tuple(
            [
                overrides[k] if k in overrides else moved_element(e, delta) if delta else e
                for k, (e, delta) in enumerate(zip(base, offsets, strict=True))
            ]
        )

    def named(self, name: str) -> Iterator[XmlElement]:
        for i in self.names().get(name, ()):
            yield self[i]

    def _make(self, k: int) -> XmlElement:
        e = self.overrides.get(k)
        if e is None:
            e = self.base[k]
            offsets = self.offsets
            delta = offsets[k] if offsets is not None else 0
        else:
            delta = 0
        for pivot, step, around in self.shifts:
            remade = around.get(k)
            if remade is not None:
                e, delta = remade, 0
            elif k >= pivot:
                delta += step
        return moved_element(e, delta) if delta else e

    def __len__(self) -> int:
        return len(self.base)


# The slots of the records, filled directly (see `moved_element`).
_NEW_ELEMENT, _NEW_ATTRIBUTE = XmlElement.__new__, XmlAttribute.__new__
(
    _E_NAME,
    _E_START,
    _E_TAG_END,
    _E_END,
    _E_CONTENT_START,
    _E_CONTENT_END,
    _E_DEPTH,
    _E_ATTRS,
    _E_SELF_CLOSING,
    _E_CLOSED,
) = (XmlElement.__dict__[n].__set__ for n in XmlElement.__slots__)
_A_NAME, _A_VALUE, _A_NAME_START, _A_VALUE_START, _A_VALUE_END = (
    XmlAttribute.__dict__[n].__set__ for n in XmlAttribute.__slots__
)


def resume_from(check: XmlCheck, other: XmlCheck) -> bool:
    """Give `check`, made without what `recheck_region` resumes from (a worker's, packed:
    `check_region(packed=True)`), that of `other`, a check of the same region text made here;
    True when it took it. The one change a check undergoes once made: `resume` takes no part in
    its equality, and any reader sees it either absent (the region is checked whole) or whole."""
    if check.resume is not None or other.resume is None or check != other:
        return False
    object.__setattr__(check, "resume", other.resume)
    return True


def moved_element(e: XmlElement, delta: int) -> XmlElement:
    """`e` moved by `delta` whole, attributes included. Its slots are filled directly: a frozen
    dataclass's `__init__` sets each field through `object.__setattr__`, which takes half again
    as long, and typing before the end of a large region moves hundreds of elements."""
    moved = _NEW_ELEMENT(XmlElement)
    _E_NAME(moved, e.name)
    _E_START(moved, e.start + delta)
    _E_TAG_END(moved, e.start_tag_end + delta)
    _E_END(moved, e.end + delta)
    _E_CONTENT_START(moved, e.content_start + delta)
    _E_CONTENT_END(moved, e.content_end + delta)
    _E_DEPTH(moved, e.depth)
    _E_ATTRS(
        moved, tuple([_moved_attribute(a, delta) for a in e.attributes]) if e.attributes else ()
    )
    _E_SELF_CLOSING(moved, e.self_closing)
    _E_CLOSED(moved, e.closed)
    return moved


def _moved_attribute(a: XmlAttribute, delta: int) -> XmlAttribute:
    moved = _NEW_ATTRIBUTE(XmlAttribute)
    _A_NAME(moved, a.name)
    _A_VALUE(moved, a.value)
    _A_NAME_START(moved, a.name_start + delta)
    _A_VALUE_START(moved, a.value_start + delta)
    _A_VALUE_END(moved, a.value_end + delta)
    return moved


# --------------------------------------------------------------------------------------------
# The packed form of a check: what a worker process sends back
# --------------------------------------------------------------------------------------------

#: The integer fields of an element in a packed check, in this order, and its flags.
_PACKED_WIDTH = 7  # start, start_tag_end, end, content_start, content_end, depth, flags
_SELF_CLOSING, _CLOSED = 1, 2

PackedCheck = tuple[
    tuple[str, ...],  # the element names, each once
    bytes,  # per element: its name's index in the names (array "i")
    bytes,  # per element: the `_PACKED_WIDTH` fields (array "i")
    tuple[tuple[int, tuple[tuple[str, str, int, int, int], ...]], ...],  # attributes by element
    tuple[tuple[int, int, int, str, str, str | None], ...],  # problems
    tuple[tuple[int, int, bool], ...],  # comments
    tuple[tuple[int, int], ...],  # CDATA sections
    bool,  # well-formed
    str,  # oracle
]
"""An `XmlCheck` as plain tuples, strings and byte strings: it pickles and unpickles two orders
of magnitude faster than the records (one object per element and attribute). `resume` is not
kept: the first edit of a region from a packed check checks the region whole."""


def pack_check(check: XmlCheck) -> PackedCheck:
    """`check` in its packed form (`unpack_check` gives it back, `resume` aside)."""
    rest = (
        tuple((p.start, p.end, int(p.severity), p.message, p.kind, p.fix) for p in check.problems),
        tuple((c.start, c.end, c.closed) for c in check.comments),
        tuple(check.cdata),
        check.well_formed,
        check.oracle,
    )
    if isinstance(check.elements, PackedElements):  # (made packed: `check_region(packed=True)`)
        return (*check.elements.packed(), *rest)
    names: dict[str, int] = {}
    indices = array("i")
    fields = array("i")
    attributes = []
    for i, e in enumerate(check.elements):
        indices.append(names.setdefault(e.name, len(names)))
        fields.extend(
            (
                e.start,
                e.start_tag_end,
                e.end,
                e.content_start,
                e.content_end,
                e.depth,
                (_SELF_CLOSING if e.self_closing else 0) | (_CLOSED if e.closed else 0),
            )
        )
        if e.attributes:
            attributes.append(
                (
                    i,
                    tuple(
                        (a.name, a.value, a.name_start, a.value_start, a.value_end)
                        for a in e.attributes
                    ),
                )
            )
    return (tuple(names), indices.tobytes(), fields.tobytes(), tuple(attributes), *rest)


def unpack_check(packed: PackedCheck) -> XmlCheck:
    """The check packed by `pack_check`; its elements are made when first read
    (`PackedElements`)."""
    names, indices, fields, attributes, problems, comments, cdata, well_formed, oracle = packed
    return XmlCheck(
        problems=tuple(
            XmlProblem(s, e, Severity(sev), message, kind, fix)
            for s, e, sev, message, kind, fix in problems
        ),
        elements=PackedElements(names, indices, fields, dict(attributes)),
        comments=tuple(XmlComment(s, e, closed) for s, e, closed in comments),
        cdata=cdata,
        well_formed=well_formed,
        oracle=oracle,
    )


class PackedElements(_LazyElements):
    """The elements of a packed check (`unpack_check`), each made when first read.

    `named` and `having` find elements by name and attribute names without making the others:
    reading a region's references makes only the elements that may hold one."""

    __slots__ = ("_attributes", "_fields", "_indices", "_names")

    def __init__(
        self,
        names: tuple[str, ...],
        indices: bytes | array[int],
        fields: bytes | array[int],
        attributes: dict[int, tuple[tuple[str, str, int, int, int], ...]],
    ) -> None:
        self._names = names
        self._indices = indices if isinstance(indices, array) else array("i", indices)
        self._fields = fields if isinstance(fields, array) else array("i", fields)
        self._attributes = attributes
        super().__init__()

    def packed(
        self,
    ) -> tuple[
        tuple[str, ...],
        bytes,
        bytes,
        tuple[tuple[int, tuple[tuple[str, str, int, int, int], ...]], ...],
    ]:
        """The names, indices, fields and attributes, as `pack_check` packs them."""
        return (
            self._names,
            self._indices.tobytes(),
            self._fields.tobytes(),
            tuple(self._attributes.items()),
        )

    def _make(self, i: int) -> XmlElement:
        k = i * _PACKED_WIDTH
        start, tag_end, end, c_start, c_end, depth, flags = self._fields[k : k + _PACKED_WIDTH]
        raw = self._attributes.get(i)
        return XmlElement(
            self._names[self._indices[i]],
            start,
            tag_end,
            end,
            c_start,
            c_end,
            depth,
            tuple(XmlAttribute(*a) for a in raw) if raw else (),
            bool(flags & _SELF_CLOSING),
            bool(flags & _CLOSED),
        )

    def named(self, name: str) -> Iterator[XmlElement]:
        """The elements called `name`, in document order."""
        try:
            wanted = self._names.index(name)
        except ValueError:
            return
        for i, index in enumerate(self._indices):
            if index == wanted:
                yield self[i]

    def having(self, names: Set[str], attributes: Set[str]) -> Iterator[tuple[int, XmlElement]]:
        """The elements called one of `names` or with an attribute called one of `attributes`,
        with their indices, in document order."""
        wanted = {k for k, name in enumerate(self._names) if name in names}
        with_attribute = {
            i for i, raw in self._attributes.items() if any(a[0] in attributes for a in raw)
        }
        for i, index in enumerate(self._indices):
            if index in wanted or i in with_attribute:
                yield i, self[i]

    def __len__(self) -> int:
        return len(self._indices)


# --------------------------------------------------------------------------------------------
# Lexical building blocks
# --------------------------------------------------------------------------------------------

# XML 1.0 (fifth edition) NameStartChar / NameChar, as libxml2 applies them: code point ranges.
_NCNAME_START: tuple[tuple[int, int], ...] = (
    (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x2FF),
    (0x370, 0x37D), (0x37F, 0x1FFF), (0x200C, 0x200D), (0x2070, 0x218F), (0x2C00, 0x2FEF),
    (0x3001, 0xD7FF), (0xF900, 0xFDCF), (0xFDF0, 0xFFFD), (0x10000, 0xEFFFF),
)  # fmt: skip
_NAME_START = ((0x3A, 0x3A), *_NCNAME_START)
_NAME_MORE = ((0x2D, 0x2E), (0x30, 0x39), (0xB7, 0xB7), (0x300, 0x36F), (0x203F, 0x2040))


def char_class(*sets: Sequence[tuple[int, int]]) -> str:
    """A regex character class of the code points in the union of the ranges, written as the
    negation of the others: `re` spells out each code point of a class's ranges below U+10000
    when it compiles it, and the complement of a name class holds a fifth as many (this
    module's expressions compile in 34 ms instead of 71)."""
    others: list[str] = []
    at = 0
    for lo, hi in sorted(r for ranges in sets for r in ranges):
        if lo > at:
            others.append(f"\\U{at:08x}-\\U{lo - 1:08x}" if lo - 1 > at else f"\\U{at:08x}")
        at = max(at, hi + 1)
    if at <= 0x10FFFF:
        others.append(f"\\U{at:08x}-\\U0010ffff")
    return f"[^{''.join(others)}]"


_NAME = f"{char_class(_NAME_START)}{char_class(_NAME_START, _NAME_MORE)}*+"

NAME_RE = re.compile(_NAME)
"""An XML name (letters, '_' or ':', then also digits, '-', '.', and a few marks)."""

_NAME_START_RE = re.compile(char_class(_NAME_START))
_NCNAME_START_RE = re.compile(char_class(_NCNAME_START))

_S = "[ \t\r\n]"
_WS_RE = re.compile(f"{_S}*+")
_EQ_RE = re.compile(f"{_S}*+={_S}*+")
_TAG_CLOSE_RE = re.compile("/?>")
_UNQUOTED_RE = re.compile(r"(?:[^ \t\r\n<>\"'`=/]|/(?!>))+")
_SPACED_SLASH_GT_RE = re.compile(f"/{_S}++>")
_AFTER_VALUE_RE = re.compile("[ \t\r\n>]|/>|\\Z")
# Tags for the look-ahead of the mis-nesting heuristics (comments and CDATA skipped).
_SECTION_START_RE = re.compile(r"<!--|<!\[CDATA\[")
_LOOKAHEAD_RE = re.compile(
    f"<!--[\\s\\S]*?(?:-->|\\Z)|<!\\[CDATA\\[[\\s\\S]*?(?:\\]\\]>|\\Z)|<(/?)({_NAME})[^<>]*+>"
)
_SPACED_END_TAG_RE = re.compile(f"</{_S}++({_NAME}){_S}*+>")
_GARBAGE_RE = re.compile(r"(?:[^ \t\r\n<>/]|/(?!>))+")
_END_TAG_TAIL_RE = re.compile(f"{_S}*+>")
# A quote where a tag can only end: `<name">`, `<a x="1"">`, `</name">` (a scripted edit's slip).
_STRAY_QUOTE_RE = re.compile(f"[\"']{_S}*+/?>")
_STRAY_QUOTE_END_TAG_RE = re.compile(f"{_S}*+([\"']){_S}*+>")
_S_PLUS = f"{_S}++"
_NCNAME = f"{char_class(_NCNAME_START)}{char_class(_NCNAME_START, _NAME_MORE)}*+"
_PLAIN_ATTR = f"({_NCNAME}){_S}*+={_S}*+(?:\"([^\"<&]*+)\"|'([^'<&]*+)')"
# A plain start tag and end tag, after their '<' (no namespaces, no '<' or '&' in a value).
_PLAIN_START_TAG = (
    f"(?P<stag>{_NCNAME})(?P<attrs>(?:{_S_PLUS}{_PLAIN_ATTR})*+){_S}*+(?P<selfclose>/?)>"
)
_PLAIN_END_TAG = f"/(?P<etag>{_NCNAME}){_S}*+>"
# The tokens of character data; the common, well-formed ones are recognized whole.
_TOKEN_RE = re.compile(
    f"<{_PLAIN_START_TAG}"
    f"|<{_PLAIN_END_TAG}"
    "|&(?:amp|lt|gt|quot|apos);"
    r"|(?P<other>[<&]|\]\]>)"
)
_CANDIDATE_RE = re.compile(r"[<&\]]")
_LT_RUN_RE = re.compile("<+")
_PLAIN_ATTR_RE = re.compile(_PLAIN_ATTR)
_NOT_SPACE_RE = re.compile("[^ \t\r\n\ufeff]")
_ATTR_VALUE_SPECIAL_RE = re.compile("[<&]")
# Namespace names that libxml2 certainly rejects as URIs: a character never allowed, a bad
# percent escape, two fragments, or a ':' in the first segment of a scheme-less reference.
_BAD_URI_RE = re.compile(r"[^\x21-\x7e]|[\"<>\\^`{|}]|%(?![0-9A-Fa-f]{2})|#[^#]*#")
_URI_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_URI_FIRST_SEGMENT_RE = re.compile("[^/?#]*")
_LT_TAGLIKE_RE = re.compile("<" + char_class(_NAME_START, [(ord(c), ord(c)) for c in "/!?"]))
_ENTITY_RE = re.compile(f"&(?:({_NAME});|#([0-9]+);|#x([0-9a-fA-F]+);)")
_LAX_REFERENCE_RE = re.compile(f"&(?:({_NAME});|#([0-9]+);|#x([0-9a-fA-F]+);)?")
_AUTOLINK_RE = re.compile(
    r"<(?:(?:https?|ftp|file|mailto|tel):[^ \t\r\n<>]*|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+)>"
)
_PI_RE = re.compile(f"<\\?({_NAME})[\\s\\S]*?\\?>")
_DOCTYPE_RE = re.compile(
    r"<!DOCTYPE(?:[^\[>\"']|\"[^\"]*+\"|'[^']*+')*+"
    r"(?:\[(?:[^\]\"'<]|\"[^\"]*+\"|'[^']*+'|<!--[\s\S]*?-->|<(?!!--))*+\][ \t\r\n]*+)?>",
    re.IGNORECASE,
)
_DOCTYPE_START_RE = re.compile("<!DOCTYPE", re.IGNORECASE)
_INVALID_CHAR_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]+")
_INVALID_ASCII = tuple(chr(c) for c in (*range(0x9), 0xB, 0xC, *range(0xE, 0x20)))
_INVALID_NON_ASCII_RE = re.compile("[\ud800-\udfff\ufffe\uffff]")
_DOUBLE_HYPHEN_RE = re.compile("--")
# raw_element_end: tags, comments and CDATA sections.
_RAW_TOKEN_RE = re.compile(f"<!--|<!\\[CDATA\\[|<(/?)({_NAME})")
_START_TAG_TAIL_RE = re.compile(r"(?:[^\"'<>]|\"[^\"]*+\"|'[^']*+')*+>")

_PREDEFINED_ENTITIES: Mapping[str, str] = MappingProxyType(
    {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
)
_WRAPPER_NAME = "_promptls_root"
_DOCTYPE_MESSAGE = "DOCTYPE ignored: promptls never loads DTDs or expands entities"


def is_name_start(ch: str) -> bool:
    """Whether `ch` (one character) may start an XML name."""
    return len(ch) == 1 and _NAME_START_RE.match(ch) is not None


def _valid_char_code(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _as_sanitized_value(raw: str) -> str:
    """An attribute value as lxml will see it in the oracle's copy: references decoded, and the
    lexical problems ('<', bare '&', undefined references) filled with '_'."""

    def decode(m: re.Match[str]) -> str:
        name, dec, hexa = m.group(1), m.group(2), m.group(3)
        if name is not None:
            return _PREDEFINED_ENTITIES.get(name, "_" * len(m.group(0)))
        if dec is None and hexa is None:
            return "_"
        digits = (dec if dec is not None else hexa).lstrip("0")
        code = -1 if len(digits) > 8 else int(digits or "0", 10 if dec is not None else 16)
        return chr(code) if _valid_char_code(code) else "_" * len(m.group(0))

    return _LAX_REFERENCE_RE.sub(decode, raw.replace("<", "_"))


def _uri_certainly_invalid(raw: str) -> bool:
    """A conservative check of a namespace name: True only when libxml2 would reject it."""
    value = _as_sanitized_value(raw)
    if "[" in value:  # IP literals: libxml2 is lenient there, left to lxml
        return False
    if _BAD_URI_RE.search(value) is not None:
        return True
    if _URI_SCHEME_RE.match(value) is None:
        first = _URI_FIRST_SEGMENT_RE.match(value)
        return first is not None and ":" in first.group(0)
    return False


def _qname_ok(name: str) -> bool:
    """Namespace well-formedness of a name: at most one ':' with a name on either side."""
    if ":" not in name:
        return True
    prefix, _, local = name.partition(":")
    return (
        bool(prefix)
        and bool(local)
        and ":" not in local
        and _NCNAME_START_RE.match(local) is not None
    )


# --------------------------------------------------------------------------------------------
# The scanner
# --------------------------------------------------------------------------------------------


class _Open:
    """A start tag seen by the scanner; mutable while the scan runs, frozen afterwards."""

    __slots__ = (
        "attributes",
        "closed",
        "content_end",
        "depth",
        "end",
        "errored",
        "index",
        "name",
        "self_closing",
        "start",
        "start_tag_end",
    )

    def __init__(self, name: str, start: int, depth: int, index: int) -> None:
        self.index = index  # among the region's elements
        self.name = name
        self.start = start
        self.start_tag_end = start
        self.end = -1
        self.content_end = -1
        self.depth = depth
        self.attributes: list[XmlAttribute] = []
        self.self_closing = False
        self.closed = False
        self.errored = False


def _lookahead_step(m: re.Match[str]) -> int:
    """What a match of `_LOOKAHEAD_RE` does to the count of open elements: +1 a start tag, -1 an
    end tag, 0 a comment, a CDATA section or an empty-element tag."""
    if m.group(2) is None or (m.group(0).endswith("/>") and not m.group(1)):
        return 0
    return -1 if m.group(1) else 1


class _Lookahead:
    """For any offset, the first end tag after it that is not balanced by a start tag after it.

    Built in one pass over the tags: with +1 for a start tag and -1 for an end tag, that end
    tag is where the running sum first drops below its value at the offset ("next smaller
    element" over the prefix sums, found with a monotonic stack).
    """

    __slots__ = ("ends", "n", "names", "next_drop", "positions")

    def __init__(self, work: str) -> None:
        positions: list[int] = []
        ends: list[int] = []
        names: list[str | None] = []
        sums = [0]
        for m in _LOOKAHEAD_RE.finditer(work):
            step = _lookahead_step(m)
            if not step:
                continue
            sums.append(sums[-1] + step)
            names.append(m.group(2) if step < 0 else None)
            positions.append(m.start())
            ends.append(m.end())
        next_drop = [-1] * len(sums)
        candidates: list[int] = []
        for j in range(len(sums) - 1, -1, -1):
            while candidates and sums[candidates[-1]] >= sums[j]:
                candidates.pop()
            if candidates:
                next_drop[j] = candidates[-1]
            candidates.append(j)
        self.positions = positions
        self.ends = ends
        self.names = names
        self.next_drop = next_drop
        self.n = len(work)

    def next_unmatched(self, offset: int) -> tuple[str | None, int]:
        """The name of that end tag (None: there is none), and how far the text was read to
        tell (the end of that tag, else the end of the text)."""
        j = bisect.bisect_right(self.positions, offset)
        q = self.next_drop[j]
        return (self.names[q - 1], self.ends[q - 1]) if q > 0 else (None, self.n)


class _Scanner:
    """One pass over a region (`work` is the text with masks and invalid characters blanked)."""

    def __init__(self, text: str, work: str) -> None:
        self.text = text
        self.work = work
        self.n = len(work)
        self.problems: list[XmlProblem] = []
        self.elements: list[_Open] = []
        self.stack: list[_Open] = []
        self.open_names: dict[str, int] = {}  # how many elements of each name are open
        self.lookahead: _Lookahead | None = None  # built on the first mis-nested end tag
        self.comments: list[XmlComment] = []
        self.cdata: list[tuple[int, int]] = []
        # Spans to blank in the oracle's copy, with the filler character: a space, or '_'
        # inside a namespace declaration, whose value must stay a valid URI.
        self.blank: list[tuple[int, int, str]] = []
        self.fill = " "
        # Offsets that are the evidence of a structural error: never blanked, so that lxml
        # sees the same mistake (`<a <?pi?> />` must not become `<a        />`).
        self.protected: list[int] = []
        self.prefixes: set[str] = set()
        self.swallowed = False  # an unclosed comment/CDATA/PI ran to the end of the region
        self.implicitly_closed: dict[str, int] = {}
        # Where the first thing but whitespace is: only there may an XML declaration stand.
        first = _NOT_SPACE_RE.search(work)
        self.first_content = first.start() if first is not None else len(work)
        # For `recheck_region`: the state every `_CHECKPOINT_STEP` characters, each question
        # put to the lookahead (where, and how far its answer reached), and, when this scan
        # resumes an earlier one, the elements found before it and where to stop.
        self.checkpoints: list[_Checkpoint] = []
        self.next_checkpoint = 0
        self.queries: list[tuple[int, int]] = []
        self.offset = 0
        self.resuming: _Resuming | None = None
        self.walked = 0  # tags walked by `walk_to_unmatched`

    def checkpoint(self, pos: int) -> int:
        """At a token boundary: record the state when due; return where to call again (-1:
        this resumed scan has met the scan it resumes, which tells the rest)."""
        resuming = self.resuming
        if resuming is not None and pos >= resuming.after and resuming.met(self, pos):
            return -1
        if pos >= self.next_checkpoint:
            if len(self.stack) <= _CHECKPOINT_DEPTH:
                implicit = {k: v for k, v in self.implicitly_closed.items() if v}
                self.checkpoints.append(
                    _Checkpoint(
                        pos,
                        len(self.problems),
                        self.offset + len(self.elements),
                        len(self.comments),
                        len(self.cdata),
                        len(self.blank),
                        len(self.protected),
                        len(self.queries),
                        tuple((e.index, e.errored) for e in self.stack),
                        implicit or None,
                    )
                )
            self.next_checkpoint = pos + _CHECKPOINT_STEP
        if resuming is None:
            return self.next_checkpoint
        # (from the edit on, every token: where the scans meet is told by the old checkpoints)
        return pos if pos >= resuming.after else min(self.next_checkpoint, resuming.after)

    # -- reporting -----------------------------------------------------------------------------

    def error(self, start: int, end: int, kind: str, message: str, fix: str | None = None) -> None:
        self.problems.append(XmlProblem(start, end, Severity.ERROR, message, kind, fix))

    def warn(self, start: int, end: int, kind: str, message: str, fix: str | None) -> None:
        self.problems.append(XmlProblem(start, end, Severity.WARNING, message, kind, fix))
        self.blank.append((start, end, self.fill))

    def info(self, start: int, end: int, kind: str, message: str) -> None:
        self.problems.append(XmlProblem(start, end, Severity.INFORMATION, message, kind))
        self.blank.append((start, end, " "))

    def stray_quote(self, i: int, where: str) -> None:
        self.warn(i, i + 1, "stray-quote", f"stray {self.work[i]} in {where}: delete it", "")

    def bare_lt(self, i: int) -> None:
        self.warn(i, i + 1, "bare-lt", "bare '<' is not allowed in XML text: write &lt;", "&lt;")

    # -- main loop -----------------------------------------------------------------------------

    def run(self, pos: int = 0) -> bool:
        """Scan from `pos` to the end (then report what is left open: True), or, resuming an
        earlier scan, until it meets that scan (False)."""
        work = self.work
        n = self.n
        stack = self.stack
        open_names = self.open_names
        elements = self.elements
        offset = self.offset
        token_re = _TOKEN_RE
        candidate_re = _CANDIDATE_RE
        mark = pos
        while pos < n:
            if pos >= mark:
                mark = self.checkpoint(pos)
                if mark < 0:
                    return False
            # A search for one character class is much faster than for the whole token regex.
            c = candidate_re.search(work, pos)
            if c is None:
                break
            i = c.start()
            m = token_re.match(work, i)
            if m is None:
                pos = i + 1  # a ']' not starting ']]>'
                continue
            # Fast paths: a plain start tag, the end tag of the innermost element, `&amp;` & co.
            kind = m.lastgroup
            if kind == "selfclose":
                name, attrs, selfclose = m.group("stag", "attrs", "selfclose")
                if attrs:
                    pos = self.plain_start_tag(m)
                    if pos < 0:
                        pos = self.start_tag(i)
                        if self.swallowed:
                            break
                    continue
                element = _Open(name, i, len(stack), offset + len(elements))
                element.start_tag_end = pos = m.end()
                elements.append(element)
                if selfclose:
                    element.end = element.content_end = pos
                    element.self_closing = element.closed = True
                else:
                    stack.append(element)
                    open_names[name] = open_names.get(name, 0) + 1
                continue
            if kind == "etag":
                name = m.group("etag")
                if stack and stack[-1].name == name:
                    element = stack.pop()
                    open_names[name] -= 1
                    element.content_end = i
                    element.end = pos = m.end()
                    element.closed = True
                else:
                    pos = self.end_tag(i)
                continue
            if kind is None:
                pos = m.end()  # a predefined entity reference
                continue
            ch = work[i]
            if ch == "&":
                pos = self.reference(i, in_attribute=False)
            elif ch == "]":
                self.warn(
                    i,
                    i + 3,
                    "cdata-end-in-text",
                    "']]>' is not allowed in XML text: write ]]&gt;",
                    "]]&gt;",
                )
                pos = i + 3
            elif work.startswith("<<", i):
                # All but the last '<' of a run are bare: one problem for them (linear time on
                # a line of thousands), the last may start a tag.
                lt_run = _LT_RUN_RE.match(work, i)
                assert lt_run is not None
                run_end = lt_run.end() - 1
                self.warn(
                    i,
                    run_end,
                    "bare-lt",
                    "bare '<' is not allowed in XML text: write &lt;",
                    "&lt;" * (run_end - i),
                )
                pos = run_end
            else:
                pos = self.markup(i)
            if pos >= n or self.swallowed:
                break
        self.finish()
        return True

    def markup(self, i: int) -> int:
        """Handle the '<' at `i`; return the position to resume from."""
        work = self.work
        nxt = work[i + 1] if i + 1 < self.n else ""
        if nxt == "!":
            if work.startswith("<!--", i):
                return self.comment(i)
            if work.startswith("<![CDATA[", i):
                return self.cdata_section(i)
            if _DOCTYPE_START_RE.match(work, i):
                return self.doctype(i)
            self.bare_lt(i)
            return i + 1
        if nxt == "?":
            return self.processing_instruction(i)
        if nxt == "/":
            return self.end_tag(i)
        if _AUTOLINK_RE.match(work, i) or not is_name_start(nxt):
            self.bare_lt(i)
            return i + 1
        return self.start_tag(i)

    # -- references ------------------------------------------------------------------------------

    def reference(self, i: int, *, in_attribute: bool) -> int:
        """Check the '&' at `i`; return the position after what it starts."""
        m = _ENTITY_RE.match(self.work, i)
        where = "an attribute value" if in_attribute else "XML text"
        if m is None:
            self.warn(
                i, i + 1, "bare-amp", f"bare '&' is not allowed in {where}: write &amp;", "&amp;"
            )
            return i + 1
        name, dec, hexa = m.group(1), m.group(2), m.group(3)
        if name is not None:
            if name not in _PREDEFINED_ENTITIES:
                code = html.entities.name2codepoint.get(name)
                fix = f"&#{code};" if code is not None else f"&amp;{name};"
                self.warn(
                    i,
                    m.end(),
                    "undefined-entity",
                    f"undefined entity &{name}; (XML defines only &lt; &gt; &amp; &quot; "
                    f"&apos;, and no DTD is loaded): write {fix}",
                    fix,
                )
            return m.end()
        digits = (dec if dec is not None else hexa).lstrip("0")
        value = -1 if len(digits) > 8 else int(digits or "0", 10 if dec is not None else 16)
        if not _valid_char_code(value):
            self.warn(
                i,
                m.end(),
                "bad-char-ref",
                f"character reference {m.group(0)} is not an allowed XML character",
                None,
            )
        return m.end()

    # -- comments, CDATA, DOCTYPE, PIs -----------------------------------------------------------

    def comment(self, i: int) -> int:
        work = self.work
        close = work.find("-->", i + 4)
        if close < 0:
            self.error(i, i + 4, "unclosed-comment", "comment is never closed: add -->")
            self.comments.append(XmlComment(i, self.n, closed=False))
            self.swallowed = True
            return self.n
        hyphens = _DOUBLE_HYPHEN_RE.search(work, i + 4, close + 1)
        if hyphens is not None:
            k = hyphens.start()
            if k >= 2 and work[k - 2 : k] == "<!" and k - 2 >= i + 4:
                self.error(
                    k - 2,
                    k + 2,
                    "nested-comment",
                    "comment opened again inside a comment (comments cannot nest; close the "
                    "first one with --> before)",
                )
            else:
                self.error(
                    k,
                    k + 2,
                    "double-hyphen-in-comment",
                    "'--' is not allowed inside a comment",
                )
        self.comments.append(XmlComment(i, close + 3, closed=True))
        return close + 3

    def cdata_section(self, i: int) -> int:
        close = self.work.find("]]>", i + 9)
        if close < 0:
            self.error(i, i + 9, "unclosed-cdata", "CDATA section is never closed: add ]]>")
            self.cdata.append((i, self.n))
            self.swallowed = True
            return self.n
        self.cdata.append((i, close + 3))
        return close + 3

    def doctype(self, i: int) -> int:
        m = _DOCTYPE_RE.match(self.work, i)
        if m is None:
            self.error(i, i + 9, "unterminated-tag", "<!DOCTYPE is never terminated by >")
            self.swallowed = True
            return self.n
        self.info(i, m.end(), "doctype", _DOCTYPE_MESSAGE)
        return m.end()

    def processing_instruction(self, i: int) -> int:
        work = self.work
        name = NAME_RE.match(work, i + 2)
        if name is None:
            self.bare_lt(i)
            return i + 1
        m = _PI_RE.match(work, i)
        if m is None:
            self.error(
                i,
                name.end(),
                "unterminated-tag",
                f"processing instruction <?{name.group(0)} is never closed: add ?>",
            )
            self.swallowed = True
            return self.n
        target = name.group(0)
        if target == "xml" and i == self.first_content:
            self.blank.append((i, m.end(), " "))
        elif target.lower() == "xml":
            self.info(
                i,
                m.end(),
                "processing-instruction",
                "XML declaration ignored: it is only allowed at the very start",
            )
        else:
            self.info(
                i,
                m.end(),
                "processing-instruction",
                f"processing instruction <?{target}?> ignored",
            )
        return m.end()

    # -- tags ----------------------------------------------------------------------------------

    def check_name(self, start: int, name: str, what: str, *, report: bool = True) -> bool:
        """Check a name against the namespace rules, noting its prefix; False if it breaks them
        (reported unless `report` is False)."""
        if not _qname_ok(name):
            if not report:
                return False
            self.error(
                start,
                start + len(name),
                "bad-name",
                f"{what} name {name!r} is not a valid namespaced name "
                "(at most one ':', with a name on each side)",
            )
            return False
        prefix, colon, _ = name.partition(":")
        if colon:
            if what == "element" and prefix == "xmlns":
                if not report:
                    return False
                self.error(
                    start,
                    start + len(name),
                    "bad-name",
                    f"element name {name!r}: the xmlns prefix is reserved",
                )
                return False
            if prefix not in ("xml", "xmlns"):
                self.prefixes.add(prefix)
        return True

    def plain_start_tag(self, m: re.Match[str]) -> int:
        """A start tag matched whole by `_TOKEN_RE`, with attributes; -1 to take the slow path
        (duplicate or namespace attributes)."""
        attrs = m.group("attrs")
        if "xmlns" in attrs:
            return -1
        attributes: list[XmlAttribute] = []
        names: set[str] = set()
        for packed in _plain_attributes(self.text, self.work, m.start("attrs"), m.end("attrs")):
            if packed[0] in names:
                return -1
            names.add(packed[0])
            attributes.append(XmlAttribute(*packed))
        element = _Open(
            m.group("stag"), m.start(), len(self.stack), self.offset + len(self.elements)
        )
        element.attributes = attributes
        element.start_tag_end = end = m.end()
        self.elements.append(element)
        if m.group("selfclose"):
            element.end = element.content_end = end
            element.self_closing = element.closed = True
        else:
            self.open(element)
        return end

    def start_tag(self, i: int) -> int:
        work = self.work
        text = self.text
        n = self.n
        name_m = NAME_RE.match(work, i + 1)
        assert name_m is not None
        name = name_m.group(0)
        element = _Open(name, i, len(self.stack), self.offset + len(self.elements))
        self.elements.append(element)
        mark = len(self.problems)
        # Only the first syntax problem of a tag is reported (a bad name is enough), and an
        # element whose start tag is broken gets no second error for being unclosed.
        tag_error = element.errored = not self.check_name(i + 1, name, "element")
        seen: set[str] = set()
        pos = name_m.end()

        def bad(start: int, end: int, message: str, fix: str | None = None) -> None:
            nonlocal tag_error
            if not tag_error:
                self.error(start, end, "bad-attribute", message, fix)
            tag_error = element.errored = True

        def stop_at(stop: int, resume: int) -> int:
            """The tag never reaches '>': it stops at `stop`; resume scanning at `resume`."""
            element.errored = True
            element.start_tag_end = stop
            if resume < n:
                self.protected.append(resume)  # the '<' lxml must see inside the tag
            self.open(element)
            return resume

        while True:
            ws = _WS_RE.match(work, pos)
            assert ws is not None
            p = ws.end()
            close = _TAG_CLOSE_RE.match(work, p)
            if close is not None:
                element.start_tag_end = close.end()
                element.self_closing = close.group(0) == "/>"
                break
            if p >= n or work[p] == "<":
                # One error for the tag: what looked wrong inside it is part of the same mistake.
                self.problems[mark:] = [
                    problem for problem in self.problems[mark:] if problem.kind != "bad-attribute"
                ]
                self.error(
                    i, name_m.end(), "unterminated-tag", f"start tag <{name} is never closed by >"
                )
                return stop_at(pos, p)
            attr_m = NAME_RE.match(work, p)
            if attr_m is None:
                slash = _SPACED_SLASH_GT_RE.match(work, p)
                if slash is not None:  # `<br / >`
                    bad(p, slash.end(), "no space is allowed between / and > in <.../>", "/>")
                    element.start_tag_end = slash.end()
                    element.self_closing = True
                    break
                if _STRAY_QUOTE_RE.match(work, p) is not None:
                    self.stray_quote(p, f"start tag <{name}>")
                    pos = p + 1
                    continue
                garbage = _GARBAGE_RE.match(work, p)
                g_end = garbage.end() if garbage is not None else p + 1
                bad(p, g_end, f"unexpected {work[p:g_end]!r} in start tag <{name}>")
                pos = g_end
                continue
            attr = attr_m.group(0)
            if ws.end() == ws.start():
                bad(p, attr_m.end(), f"missing whitespace before attribute {attr}")
            if not self.check_name(p, attr, "attribute", report=not tag_error):
                tag_error = element.errored = True
            if attr in seen:
                self.error(p, attr_m.end(), "duplicate-attribute", f"duplicate attribute {attr}")
                element.errored = True
            seen.add(attr)
            eq = _EQ_RE.match(work, attr_m.end())
            if eq is None:
                bad(p, attr_m.end(), f'attribute {attr} has no value: write {attr}="..."')
                pos = attr_m.end()
                continue
            q = eq.end()
            quote = work[q] if q < n else ""
            if quote not in ('"', "'"):
                unquoted = _UNQUOTED_RE.match(work, q)
                if unquoted is None:
                    bad(p, q, f"attribute {attr} has no value")
                    pos = q
                    continue
                v_end = unquoted.end()
                value = text[q:v_end]
                fix = f'"{value}"' if '"' not in value else None
                bad(q, v_end, f"the value of {attr} must be quoted", fix)
                element.attributes.append(XmlAttribute(attr, value, p, q, v_end))
                pos = v_end
                continue
            v_start = q + 1
            v_close = work.find(quote, v_start)
            limit = v_close if v_close >= 0 else n
            taglike = _LT_TAGLIKE_RE.search(work, v_start, limit)
            runaway = v_close < 0 or (
                taglike is not None and _AFTER_VALUE_RE.match(work, v_close + 1) is None
            )
            if runaway:
                # The quote was never closed (`n="1 <b>x</b> <c m="` ends with a quote that
                # opens another value): the tag ends at the first '>' or tag in the "value".
                gt = work.find(">", v_start, limit)
                lt = taglike.start() if taglike is not None else -1
                if gt < 0 and lt < 0:
                    self.error(
                        i,
                        name_m.end(),
                        "unterminated-tag",
                        f"start tag <{name} is never closed: the value of {attr} never ends",
                    )
                    self.swallowed = True
                    return stop_at(n, n)
                bad(p, v_start, f"the value of {attr} is never closed: add {quote}")
                if lt >= 0:
                    self.protected.append(lt)
                if 0 <= lt < gt or gt < 0:
                    element.attributes.append(XmlAttribute(attr, text[v_start:lt], p, v_start, lt))
                    return stop_at(lt, lt)
                element.attributes.append(XmlAttribute(attr, text[v_start:gt], p, v_start, gt))
                element.start_tag_end = gt + 1
                element.self_closing = work[gt - 1] == "/" and gt - 1 >= v_start
                break
            namespace = attr == "xmlns" or attr.startswith("xmlns:")
            if namespace:
                if attr != "xmlns" and v_close == v_start:
                    bad(p, v_close + 1, f"{attr}: an empty namespace name is not allowed")
                elif _uri_certainly_invalid(work[v_start:v_close]):
                    bad(v_start, v_close, f"{attr}: the namespace name is not a valid URI")
                self.fill = "_"
            special = _ATTR_VALUE_SPECIAL_RE.search(work, v_start, v_close)
            while special is not None:
                k = special.start()
                if work[k] == "<":
                    self.warn(
                        k,
                        k + 1,
                        "bare-lt",
                        "bare '<' is not allowed in an attribute value: write &lt;",
                        "&lt;",
                    )
                    k += 1
                else:
                    k = min(self.reference(k, in_attribute=True), v_close)
                special = _ATTR_VALUE_SPECIAL_RE.search(work, k, v_close)
            self.fill = " "
            element.attributes.append(
                XmlAttribute(attr, text[v_start:v_close], p, v_start, v_close)
            )
            pos = v_close + 1
        if element.self_closing:
            element.end = element.content_end = element.start_tag_end
            element.closed = True
        else:
            self.open(element)
        return element.start_tag_end

    def open(self, element: _Open) -> None:
        element.depth = len(self.stack)
        self.stack.append(element)
        self.open_names[element.name] = self.open_names.get(element.name, 0) + 1

    def pop(self) -> _Open:
        element = self.stack.pop()
        self.open_names[element.name] -= 1
        return element

    def end_tag(self, i: int) -> int:
        work = self.work
        name_m = NAME_RE.match(work, i + 2)
        if name_m is None:
            spaced = _SPACED_END_TAG_RE.match(work, i)
            if spaced is None:
                self.bare_lt(i)
                return i + 1
            # `</ step>`: meant as the end tag; matched against the open elements as such.
            name = spaced.group(1)
            self.error(
                i,
                spaced.end(),
                "bad-end-tag",
                f"no space is allowed after '</': write </{name}>",
                f"</{name}>",
            )
            return self.match_end_tag(i, name, spaced.end(), reported=True)
        name = name_m.group(0)
        tail = _END_TAG_TAIL_RE.match(work, name_m.end())
        if tail is None:
            tail = _STRAY_QUOTE_END_TAG_RE.match(work, name_m.end())
            if tail is not None:
                self.stray_quote(tail.start(1), f"end tag </{name}>")
        if tail is None:
            self.error(i, name_m.end(), "unterminated-tag", f"end tag </{name} is missing >")
            ws = _WS_RE.match(work, name_m.end())
            assert ws is not None
            tag_end = ws.end()
            self.protected.append(tag_end)
        else:
            tag_end = tail.end()
        return self.match_end_tag(i, name, tag_end, reported=tail is None)

    def match_end_tag(self, i: int, name: str, tag_end: int, *, reported: bool) -> int:
        """Match the end tag `</name>` at `i` against the open elements; `reported` when the tag
        itself already has an error (then no second one is reported on it)."""
        stack = self.stack
        if stack and stack[-1].name == name:
            self.close(self.pop(), i, tag_end)
            return tag_end
        if self.open_names.get(name):
            while stack[-1].name != name:
                inner = self.pop()
                inner.end = inner.content_end = i
                if not inner.errored:
                    self.unclosed(inner, f" (</{name}> closes its parent first)")
                    inner.errored = True
                self.implicitly_closed[inner.name] = self.implicitly_closed.get(inner.name, 0) + 1
            self.close(self.pop(), i, tag_end)
            return tag_end
        pending = self.implicitly_closed.get(name, 0)
        if pending:
            # `<a><b>x</a></b>`: this `</b>` belongs to the <b> already reported unclosed.
            self.implicitly_closed[name] = pending - 1
            return tag_end
        if stack:
            parent = stack[-2].name if len(stack) >= 2 else None
            if self.next_unmatched_end_tag(i) == parent:
                inner = self.pop()
                if not reported and not inner.errored:
                    self.error(
                        i,
                        tag_end,
                        "mismatched-end-tag",
                        f"mismatched end tag </{name}>: expected </{inner.name}>",
                        f"</{inner.name}>",
                    )
                self.close(inner, i, tag_end)
                return tag_end
        if not reported:
            self.error(
                i, tag_end, "stray-end-tag", f"stray end tag </{name}>: no <{name}> is open here"
            )
        return tag_end

    def next_unmatched_end_tag(self, i: int) -> str | None:
        """The name of the first end tag after offset `i` that closes an element open at `i`
        (the tags in between balanced), or None when there is none."""
        if self.lookahead is None and self.resuming is not None and self.walked < _WALK_LIMIT:
            name, reach = self.walk_to_unmatched(i)
        else:
            if self.lookahead is None:
                self.lookahead = _Lookahead(self.work)
            name, reach = self.lookahead.next_unmatched(i)
        self.queries.append((i, reach))
        return name

    def walk_to_unmatched(self, i: int) -> tuple[str | None, int]:
        """What `_Lookahead.next_unmatched` answers, found by walking the tags after `i` (a
        resumed scan asks near the edit; building the lookahead reads the whole region). It
        reads the tags as `_Lookahead` does from the start of the text, so it must begin where
        that reading has no comment or CDATA section open: every `<!--` and `<![CDATA[` before
        `i` is one the scan found (else the lookahead is built after all)."""
        work = self.work
        spans = sorted([(c.start, c.end) for c in self.comments] + self.cdata)
        starts = [a for a, _ in spans]
        for mark in _SECTION_START_RE.finditer(work, 0, i):
            k = bisect.bisect_right(starts, mark.start()) - 1
            if k < 0 or mark.start() >= spans[k][1]:
                self.walked = _WALK_LIMIT
                self.lookahead = _Lookahead(work)
                return self.lookahead.next_unmatched(i)
        depth = 0
        for m in _LOOKAHEAD_RE.finditer(work, i + 1):  # (after the end tag asking)
            self.walked += 1
            depth += _lookahead_step(m)
            if depth < 0:
                return m.group(2), m.end()
        return None, self.n

    @staticmethod
    def close(element: _Open, i: int, tag_end: int) -> None:
        element.content_end = i
        element.end = tag_end
        element.closed = True

    def finish(self) -> None:
        n = self.n
        while self.stack:
            element = self.stack.pop()
            element.end = element.content_end = n
            if not element.errored and not self.swallowed:
                self.unclosed(element)

    def unclosed(self, element: _Open, why: str = "") -> None:
        self.error(
            element.start,
            element.start_tag_end,
            "unclosed-element",
            f"<{element.name}> is never closed{why}",
        )

    def frozen_elements(self) -> tuple[XmlElement, ...]:
        n = self.n
        return tuple([_freeze(e, n) for e in self.elements])


def _freeze(e: _Open, n: int) -> XmlElement:
    """The record of an element the scan has finished with (`n`: the region's length)."""
    if e.closed:
        return XmlElement(
            e.name,
            e.start,
            e.start_tag_end,
            e.end,
            e.start_tag_end,
            e.content_end,
            e.depth,
            tuple(e.attributes) if e.attributes else (),
            e.self_closing,
            True,
        )
    start_tag_end, end, content_end = _unclosed_bounds(e, n)
    return XmlElement(
        name=e.name,
        start=e.start,
        start_tag_end=start_tag_end,
        end=end,
        content_start=start_tag_end,
        content_end=content_end,
        depth=e.depth,
        attributes=tuple(e.attributes),
        self_closing=e.self_closing,
        closed=e.closed,
    )


def _unclosed_bounds(e: _Open, n: int) -> tuple[int, int, int]:
    """(start_tag_end, end, content_end) of an element never closed, kept within the region."""
    start_tag_end = min(max(e.start_tag_end, e.start), n)
    end = e.end if e.end >= 0 else n
    end = min(max(end, start_tag_end), n)
    content_end = e.content_end if e.content_end >= 0 else end
    return start_tag_end, end, min(max(content_end, start_tag_end), end)


def _packed_elements(found: Sequence[_Open], n: int) -> PackedElements:
    """The elements a scan found, packed straight from its records (as `_freeze` makes them:
    no record made)."""
    names: dict[str, int] = {}
    indices = array("i")
    fields = array("i")
    attributes: dict[int, tuple[tuple[str, str, int, int, int], ...]] = {}
    for i, e in enumerate(found):
        indices.append(names.setdefault(e.name, len(names)))
        if e.closed:
            tag_end, end, content_end = e.start_tag_end, e.end, e.content_end
        else:
            tag_end, end, content_end = _unclosed_bounds(e, n)
        fields.extend(
            (
                e.start,
                tag_end,
                end,
                tag_end,
                content_end,
                e.depth,
                (_SELF_CLOSING if e.self_closing else 0) | (_CLOSED if e.closed else 0),
            )
        )
        if e.attributes:
            attributes[i] = tuple(
                (a.name, a.value, a.name_start, a.value_start, a.value_end) for a in e.attributes
            )
    return PackedElements(tuple(names), indices, fields, attributes)


# --------------------------------------------------------------------------------------------
# Plain regions: one pattern instead of the scanner
# --------------------------------------------------------------------------------------------

# A tag, comment or CDATA section of a plain region (see `_plain_check`); any other '<' matches
# the empty last alternative, and the region is the scanner's.
_PLAIN_RE = re.compile(
    f"<(?:{_PLAIN_START_TAG}"
    f"|{_PLAIN_END_TAG}"
    r"|(?P<section>!--[\s\S]*?-->|!\[CDATA\[[\s\S]*?\]\]>)"
    "|)"
)


def _plain_check(text: str, work: str) -> XmlCheck | None:
    """The packed check of a plain region, in one pass of one pattern: what the scanner finds in
    it (checked equal), in about 60 % of the scanner's time, lxml's included. None when `work`
    is not plain, and the scanner must read it.

    Plain: well formed as lxml reads it, and nothing in it but start, end and empty-element tags
    whose names and attributes hold no ':' (no namespaces) and whose attribute values hold no
    '<' or '&', comments, CDATA sections, references and text, after an optional XML
    declaration. Most regions of a framework are plain; whatever else there is (a bare '<', an
    entity in an attribute, a processing instruction...) may be reported, and the scanner
    decides. lxml stands for every check the scanner makes that no pattern here makes (names
    that match, each attribute once, comments without '--', references that are defined).
    """
    pos = 0
    sanitized = work
    first = _NOT_SPACE_RE.search(work)
    if first is not None and work.startswith("<?", first.start()):
        declaration = _PI_RE.match(work, first.start())
        if declaration is None or declaration.group(1) != "xml":
            return None
        pos = declaration.end()
        sanitized = _blank_spans(work, [(first.start(), pos, " ")])
    try:  # (first: it takes a tenth of the pass, and rejects at once)
        if _lxml_verdict(sanitized.replace("\r", " "), set()) is not None:
            return None
    except _OracleUnavailableError:
        return None
    names: dict[str, int] = {}
    indices: list[int] = []
    starts: list[int] = []
    tag_ends: list[int] = []
    ends: list[int] = []
    content_ends: list[int] = []
    depths: list[int] = []
    flags: list[int] = []
    attributes: dict[int, tuple[tuple[str, str, int, int, int], ...]] = {}
    comments: list[XmlComment] = []
    cdata: list[tuple[int, int]] = []
    stack: list[tuple[int, str]] = []
    for m in _PLAIN_RE.finditer(work, pos):
        name, attrs, selfclose, end_name, section = m.group(
            "stag", "attrs", "selfclose", "etag", "section"
        )
        if name is not None:
            k = len(starts)
            indices.append(names.setdefault(name, len(names)))
            start, tag_end = m.span()
            starts.append(start)
            tag_ends.append(tag_end)
            depths.append(len(stack))
            if attrs:
                if "xmlns" in attrs:
                    return None  # (namespace declarations: the scanner's)
                attributes[k] = tuple(
                    _plain_attributes(text, work, m.start("attrs"), m.end("attrs"))
                )
            if selfclose:
                ends.append(tag_end)
                content_ends.append(tag_end)
                flags.append(_SELF_CLOSING | _CLOSED)
            else:
                ends.append(-1)
                content_ends.append(-1)
                flags.append(_CLOSED)
                stack.append((k, name))
        elif end_name is not None:
            if not stack or stack[-1][1] != end_name:
                return None
            k = stack.pop()[0]
            content_ends[k], ends[k] = m.span()
        elif section is not None:
            if section[1] == "-":
                comments.append(XmlComment(m.start(), m.end(), closed=True))
            else:
                cdata.append(m.span())
        else:
            return None
    if stack:
        return None
    fields = array(
        "i",
        itertools.chain.from_iterable(
            zip(starts, tag_ends, ends, tag_ends, content_ends, depths, flags, strict=True)
        ),
    )
    return XmlCheck(
        problems=(),
        elements=PackedElements(tuple(names), array("i", indices), fields, attributes),
        comments=tuple(comments),
        cdata=tuple(cdata),
        well_formed=True,
    )


def _plain_attributes(
    text: str, work: str, start: int, end: int
) -> Iterator[tuple[str, str, int, int, int]]:
    """The attributes of a plain start tag, between `start` and `end`, packed."""
    for a in _PLAIN_ATTR_RE.finditer(work, start, end):
        v_start, v_end = a.span(2) if a.group(2) is not None else a.span(3)
        yield a.group(1), text[v_start:v_end], a.start(), v_start, v_end


# --------------------------------------------------------------------------------------------
# The lxml oracle
# --------------------------------------------------------------------------------------------


def _blank_spans(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """`text` with every (start, end, filler) span filled (same length); spans may overlap."""
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for span_start, end, filler in sorted(spans):
        start = max(span_start, pos)
        if end <= start:
            continue
        parts.append(text[pos:start])
        parts.append(filler * (end - start))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        recover=False,
        remove_comments=False,
    )


@functools.cache
def _columns_count_bytes() -> bool:
    """Whether this libxml2 reports error columns in bytes rather than characters."""
    probe = "<r>\u00e9\u00e9<a x='1' x='2'/></r>"  # the error is reported at the '/'
    try:
        etree.fromstring(probe.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as exc:
        return bool(exc.position[1] == probe.index("/>") + 1 + 2)
    except Exception:
        return False
    return False


class _OracleUnavailableError(Exception):
    """lxml failed in a way that says nothing about the fragment."""


_EXCESSIVE_DEPTH_RE = re.compile(r"Excessive depth in document: (\d+)")


def _lxml_verdict(fragment: str, prefixes: set[str]) -> tuple[int, str] | None:
    """Parse the wrapped fragment strictly: None when accepted, else (offset, message).

    The offset is into `fragment`. Raises `_OracleUnavailableError` on any unexpected failure.
    """
    declarations = "".join(
        f' xmlns:{p}="urn:promptls:prefix:{k}"' for k, p in enumerate(sorted(prefixes))
    )
    head = f"<{_WRAPPER_NAME}{declarations}>"
    wrapped = f"{head}{fragment}</{_WRAPPER_NAME}>"
    try:
        etree.fromstring(wrapped.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (1, 1)
        line_start = 0
        for _ in range(max(line, 1) - 1):
            nl = wrapped.find("\n", line_start)
            if nl < 0:
                break
            line_start = nl + 1
        column = max(column, 1) - 1
        if _columns_count_bytes():
            line_end = wrapped.find("\n", line_start)
            line_text = wrapped[line_start : line_end if line_end >= 0 else len(wrapped)]
            column = len(line_text.encode("utf-8")[:column].decode("utf-8", "ignore"))
        offset = line_start + column - len(head)
        message = (exc.msg or str(exc)).strip()
        message = re.sub(r", line \d+, column \d+$", "", message)
        depth = _EXCESSIVE_DEPTH_RE.match(message)
        if depth is not None:  # (its advice names a libxml2 option, nothing the user can set)
            message = (
                f"elements nested more than {depth.group(1)} levels deep, which libxml2 (lxml) "
                "refuses to parse"
            )
        return min(max(offset, 0), len(fragment)), message
    except Exception as exc:
        raise _OracleUnavailableError from exc
    return None


def _verdict_within(
    sanitized: str, prefixes: set[str], within: tuple[int, int], *, exact: bool
) -> tuple[int, str] | None:
    """lxml's verdict on `sanitized`, read from the element `sanitized[start:end]` alone: the
    region as it was before an edit inside that element's content was accepted, and nothing
    outside the element has changed, even as lxml reads it (see `_oracle_span`). Parsed from
    the same state in both (in content, no prefixes), the element's text meets the same error
    at the same place, or none: its tags enclose the same nesting as before, so nothing in it
    closes more than it opens. Where a rejection is wanted `exact`ly (its offset and message,
    which name lines), the whole region is parsed; else the element's start stands for it."""
    start, end = within
    if _lxml_verdict(sanitized[start:end], prefixes) is None:
        return None
    if exact:
        return _lxml_verdict(sanitized, prefixes)
    return start, ""


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _normalize_spans(spans: Sequence[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Clamp, drop empty and merge overlapping spans; sorted by start."""
    out: list[tuple[int, int]] = []
    for start, end in sorted((max(0, s), min(n, e)) for s, e in spans):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _masked(text: str, masks: Sequence[tuple[int, int]]) -> str:
    """`text` with the `masks` blanked (what the scanner reads)."""
    return _blank_spans(text, [(s, e, " ") for s, e in _normalize_spans(masks, len(text))])


def _suspicious(work: str) -> bool:
    """Whether `work` may hold a character XML does not allow (`in` is a memchr-fast search;
    the regex runs only when something is there to find)."""
    return any(ch in work for ch in _INVALID_ASCII) or (
        not work.isascii() and _INVALID_NON_ASCII_RE.search(work) is not None
    )


def check_region(
    text: str, masks: Sequence[tuple[int, int]] = (), *, packed: bool = False
) -> XmlCheck:
    """Scan and check one XML region.

    `masks` are (start, end) spans of the text to treat as opaque character data (e.g. a markdown
    code fence inside a raw XML element): no tags, no problems there. `packed`: the check is to
    be packed (`pack_check`, a worker process's): its elements are packed as the scan ends (or
    found without the scanner in a plain region: `_plain_check`), and it keeps nothing for
    `recheck_region`.
    """
    work = _masked(text, masks)
    invalid = list(_INVALID_CHAR_RE.finditer(work)) if _suspicious(work) else []
    invalid_problems = [
        XmlProblem(
            m.start(),
            m.end(),
            Severity.WARNING,
            "control character or non-character not allowed in XML: delete it",
            "invalid-character",
            "",
        )
        for m in invalid
    ]
    if invalid:
        work = _blank_spans(work, [(m.start(), m.end(), " ") for m in invalid])

    if packed and not invalid:
        plain = _plain_check(text, work)
        if plain is not None:
            return plain
    scanner = _Scanner(text, work)
    if packed:
        scanner.next_checkpoint = len(work) + 1  # (none made)
    scanner.run()
    resume = None
    if not invalid_problems and not scanner.prefixes and not packed:
        resume = _Resume.of(scanner)
    return _checked(
        work,
        scanner.problems + invalid_problems,
        _packed_elements(scanner.elements, scanner.n) if packed else scanner.frozen_elements(),
        tuple(scanner.comments),
        tuple(scanner.cdata),
        scanner.blank,
        scanner.protected,
        scanner.prefixes,
        resume,
    )


def _checked(
    work: str,
    problems: list[XmlProblem],
    elements: Sequence[XmlElement],
    comments: tuple[XmlComment, ...],
    cdata: tuple[tuple[int, int], ...],
    blank: list[tuple[int, int, str]],
    protected: list[int],
    prefixes: set[str],
    resume: _Resume | None,
    within: tuple[int, int] | None = None,
) -> XmlCheck:
    """The check of a scanned region (`problems` in the order found), lxml's verdict taken.

    `within`: a span whose verdict is the whole region's (see `_verdict_within`)."""
    n = len(work)
    scanner_ok = not any(p.severity == Severity.ERROR for p in problems)
    if protected:
        guarded = sorted(protected)
        blank = [
            span
            for span in blank
            if bisect.bisect_left(guarded, span[0]) == bisect.bisect_left(guarded, span[1])
        ]
    sanitized = _blank_spans(work, blank).replace("\r", " ")
    oracle = "agree"
    try:
        if within is None:
            verdict = _lxml_verdict(sanitized, prefixes)
        else:
            verdict = _verdict_within(sanitized, prefixes, within, exact=scanner_ok)
    except _OracleUnavailableError:
        oracle = "unavailable"
    else:
        if verdict is not None and scanner_ok:
            offset, message = verdict
            problems = [
                *problems,
                XmlProblem(
                    offset,
                    min(offset + 1, n),
                    Severity.ERROR,
                    f"not well-formed XML: {message}",
                    "parser",
                ),
            ]
            oracle = "parser-only"
        elif verdict is None and not scanner_ok:
            problems = [p for p in problems if p.severity != Severity.ERROR]
            oracle = "scanner-only"

    problems = [
        _placeholder_fixed(p, elements, work) if p.kind == "unclosed-element" else p
        for p in problems
    ]
    problems.sort(key=lambda p: (p.start, p.end, p.severity))
    return XmlCheck(
        problems=tuple(problems),
        elements=elements,
        comments=comments,
        cdata=cdata,
        well_formed=not any(p.severity == Severity.ERROR for p in problems),
        oracle=oracle,
        resume=resume,
    )


def _placeholder_fixed(
    problem: XmlProblem, elements: Sequence[XmlElement], work: str
) -> XmlProblem:
    """`problem` (an element never closed) with the escape of its start tag as its fix when the
    element may be a placeholder written as text (`run <package> first`, `<YOUR_NAME>`): no
    attributes, no element inside, no line break, and, left open at the region's end, words
    after it. Decided here, from the finished check (an edit rechecked near it may have changed
    what lies after the start tag without scanning it again)."""
    k = bisect.bisect_left(elements, problem.start, key=operator.attrgetter("start"))
    if k >= len(elements) or elements[k].start != problem.start:
        return problem
    element = elements[k]
    content = work[element.start_tag_end : element.content_end]
    placeholder = (
        placeholder_shaped(elements, k)
        and "\n" not in work[element.start : element.content_end]
        and (element.content_end < len(work) or content.strip() != "")
    )
    fix = f"&lt;{work[element.start + 1 : element.start_tag_end]}" if placeholder else None
    return problem if problem.fix == fix else dataclasses.replace(problem, fix=fix)


def placeholder_shaped(elements: Sequence[XmlElement], k: int) -> bool:
    """Whether `elements[k]` has the shape of a placeholder written as text (`_placeholder_fixed`
    then reads its text): never closed, no attributes, no element inside. Typing in its text
    changes none of these; a line break or words typed there may change the rest."""
    element = elements[k]
    return (
        not element.attributes
        and not element.closed
        and (k + 1 == len(elements) or elements[k + 1].start >= element.content_end)
    )


# --------------------------------------------------------------------------------------------
# Checking a region again after an edit, from where the scan last saw the same text
# --------------------------------------------------------------------------------------------

#: Characters apart in the scanner's checkpoints; none is made where more elements than
#: `_CHECKPOINT_DEPTH` are open (a checkpoint holds the open elements).
_CHECKPOINT_STEP = 512
_CHECKPOINT_DEPTH = 64
#: Tags a resumed scan walks to answer lookahead questions before it builds the lookahead.
_WALK_LIMIT = 4000
#: Problems whose finding read no text past the token they were found in, and so depend only on
#: the text before (where a lookahead question was put, its reach is recorded). Any other kind
#: (a bare '<', a broken start tag or attribute, an unclosed comment...) may have been decided
#: by text far ahead: a region with one is checked whole.
_LOCAL_PROBLEMS = frozenset(
    {
        "mismatched-end-tag",
        "stray-end-tag",
        "unclosed-element",
        "bare-amp",
        "undefined-entity",
        "bad-char-ref",
        "duplicate-attribute",
        "cdata-end-in-text",
        "double-hyphen-in-comment",
        "nested-comment",
        "bad-end-tag",
    }
)
#: What an edit `recheck_region` takes may remove and insert: name characters and white space
#: (a tag or attribute renamed, a word or a line break typed), never markup, quotes, '-' or ':'.
_NAME_EDIT_RE = re.compile(r"[A-Za-z0-9_. \t\n]*")


class _Checkpoint(NamedTuple):
    """The scanner's state at a token boundary: how many of each finding, the open elements
    (index, whether their start tag had an error) and the end tags owed to elements closed
    implicitly."""

    pos: int
    problems: int
    elements: int
    comments: int
    cdata: int
    blank: int
    protected: int
    queries: int
    stack: tuple[tuple[int, bool], ...]
    implicit: dict[str, int] | None


@dataclass(frozen=True, slots=True)
class _Resume:
    """What a region's scan leaves for the next check of an edited version (`recheck_region`):
    its checkpoints, and the findings a check does not keep in the order found."""

    checkpoints: tuple[_Checkpoint, ...]
    scanned: tuple[XmlProblem, ...]
    blank: tuple[tuple[int, int, str], ...]
    protected: tuple[int, ...]
    queries: tuple[tuple[int, int], ...]
    moves: tuple[tuple[int, int, int], ...] = ()
    """Edits of text since (start, old end, new end, in order), applied when read (`settled`):
    typing in a text node leaves the scan's tokens as they were, only moved."""

    def moved(self, start: int, old_end: int, new_end: int) -> _Resume:
        """The same after an edit that keeps every token (text typed in a text node)."""
        return dataclasses.replace(self, moves=(*self.moves, (start, old_end, new_end)))

    def settled(self) -> _Resume:
        """The same with every offset where it now is."""
        if not self.moves:
            return self
        resume = dataclasses.replace(self, moves=())
        for start, old_end, new_end in self.moves:
            move = _Move(start, old_end, new_end)
            resume = _Resume(
                tuple(c._replace(pos=move.at_end(c.pos)) for c in resume.checkpoints),
                *move.findings(resume),
            )
        return resume

    @staticmethod
    def of(scanner: _Scanner) -> _Resume | None:
        """What `scanner`, having run, leaves (None: it made no checkpoint)."""
        if not scanner.checkpoints:
            return None
        return _Resume(
            tuple(scanner.checkpoints),
            tuple(scanner.problems),
            tuple(scanner.blank),
            tuple(scanner.protected),
            tuple(scanner.queries),
        )


class _Move:
    """Where offsets of a region are after an edit of `[start, old_end)` (now ending at
    `new_end`)."""

    __slots__ = ("delta", "old_end", "start")

    def __init__(self, start: int, old_end: int, new_end: int) -> None:
        self.start = start
        self.old_end = old_end
        self.delta = new_end - old_end

    def at(self, offset: int) -> int:
        """Where an offset where something starts is now: at the place of an insertion, it
        moves on with what follows."""
        return offset + self.delta if offset >= self.old_end else offset

    def at_end(self, offset: int) -> int:
        """Where an offset where something ends is now: at the place of an insertion, it
        stays with what precedes."""
        return offset + self.delta if offset >= self.old_end and offset > self.start else offset

    def findings(
        self, resume: _Resume, since: _Checkpoint | None = None
    ) -> tuple[
        tuple[XmlProblem, ...],
        tuple[tuple[int, int, str], ...],
        tuple[int, ...],
        tuple[tuple[int, int], ...],
    ]:
        """`resume`'s findings (those made from checkpoint `since` on), moved: its problems,
        spans to blank, protected offsets and lookahead questions."""
        at, at_end = self.at, self.at_end
        problems, blank, protected, queries = (
            (since.problems, since.blank, since.protected, since.queries) if since else (0,) * 4
        )
        return (
            tuple(
                XmlProblem(at(p.start), at_end(p.end), p.severity, p.message, p.kind, p.fix)
                for p in resume.scanned[problems:]
            ),
            tuple((at(a), at_end(b), f) for a, b, f in resume.blank[blank:]),
            tuple(at(x) for x in resume.protected[protected:]),
            tuple((at(i), at_end(r)) for i, r in resume.queries[queries:]),
        )


class _Resuming(_Move):
    """A scan resumed before an edit, looking for where it meets the earlier scan again: a
    checkpoint of that scan after the edit, at which this scan stands in the same state."""

    __slots__ = ("after", "by_pos", "checkpoints", "elements", "met_at")

    def __init__(
        self,
        resume: _Resume,
        elements: Sequence[XmlElement],
        start: int,
        old_end: int,
        new_end: int,
    ) -> None:
        super().__init__(start, old_end, new_end)
        self.after = new_end
        self.checkpoints = resume.checkpoints
        self.by_pos = {c.pos: k for k, c in enumerate(resume.checkpoints) if c.pos >= old_end}
        self.elements = elements
        self.met_at = -1

    def met(self, scanner: _Scanner, pos: int) -> bool:
        k = self.by_pos.get(pos - self.delta)
        if k is None:
            return False
        checkpoint = self.checkpoints[k]
        implicit = {name: v for name, v in scanner.implicitly_closed.items() if v} or None
        if checkpoint.implicit != implicit or len(checkpoint.stack) != len(scanner.stack):
            return False
        at = self.at
        for (index, errored), e in zip(checkpoint.stack, scanner.stack, strict=True):
            old = self.elements[index]
            if e.errored != errored or e.name != old.name or e.start != at(old.start):
                return False
            if e.depth != old.depth:
                return False
        self.met_at = k
        return True


def recheck_region(
    old: XmlCheck,
    old_text: str,
    text: str,
    start: int,
    old_end: int,
    new_end: int,
    masks: Sequence[tuple[int, int]] = (),
) -> XmlCheck | None:
    """The check of `text`, the region `old_text` (checked: `old`) with `[start, old_end)`
    replaced by `text[start:new_end]`, by scanning again only from a checkpoint before the
    edit to where the scan stands as it stood before (the rest of `old` moved), when the edit
    only removes and inserts name characters and white space (a tag or attribute renamed, a
    line broken); None when the region must be checked whole (then `check_region`).

    Exactly what `check_region(text, masks)` gives: the scan from a checkpoint goes on in the
    same state, and where it meets the old scan again in the same state on the same text, it
    would go on as that one did. So that the part before the checkpoint holds too, every
    finding there must have been decided by the text before it (`_LOCAL_PROBLEMS`), and any
    lookahead question put there answered before the edit."""
    removed, inserted = old_text[start:old_end], text[start:new_end]
    if old.resume is None or not (removed or inserted):
        return None
    resume = old.resume.settled()
    if not (_NAME_EDIT_RE.fullmatch(removed) and _NAME_EDIT_RE.fullmatch(inserted)):
        return None
    checkpoints = resume.checkpoints
    k = bisect.bisect_left([c.pos for c in checkpoints], start) - 1
    # (a finding of another kind than `_LOCAL_PROBLEMS` is scanned again: what decided it may
    # lie anywhere after it)
    local = next(
        (j for j, p in enumerate(resume.scanned) if p.kind not in _LOCAL_PROBLEMS),
        len(resume.scanned),
    )
    while k > 0:
        checkpoint = checkpoints[k]
        asked = resume.queries[: checkpoint.queries]
        if checkpoint.problems <= local and all(reach <= start for _, reach in asked):
            break
        k -= 1
    if k < 0:
        return None
    n = len(text)
    work = _masked(text, masks)
    if _suspicious(work):
        return None
    checkpoint = checkpoints[k]
    old_elements = old.elements
    scanner = _Scanner(text, work)
    scanner.offset = checkpoint.elements
    scanner.problems = list(resume.scanned[: checkpoint.problems])
    scanner.comments = list(old.comments[: checkpoint.comments])
    scanner.cdata = list(old.cdata[: checkpoint.cdata])
    scanner.blank = list(resume.blank[: checkpoint.blank])
    scanner.protected = list(resume.protected[: checkpoint.protected])
    scanner.queries = list(resume.queries[: checkpoint.queries])
    scanner.checkpoints = list(checkpoints[:k])
    scanner.next_checkpoint = checkpoint.pos
    scanner.implicitly_closed = dict(checkpoint.implicit or {})
    restored: list[_Open] = []
    for index, errored in checkpoint.stack:
        e = old_elements[index]  # (opened before the checkpoint: where it was)
        element = _Open(e.name, e.start, e.depth, index)
        element.start_tag_end = e.start_tag_end
        element.attributes = list(e.attributes)
        element.errored = errored
        scanner.open(element)
        element.depth = e.depth
        restored.append(element)
    resuming = scanner.resuming = _Resuming(resume, old_elements, start, old_end, new_end)
    at, at_end = resuming.at, resuming.at_end
    delta = resuming.delta
    finished = scanner.run(checkpoint.pos)
    if scanner.prefixes:
        return None

    met = None if finished else checkpoints[resuming.met_at]
    if met is not None:
        # Still open where the scans meet: they end where the old scan ended them.
        for (index, _), element in zip(met.stack, scanner.stack, strict=True):
            e = old_elements[index]
            # (a closed element ends after its end tag's '>'; one closed implicitly, or never,
            # where something else begins: the '<' of an ancestor's end tag, the region's end)
            element.end = at_end(e.end) if e.closed else at(e.end)
            element.content_end = at(e.content_end)
            element.closed = e.closed
        moved_scanned, moved_blank, moved_protected, moved_queries = resuming.findings(resume, met)
        scanned = scanner.problems + list(moved_scanned)
        comments = scanner.comments + [
            XmlComment(at(c.start), at_end(c.end), c.closed) for c in old.comments[met.comments :]
        ]
        cdata = scanner.cdata + [(at(a), at_end(b)) for a, b in old.cdata[met.cdata :]]
        blank = scanner.blank + list(moved_blank)
        protected = scanner.protected + list(moved_protected)
        queries = scanner.queries + list(moved_queries)
        # (the elements open where they meet are the same ones, by their index here)
        pairs = zip(met.stack, scanner.stack, strict=True)
        same = {index: element.index for (index, _), element in pairs}
        checkpoints_after = [
            _moved_checkpoint(c, at, scanner, met, same) for c in checkpoints[resuming.met_at :]
        ]
    else:
        scanned, comments, cdata = scanner.problems, scanner.comments, scanner.cdata
        blank, protected, queries = scanner.blank, scanner.protected, scanner.queries
        checkpoints_after = []

    # The elements: those before the checkpoint as they were (the restored ones finished),
    # those the scan found, and those after the meeting point moved (lazily).
    found = tuple([_freeze(element, n) for element in scanner.elements])
    elements = _spliced(
        old_elements,
        checkpoint.elements,
        {element.index: _freeze(element, n) for element in restored},
        found,
        met.elements if met is not None else None,
        delta,
    )

    new_resume = _Resume(
        (*scanner.checkpoints, *checkpoints_after),
        tuple(scanned),
        tuple(blank),
        tuple(protected),
        tuple(queries),
    )
    return _checked(
        work,
        list(scanned),
        elements,
        tuple(comments),
        tuple(cdata),
        list(blank),
        list(protected),
        scanner.prefixes,
        new_resume,
        _oracle_span(old, restored, scanner.elements, start, old_end, delta, protected),
    )


def _oracle_span(
    old: XmlCheck,
    restored: Sequence[_Open],
    found: Sequence[_Open],
    start: int,
    old_end: int,
    delta: int,
    protected: Sequence[int],
) -> tuple[int, int] | None:
    """Where lxml's verdict on a region rechecked after an edit of `[start, old_end)` (moving
    what follows by `delta`) can be read (`_verdict_within`): the innermost element of `old`
    holding the edit inside its content, when lxml accepted the region before and every offset
    the scan now protects from blanking lies in it (so lxml reads the text around it as
    before). `restored` (open at the checkpoint the scan resumed from) and `found` (scanned
    since), in the order they start: the elements of the new scan, which are the old ones by
    index where their start tags end before the edit. None: parse the whole region."""
    if not old.well_formed or old.oracle != "agree":
        return None
    elements = old.elements
    for element in [*reversed(found), *reversed(restored)]:
        if element.start_tag_end > start:
            continue  # (after the edit, or its start tag holds the edit: maybe a new element)
        o = elements[element.index]
        if o.start != element.start or o.start_tag_end != element.start_tag_end:
            return None  # (never: the scan before the edit is the old one)
        if not o.closed or o.self_closing or o.content_end < old_end:
            continue
        end = o.end + delta
        if all(o.start <= p < end for p in protected):
            return o.start, end
        return None
    return None


def _spliced(
    old: Sequence[XmlElement],
    first: int,
    finished: dict[int, XmlElement],
    found: tuple[XmlElement, ...],
    rest: int | None,
    delta: int,
) -> Sequence[XmlElement]:
    """`old[:first]` (with `finished` in place of some), then `found`, then `old[rest:]` moved
    by `delta` (none when `rest` is None): as `ShiftedElements`, so that what lies after the
    edit is moved only when read. `old` may itself be `ShiftedElements` of one shift: what it
    moved already is moved again only between its pivot and this edit."""
    if (
        isinstance(old, ShiftedElements)
        and len(old.shifts) == 1
        and old.offsets is None
        and not old.overrides
    ):
        base0, (pivot0, delta0, around0) = old.base, old.shifts[0]
    else:
        base0, pivot0, delta0, around0 = tuple(old), len(old), 0, {}
    middle: tuple[XmlElement, ...] = ()
    tail: tuple[XmlElement, ...] = ()
    tail_delta = 0
    if not delta0:  # nothing of `old` is moved: its elements are `base0`, or `around0`'s
        head = base0[:first]
        if rest is not None:
            tail, tail_delta = base0[rest:], delta
            late = [(i - rest, e) for i, e in around0.items() if i >= rest]
            if late:
                replaced = list(tail)
                for k, e in late:
                    replaced[k] = e
                tail = tuple(replaced)
    else:
        if first <= pivot0:
            head = base0[:first]
        else:
            head = base0[:pivot0] + tuple(moved_element(e, delta0) for e in base0[pivot0:first])
        if rest is not None and rest >= pivot0:
            tail, tail_delta = base0[rest:], delta0 + delta
        elif rest is not None:
            middle = tuple(
                moved_element(around0.get(i, base0[i]), delta) for i in range(rest, pivot0)
            )
            tail, tail_delta = base0[pivot0:], delta0 + delta
    around = {i: e for i, e in around0.items() if i < first}
    around.update(finished)
    base = head + found + middle + tail
    if not tail_delta and not around:
        return base
    return ShiftedElements(base, (Shift(len(base) - len(tail), tail_delta, around),), (-1, -1))


def _moved_checkpoint(
    c: _Checkpoint,
    at: Callable[[int], int],
    scanner: _Scanner,
    met: _Checkpoint,
    same: dict[int, int],
) -> _Checkpoint:
    """A checkpoint of the old scan after the meeting point `met`, in the new scan's terms
    (`same`: the index now of each element open at `met`)."""
    elements = scanner.offset + len(scanner.elements) - met.elements
    return _Checkpoint(
        at(c.pos),
        c.problems + len(scanner.problems) - met.problems,
        c.elements + elements,
        c.comments + len(scanner.comments) - met.comments,
        c.cdata + len(scanner.cdata) - met.cdata,
        c.blank + len(scanner.blank) - met.blank,
        c.protected + len(scanner.protected) - met.protected,
        c.queries + len(scanner.queries) - met.queries,
        tuple(
            (index + elements if index >= met.elements else same.get(index, index), errored)
            for index, errored in c.stack
        ),
        c.implicit,
    )


def raw_element_end(text: str, start: int, skip: Sequence[tuple[int, int]] = ()) -> int | None:
    """Where the raw element whose start tag begins at `text[start]` ('<') ends.

    Return the offset just after the end tag that closes it (tracking nesting, comments, CDATA,
    and ignoring spans in `skip`), or None when it is never closed; for a self-closing tag, the
    offset after '/>'. Also None when `text[start]` does not start a start tag.

    Only elements of the same name count for nesting, so stray markup of other names in the
    markdown between the tags does not matter.
    """
    if start < 0 or not text.startswith("<", start):
        return None
    name_m = NAME_RE.match(text, start + 1)
    if name_m is None:
        return None
    name = name_m.group(0)
    tail = _START_TAG_TAIL_RE.match(text, name_m.end())
    if tail is None:
        return None
    if text[tail.end() - 2] == "/" and tail.end() - 2 >= name_m.end():
        return tail.end()
    spans = _normalize_spans(skip, len(text))
    span_starts = [s for s, _ in spans]

    def skipped(offset: int) -> int:
        """The end of the skip span holding `offset`, or -1."""
        k = bisect.bisect_right(span_starts, offset) - 1
        if k >= 0 and offset < spans[k][1]:
            return spans[k][1]
        return -1

    def find(needle: str, pos: int) -> int:
        while True:
            hit = text.find(needle, pos)
            if hit < 0:
                return -1
            jump = skipped(hit)
            if jump < 0:
                return hit
            pos = jump

    depth = 1
    pos = tail.end()
    while True:
        m = _RAW_TOKEN_RE.search(text, pos)
        if m is None:
            return None
        jump = skipped(m.start())
        if jump >= 0:
            pos = jump
            continue
        token = m.group(0)
        if token == "<!--":
            close = find("-->", m.end())
            if close < 0:
                return None
            pos = close + 3
        elif token == "<![CDATA[":
            close = find("]]>", m.end())
            if close < 0:
                return None
            pos = close + 3
        elif m.group(2) != name:
            pos = m.end()
        elif m.group(1):
            end_m = _END_TAG_TAIL_RE.match(text, m.end())
            if end_m is None:
                pos = m.end()
                continue
            depth -= 1
            if depth == 0:
                return end_m.end()
            pos = end_m.end()
        else:
            tag = _START_TAG_TAIL_RE.match(text, m.end())
            if tag is None:
                pos = m.end()
                continue
            if not (text[tag.end() - 2] == "/" and tag.end() - 2 >= m.end()):
                depth += 1
            pos = tag.end()


class _RawChain:
    """The scan `raw_element_end` does for one element name, shared by the starts it passes."""

    __slots__ = ("done", "ends", "limit", "pos", "seen", "stack")

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.done = False
        self.limit = -1
        """Where the scan stopped for good (an unclosed comment or CDATA, or the end)."""
        self.stack: list[int] = []
        self.ends: dict[int, int | None] = {}
        self.seen: set[int] = set()


class RawElementEnds:
    """`raw_element_end` for many starts of one text, in linear time overall.

    Calling `raw_element_end` for every start tag of a long markdown file is quadratic: each
    unclosed element (`<br>` lines, stray tags) scans to the end of the text. Here the tags,
    comments and CDATA sections are found once, and the scan for an element name is shared: a
    start that scan passes gets its end from the scan's stack of open elements (the same end the
    scan from it would find, since from any token on, a scan is deterministic). A start the
    shared scan jumped over (inside a comment, CDATA section or start tag of its own) gets a
    scan of its own. All of it is bounded by `budget` tokens; once that is spent, an element
    that still needs a scan counts as never closed (None).
    """

    def __init__(
        self, text: str, skip: Sequence[tuple[int, int]] = (), budget: int = 150_000
    ) -> None:
        self.text = text
        spans = _normalize_spans(skip, len(text))
        self._spans = spans
        self._span_starts = [s for s, _ in spans]
        self.budget = budget
        self._tags: dict[str, tuple[list[int], list[tuple[bool, int]]]] = {}
        self._openers: list[int] = []
        self._opener_kind: list[bool] = []  # True for a comment, False for CDATA
        # Tokens starting inside the skipped spans (code fences: most of a module) are never
        # looked at, so they are not looked for; a token starting before a span is read whole
        # (into the span, as a scan of the whole text would).
        for m in self._tokens_between_spans(text, spans):
            token = m.group(0)
            if m.group(2) is None:
                self._openers.append(m.start())
                self._opener_kind.append(token == "<!--")
                continue
            positions, info = self._tags.setdefault(m.group(2), ([], []))
            positions.append(m.start())
            info.append((bool(m.group(1)), m.end()))
        self._closers: dict[bool, list[int]] = {
            True: _occurrences(text, "-->"),
            False: _occurrences(text, "]]>"),
        }
        self._chains: dict[str, _RawChain] = {}

    @staticmethod
    def _tokens_between_spans(
        text: str, spans: Sequence[tuple[int, int]]
    ) -> Iterator[re.Match[str]]:
        a = 0
        for b, after in [*spans, (len(text), len(text))]:
            for m in _RAW_TOKEN_RE.finditer(text, a):
                if m.start() >= b:
                    break
                yield m
            a = after

    def end(self, start: int) -> int | None:
        """`raw_element_end(text, start, skip)`, or None once the budget is spent."""
        text = self.text
        if start < 0 or not text.startswith("<", start):
            return None
        name_m = NAME_RE.match(text, start + 1)
        if name_m is None:
            return None
        tail = _START_TAG_TAIL_RE.match(text, name_m.end())
        if tail is None:
            return None
        if text[tail.end() - 2] == "/" and tail.end() - 2 >= name_m.end():
            return tail.end()
        name = name_m.group(0)
        chain = self._chains.get(name)
        if chain is not None:
            while not chain.done and chain.pos <= start:
                self._step(chain, name)
        if chain is None or start not in chain.seen:
            shared = chain is None or (chain.done and start >= chain.limit)
            # A new scan from this start (hidden from the shared one: a scan of its own).
            chain = _RawChain(tail.end())
            chain.seen.add(start)
            chain.stack.append(start)
            if shared:
                self._chains[name] = chain
        while start not in chain.ends and not chain.done:
            self._step(chain, name)
        return chain.ends.get(start)

    def _skipped(self, offset: int) -> int:
        k = bisect.bisect_right(self._span_starts, offset) - 1
        if k >= 0 and offset < self._spans[k][1]:
            return self._spans[k][1]
        return -1

    def _step(self, chain: _RawChain, name: str) -> None:
        """Handle the next token of `name`'s scan (a tag of that name, a comment or CDATA)."""
        if self.budget <= 0:
            chain.done = True
            chain.limit = len(self.text)
            return
        self.budget -= 1
        pos = chain.pos
        positions, info = self._tags.get(name, ([], []))
        t = bisect.bisect_left(positions, pos)
        o = bisect.bisect_left(self._openers, pos)
        tag_at = positions[t] if t < len(positions) else -1
        opener_at = self._openers[o] if o < len(self._openers) else -1
        if tag_at < 0 and opener_at < 0:
            chain.done = True
            chain.limit = len(self.text)
            return
        at = tag_at if opener_at < 0 or (0 <= tag_at < opener_at) else opener_at
        jump = self._skipped(at)
        if jump >= 0:
            chain.pos = jump
            return
        text = self.text
        if at == opener_at:
            comment = self._opener_kind[o]
            close = self._find_closer(comment, at + (4 if comment else 9))
            if close < 0:
                chain.done = True
                chain.limit = at
                return
            chain.pos = close + 3
            return
        is_end, name_end = info[t]
        if is_end:
            end_m = _END_TAG_TAIL_RE.match(text, name_end)
            if end_m is None:
                chain.pos = name_end
                return
            if chain.stack:
                chain.ends[chain.stack.pop()] = end_m.end()
            chain.pos = end_m.end()
            return
        chain.seen.add(at)
        tag = _START_TAG_TAIL_RE.match(text, name_end)
        if tag is None:
            chain.ends[at] = None
            chain.pos = name_end
            return
        if text[tag.end() - 2] == "/" and tag.end() - 2 >= name_end:
            chain.ends[at] = tag.end()
        else:
            chain.stack.append(at)
        chain.pos = tag.end()

    def _find_closer(self, comment: bool, pos: int) -> int:
        """The first `-->` (or `]]>`) at or after `pos` outside the skipped spans, or -1."""
        closers = self._closers[comment]
        while True:
            k = bisect.bisect_left(closers, pos)
            if k >= len(closers):
                return -1
            hit = closers[k]
            jump = self._skipped(hit)
            if jump < 0:
                return hit
            if self.budget <= 0:
                return -1
            self.budget -= 1
            pos = jump


def _occurrences(text: str, needle: str) -> list[int]:
    """Every offset where `needle` occurs (the needles here cannot overlap themselves)."""
    out: list[int] = []
    at = text.find(needle)
    while at >= 0:
        out.append(at)
        at = text.find(needle, at + len(needle))
    return out
