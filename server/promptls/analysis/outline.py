"""The shape of a document for navigation: an outline (headings and XML elements as a tree),
folding ranges, a one-line description of a file, and the name it is known by."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from promptls.analysis.document import Document
from promptls.analysis.text import LineIndex

_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class OutlineNode:
    """A heading, an XML element or the frontmatter, with what it contains."""

    name: str
    detail: str
    kind: str
    """`heading`, `element` or `frontmatter`."""
    start: int
    end: int
    selection_start: int
    selection_end: int
    children: tuple[OutlineNode, ...] = field(default=())


@dataclass(slots=True)
class _Building:
    name: str
    detail: str
    kind: str
    start: int
    end: int
    sel: tuple[int, int]
    level: int
    children: list[_Building] = field(default_factory=list)


def _freeze(roots: list[_Building], max_depth: int) -> list[OutlineNode]:
    """The frozen trees, built bottom-up without recursion (a run of unclosed tags nests
    thousands deep). A node one level above `max_depth` gets every node below it as a direct
    child, in document order: the tree is never more than `max_depth` levels deep (two at
    least)."""
    order: list[_Building] = []
    stack = [(r, 1) for r in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        order.append(node)
        if depth < max_depth - 1:
            stack.extend((c, depth + 1) for c in reversed(node.children))
            continue
        flat: list[_Building] = []
        below = list(reversed(node.children))
        while below:
            child = below.pop()
            flat.append(child)
            below.extend(reversed(child.children))
        for child in flat:
            child.children = []
        node.children = flat
        order.extend(flat)
    frozen: dict[int, OutlineNode] = {}
    for node in reversed(order):  # every node after its parent: children are frozen first
        frozen[id(node)] = OutlineNode(
            node.name,
            node.detail,
            node.kind,
            node.start,
            max(node.end, node.start),
            node.sel[0],
            node.sel[1],
            tuple(frozen.pop(id(c)) for c in node.children),
        )
    return [frozen[id(r)] for r in roots]


def _element_detail(text: str, base: int, attrs: tuple[tuple[str, str], ...]) -> str:
    for key in ("name", "purpose", "target", "from", "id", "type", "condition"):
        for name, value in attrs:
            if name == key and value.strip():
                return f'{name}="{_short(value)}"'
    del text, base
    return ""


def _short(value: str, limit: int = 60) -> str:
    value = _SPACE.sub(" ", value).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


#: How many levels the outline has at most: elements nested deeper are listed, in document
#: order, as children of their ancestor at this level (the editor shows a long list rather than
#: a tree thousands deep, which would also be serialised recursively).
MAX_OUTLINE_DEPTH = 64


def outline(doc: Document, max_depth: int = MAX_OUTLINE_DEPTH) -> list[OutlineNode]:
    """Headings nest by level; XML elements nest by depth under the heading that holds them,
    at most `max_depth` levels deep (see `MAX_OUTLINE_DEPTH`)."""
    text = doc.text
    roots: list[_Building] = []
    if doc.frontmatter is not None:
        fm = doc.frontmatter
        roots.append(
            _Building(
                "frontmatter", "", "frontmatter", fm.start, fm.end, (fm.start, fm.start + 3), 0
            )
        )
    section_ends = _section_ends(doc)
    headings = [
        _Building(
            h.title or "#" * h.level,
            "",
            "heading",
            h.start,
            section_ends[i],
            (h.start, h.end),
            h.level,
        )
        for i, h in enumerate(doc.headings)
    ]
    elements: list[_Building] = []
    for region in doc.regions:
        stack: list[_Building] = []
        for el in region.check.elements:
            start = region.start + el.start
            end = region.start + el.end
            node = _Building(
                f"<{el.name}>",
                _element_detail(
                    text, region.start, tuple((a.name, a.value) for a in el.attributes)
                ),
                "element",
                start,
                end,
                (start, region.start + el.start_tag_end),
                100 + el.depth,
            )
            while stack and not (stack[-1].start <= start and end <= stack[-1].end):
                stack.pop()
            if stack:
                stack[-1].children.append(node)
            else:
                elements.append(node)
            stack.append(node)
    # Merge headings and top-level elements: each goes under the innermost heading holding it.
    items = sorted(headings + elements, key=lambda b: (b.start, b.level))
    stack2: list[_Building] = []
    for item in items:
        while stack2 and not (
            stack2[-1].start <= item.start < stack2[-1].end
            and (item.kind != "heading" or item.level > stack2[-1].level)
        ):
            stack2.pop()
        if stack2:
            stack2[-1].children.append(item)
        else:
            roots.append(item)
        if item.kind == "heading":
            stack2.append(item)
    return _freeze(roots, max_depth)


def _section_ends(doc: Document) -> list[int]:
    """Where each heading's section ends: before the next heading of the same or a higher level."""
    text = doc.text
    headings = doc.headings
    ends = [len(text)] * len(headings)
    # One pass, the headings still open on a stack (levels rising): a heading closes every open
    # one of its level or deeper. (Looking ahead from each heading took quadratic time.)
    open_: list[int] = []
    for i, h in enumerate(headings):
        while open_ and headings[open_[-1]].level >= h.level:
            ends[open_.pop()] = h.start
        open_.append(i)
    for i, h in enumerate(headings):
        end = ends[i]
        while end > h.end and text[end - 1] in "\r\n":
            end -= 1
        ends[i] = end
    return ends


@dataclass(frozen=True, slots=True)
class Fold:
    """A folding range in lines (inclusive), with its kind (`region`, `comment`, `imports`)."""

    start_line: int
    end_line: int
    kind: str


def folds(doc: Document, index: LineIndex | None = None) -> list[Fold]:
    """Folding ranges: frontmatter, sections, fences, XML elements and block comments."""
    lines = index or LineIndex(doc.text)
    spans: list[tuple[int, int, str]] = []
    if doc.frontmatter is not None:
        spans.append((doc.frontmatter.start, doc.frontmatter.end - 1, "region"))
    for h, end in zip(doc.headings, _section_ends(doc), strict=True):
        spans.append((h.start, end, "region"))
    for f in doc.fences:
        spans.append((f.start, max(f.start, f.end - 1), "region"))
    for region in doc.regions:
        for el in region.check.elements:
            spans.append(
                (region.start + el.start, region.start + max(el.start, el.end - 1), "region")
            )
    for c in doc.comments:
        spans.append((c.start, max(c.start, c.end - 1), "comment"))
    out: dict[tuple[int, int], Fold] = {}
    for start, end, kind in spans:
        a, b = lines.line_of(start), lines.line_of(end)
        if b > a:
            out.setdefault((a, b), Fold(a, b, kind))
    return sorted(out.values(), key=lambda f: (f.start_line, -f.end_line))


def limit_folds(found: list[Fold], limit: int | None) -> list[Fold]:
    """At most `limit` of `found` (an editor's `rangeLimit`; VS Code asks for 5,000): the
    longest, which hold the others, in their order."""
    if not limit or limit < 0 or len(found) <= limit:
        return found
    longest = sorted(range(len(found)), key=lambda i: (found[i].start_line - found[i].end_line, i))
    return [found[i] for i in sorted(longest[:limit])]


def describe(doc: Document) -> str:
    """One line saying what the file is for: its purpose, description, or first heading."""
    for region in doc.regions:
        for el in region.check.elements:
            for attr in el.attributes:
                if attr.name in ("purpose", "description") and attr.value.strip():
                    return _short(attr.value, 200)
            if el.name in ("purpose", "description") and el.closed:
                inner = doc.text[region.start + el.content_start : region.start + el.content_end]
                inner = _TAG.sub(" ", inner)
                if inner.strip():
                    return _short(inner, 200)
    if doc.frontmatter is not None:
        key = doc.frontmatter.get("description")
        if key is not None and isinstance(key.value, str) and key.value.strip():
            return _short(key.value, 200)
    for h in doc.headings:
        if h.title:
            return _short(h.title, 200)
    return ""


def symbol_name(rel: str, kind: str, doc: Document) -> str:
    """How a user calls the file: `/frontend:component` for a command, a skill or agent name,
    a module's path below its framework folder."""
    if kind == "command":
        parts = rel.split("/")
        inner = parts[parts.index("commands") + 1 :] if "commands" in parts else parts[-1:]
        stem = os.path.splitext(inner[-1])[0]
        return "/" + ":".join([*inner[:-1], stem])
    if kind in ("agent", "skill", "output-style") and doc.frontmatter is not None:
        key = doc.frontmatter.get("name")
        if key is not None and isinstance(key.value, str) and key.value:
            return key.value
    if kind == "skill":
        return os.path.basename(os.path.dirname(rel))
    for marker in ("modules/", "system/", "components/"):
        if marker in rel:
            return os.path.splitext(rel.split(marker, 1)[1])[0]
    return os.path.splitext(rel)[0]
