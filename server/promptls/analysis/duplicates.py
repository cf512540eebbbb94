"""Duplicate content: paragraphs and XML elements that appear more than once in one load set.

The framework's own rule is "zero redundancy": a block loaded twice is tokens wasted at every run.
Blocks are compared after collapsing whitespace; only copies at least `min_tokens` long count,
and a copy inside a larger duplicated block is not reported on its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from promptls.analysis.document import Document

_SPACE = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"(?:\r\n|\r|\n)[ \t]*(?=\r\n|\r|\n|$)")


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph or an XML element of a file, by its normalised text's digest."""

    digest: bytes
    start: int
    end: int
    kind: str
    """`paragraph` or `element`."""
    label: str


def _digest(text: str) -> bytes:
    # The words, one space between them: `str.split` cuts at the characters `\s` matches (both
    # use `str.isspace`), several times faster than a regular expression.
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8"), digest_size=16).digest()


#: Elements nested deeper than this are not candidates. Each element's text is read once for
#: its digest, so the work is the region's length times its depth: linear for any real
#: framework (a few levels), quadratic for a run of thousands of nested tags (200,000 levels
#: took minutes) unless bounded.
MAX_BLOCK_DEPTH = 32


def blocks(doc: Document, min_chars: int) -> list[Block]:
    """Candidate blocks of a document: XML elements (at most `MAX_BLOCK_DEPTH` levels deep) and
    markdown paragraphs outside fences."""
    text = doc.text
    out: list[Block] = []
    for region in doc.regions:
        for el in region.check.elements:
            if not el.closed or el.end - el.start < min_chars or el.depth >= MAX_BLOCK_DEPTH:
                continue
            start, end = region.start + el.start, region.start + el.end
            out.append(Block(_digest(text[start:end]), start, end, "element", f"<{el.name}>"))
    skip = sorted(
        [(f.start, f.end) for f in doc.fences]
        + [(r.start, r.end) for r in doc.regions]
        + [(c.start, c.end) for c in doc.comments]
        + ([(doc.frontmatter.start, doc.frontmatter.end)] if doc.frontmatter else [])
    )
    pos = 0
    for s, e in [*skip, (len(text), len(text))]:
        if s > pos:
            out.extend(_paragraphs(text, pos, s, min_chars))
        pos = max(pos, e)
    return out


def _paragraphs(text: str, start: int, end: int, min_chars: int) -> Iterable[Block]:
    pos = start
    for match in [*_BLANK_LINE.finditer(text, start, end), None]:
        stop = match.start() if match else end
        chunk = text[pos:stop]
        stripped = chunk.strip()
        if len(stripped) >= min_chars:
            lead = len(chunk) - len(chunk.lstrip())
            a = pos + lead
            out_end = a + len(stripped)
            first = _SPACE.sub(" ", stripped)
            label = (
                f'paragraph "{first[:32].rstrip()}…"' if len(first) > 32 else f'paragraph "{first}"'
            )
            yield Block(_digest(stripped), a, out_end, "paragraph", label)
        pos = match.end() if match else end


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One copy of a block that appears elsewhere in the same load set."""

    path: str
    start: int
    end: int
    label: str
    tokens: int
    others: tuple[tuple[str, int, int], ...]
    """Where the other copies are: the first `MAX_OTHERS` of them."""
    copies: int = 0
    """How many other copies there are in all (`others` may list fewer)."""


#: At most this many other copies are listed per copy: a block pasted a thousand times would
#: otherwise make a million related locations.
MAX_OTHERS = 20


def find_duplicates(
    members: Iterable[str],
    blocks_of: Mapping[str, list[Block]],
    text_of: Callable[[str], str],
    count: Callable[[str], int],
    min_tokens: int,
) -> list[Duplicate]:
    """Every copy of a block that occurs more than once across `members` (one load set)."""
    groups: dict[bytes, list[tuple[str, Block]]] = {}
    for path in members:
        for block in blocks_of.get(path, ()):
            groups.setdefault(block.digest, []).append((path, block))
    found: list[Duplicate] = []
    for copies in groups.values():
        if len(copies) < 2:
            continue
        path0, first = copies[0]
        tokens = count(text_of(path0)[first.start : first.end])
        if tokens < min_tokens:
            continue
        listed = copies[: MAX_OTHERS + 1]
        for path, block in copies:
            others = tuple((p, b.start, b.end) for p, b in listed if (p, b) != (path, block))[
                :MAX_OTHERS
            ]
            found.append(
                Duplicate(
                    path, block.start, block.end, block.label, tokens, others, len(copies) - 1
                )
            )
    # A copy inside a larger duplicated copy in the same file is reported with it, not alone.
    spans: dict[str, set[tuple[int, int]]] = {}
    for d in found:
        spans.setdefault(d.path, set()).add((d.start, d.end))
    inner: set[tuple[str, int, int]] = set()
    for path, unique in spans.items():
        # By start, the longest first: a span lies inside another one iff an earlier span
        # reaches at least as far.
        reach = -1
        for start, end in sorted(unique, key=lambda se: (se[0], -se[1])):
            if reach >= end:
                inner.add((path, start, end))
            reach = max(reach, end)
    return [d for d in found if (d.path, d.start, d.end) not in inner]
