"""Offsets <-> (line, character) in UTF-8, UTF-16 and UTF-32 code units.

Offsets throughout the core are Python string indices (code points) into a file's decoded text.
Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``, as the LSP specification says.
"""

from __future__ import annotations

import bisect
import enum
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate, count

_LINE_END = re.compile(r"\r\n|\r|\n")
_WIDE = re.compile(r"[^\x00-\x7f]")


class PositionEncoding(enum.StrEnum):
    """How the `character` of a position is counted (LSP `PositionEncodingKind`)."""

    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"


@dataclass(frozen=True, slots=True)
class Position:
    """A 0-based line and a character offset in the chosen encoding's code units."""

    line: int
    character: int


@dataclass(frozen=True, slots=True)
class Range:
    """A half-open range between two positions."""

    start: Position
    end: Position


@dataclass(frozen=True, slots=True)
class TextChange:
    """One change of a document (LSP `TextDocumentContentChangeEvent`): `text` replaces
    `range`, or the whole document when `range` is None."""

    range: Range | None
    text: str


def decode(data: bytes) -> str:
    """Decode file bytes as UTF-8 with invalid bytes replaced: the text every count is made of."""
    return data.decode("utf-8", errors="replace")


def _units(text: str, encoding: PositionEncoding) -> int:
    if encoding is PositionEncoding.UTF32 or text.isascii():
        return len(text)
    if encoding is PositionEncoding.UTF16:
        return len(text.encode("utf-16-le", errors="surrogatepass")) // 2
    return len(text.encode("utf-8", errors="surrogatepass"))


def utf8_size(text: str) -> int:
    """The number of bytes `text` takes in UTF-8 (a lone surrogate counts its three bytes)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", errors="surrogatepass"))


def over_utf8_size(text: str, limit: int) -> bool:
    """Whether `text` takes more than `limit` bytes in UTF-8; encodes it only when the number of
    characters alone (a character takes one to four bytes) cannot tell."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return utf8_size(text) > limit


def first_line_break(text: str, start: int = 0, end: int | None = None) -> int:
    """The offset of the first line break (`\\n`, `\\r\\n` or `\\r`) in `text[start:end]`,
    or -1: the end of the line holding `start`, before its line ending."""
    found = _LINE_END.search(text, start, len(text) if end is None else end)
    return found.start() if found is not None else -1


#: Lines longer than this get a table of the code units before every block of this many
#: characters, so that a position on a line of a megabyte costs a block, not the line.
_BLOCK = 1024


class LineIndex:
    """Maps offsets to positions and back for one text; built once per document version."""

    __slots__ = ("_blocks", "_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        if "\r" in text:
            starts = [0]
            starts.extend(m.end() for m in _LINE_END.finditer(text))
        else:  # the common case, at C speed: each line's length plus its `\n`
            lengths = accumulate(map(len, text.split("\n")[:-1]))
            starts = [0, *map(operator.add, lengths, count(1))]
        self._starts = starts
        self._blocks: dict[tuple[int, PositionEncoding], list[int] | None] = {}

    def _line_blocks(self, line: int, encoding: PositionEncoding) -> list[int] | None:
        """Code units before each block of a long line (None when the line is ASCII)."""
        key = (line, encoding)
        if key in self._blocks:
            return self._blocks[key]
        start, end = self._starts[line], self.line_end(line)
        blocks: list[int] | None = None
        if not self._text[start:end].isascii():
            blocks = [0]
            for at in range(start, end - _BLOCK + 1, _BLOCK):
                blocks.append(blocks[-1] + _units(self._text[at : at + _BLOCK], encoding))
        self._blocks[key] = blocks
        return blocks

    @property
    def text(self) -> str:
        """The text this index maps."""
        return self._text

    def replace(self, start: int, end: int, inserted: str) -> LineIndex:
        """The index of this text with `[start, end)` replaced by `inserted`, made by scanning
        only the lines the edit touches (and the line before, where a `\\r` may now join a
        `\\n`); the line starts after them move by the change of length."""
        old, starts = self._text, self._starts
        text = old[:start] + inserted + old[end:]
        delta = len(inserted) - (end - start)
        first = self.line_of(start - 1) if start > 0 else 0
        last = self.line_of(end)
        # Old line starts after `end` stay starts (the break before each is untouched text).
        tail = starts[last + 1 :]
        stop = tail[0] + delta if tail else len(text)
        middle = [m.end() for m in _LINE_END.finditer(text, starts[first], stop)]
        index = LineIndex.__new__(LineIndex)
        index._text = text
        if tail and middle and middle[-1] == stop:
            middle.pop()  # `stop` itself: the first of the tail
        index._starts = [*starts[: first + 1], *middle]
        if delta:
            index._starts.extend([s + delta for s in tail])
        else:
            index._starts.extend(tail)
        index._blocks = {k: v for k, v in self._blocks.items() if k[0] < first}
        return index

    @property
    def line_count(self) -> int:
        """Number of lines (a text ending in a newline has an empty last line)."""
        return len(self._starts)

    def line_start(self, line: int) -> int:
        """Offset of the first character of `line` (clamped to the text)."""
        if line < 0:
            return 0
        if line >= len(self._starts):
            return len(self._text)
        return self._starts[line]

    def line_end(self, line: int, *, include_newline: bool = False) -> int:
        """Offset just after the last character of `line` (before its line ending by default)."""
        if line + 1 < len(self._starts):
            end = self._starts[line + 1]
            if include_newline:
                return end
            if self._text.startswith("\r\n", end - 2) and end - 2 >= self._starts[line]:
                return end - 2
            return end - 1
        return len(self._text)

    def line_of(self, offset: int) -> int:
        """The 0-based line holding `offset`."""
        return bisect.bisect_right(self._starts, max(0, offset)) - 1

    def position(
        self, offset: int, encoding: PositionEncoding = PositionEncoding.UTF16
    ) -> Position:
        """The position of `offset`, its character counted in `encoding` code units."""
        offset = min(max(0, offset), len(self._text))
        line = self.line_of(offset)
        start = self._starts[line]
        n = offset - start
        if encoding is PositionEncoding.UTF32 or n <= _BLOCK:
            return Position(line, _units(self._text[start:offset], encoding))
        blocks = self._line_blocks(line, encoding)
        if blocks is None:
            return Position(line, n)
        k = min(n // _BLOCK, len(blocks) - 1)
        return Position(line, blocks[k] + _units(self._text[start + k * _BLOCK : offset], encoding))

    def range(
        self, start: int, end: int, encoding: PositionEncoding = PositionEncoding.UTF16
    ) -> Range:
        """The range between two offsets."""
        return Range(self.position(start, encoding), self.position(max(start, end), encoding))

    def offset(
        self, position: Position, encoding: PositionEncoding = PositionEncoding.UTF16
    ) -> int:
        """The offset of `position`; a character past the line's end clamps to it, as LSP asks."""
        if position.line < 0:
            return 0
        if position.line >= len(self._starts):
            return len(self._text)
        start = self._starts[position.line]
        end = self.line_end(position.line)
        target = max(0, position.character)
        if encoding is PositionEncoding.UTF32:
            return min(start + target, end)
        seen = 0
        if end - start > _BLOCK:
            blocks = self._line_blocks(position.line, encoding)
            if blocks is None:
                return min(start + target, end)
            k = bisect.bisect_right(blocks, target) - 1
            start, seen = start + k * _BLOCK, blocks[k]
        elif not _WIDE.search(self._text, start, end):
            return min(start + target, end)
        for i in range(start, end):
            if seen >= target:
                return i
            cp = ord(self._text[i])
            if encoding is PositionEncoding.UTF16:
                seen += 2 if cp > 0xFFFF else 1
            else:
                seen += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
        return end


def apply_changes(
    text: str,
    changes: Iterable[TextChange],
    encoding: PositionEncoding = PositionEncoding.UTF16,
) -> str:
    """`text` after `changes`, one after the other, as LSP reads them: lines end at `\\n`,
    `\\r\\n` or `\\r` only; a character past the end of a line means the end of the line
    (before its line break), a line past the end of the text the end of the text; a reversed
    range is read with its ends swapped; a position inside a character (between the halves of a
    UTF-16 surrogate pair, inside a UTF-8 sequence) means the position after that character."""
    return apply_changes_to(LineIndex(text), changes, encoding).text


def apply_changes_to(
    index: LineIndex,
    changes: Iterable[TextChange],
    encoding: PositionEncoding = PositionEncoding.UTF16,
) -> LineIndex:
    """`apply_changes` on the text of `index`: the line index of the result, each change
    updating the previous index (`LineIndex.replace`) rather than building one from scratch."""
    for change in changes:
        if change.range is None:
            index = LineIndex(change.text)
            continue
        a = index.offset(change.range.start, encoding)
        b = index.offset(change.range.end, encoding)
        if b < a:
            a, b = b, a
        index = index.replace(a, b, change.text)
    return index
