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

_LAST_REPLACED: list[tuple[str, str, int, int] | None] = [None]
"""(text before, text after, start, end of the span replaced) of the last `LineIndex.replace`
(see `replaced_span`), in a list set whole (other threads read it)."""


def replaced_span(old: str, new: str) -> tuple[int, int] | None:
    """The span of `old` that the last `LineIndex.replace` replaced to make `new`, when those are
    its two texts (the very objects): the server applies each keystroke with it, so the edit
    between a document's two versions is known without comparing them. None otherwise."""
    last = _LAST_REPLACED[0]
    if last is not None and last[0] is old and last[1] is new:
        return last[2], last[3]
    return None


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
    """Maps offsets to positions and back for one text; built once per document version.

    The line starts after an edit move by its length: instead of adding it to each of them, an
    index made by `replace` keeps the starts from `_shift_at` on as they were and adds
    `_shift` when it reads them, so that typing on one line costs that line, not the lines
    after it (the shift is added into the starts only when an edit lands before them)."""

    __slots__ = ("_blocks", "_shift", "_shift_at", "_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        if "\r" in text:
            starts = [0]
            starts.extend(m.end() for m in _LINE_END.finditer(text))
        else:  # the common case, at C speed: each line's length plus its `\n`
            lengths = accumulate(map(len, text.split("\n")[:-1]))
            starts = [0, *map(operator.add, lengths, count(1))]
        self._starts = starts
        self._shift_at = len(starts)
        self._shift = 0
        self._blocks: dict[tuple[int, PositionEncoding], list[int] | None] = {}

    def _start(self, line: int) -> int:
        """Where `line` (an index into the starts) starts."""
        start = self._starts[line]
        return start + self._shift if line >= self._shift_at else start

    def _starts_between(self, first: int, stop: int) -> list[int]:
        """The starts of lines [first, stop), with the shift added where it applies."""
        at, shift, starts = self._shift_at, self._shift, self._starts
        if stop <= at or not shift:
            return starts[first:stop]
        if first >= at:
            return [s + shift for s in starts[first:stop]]
        return [*starts[first:at], *(s + shift for s in starts[at:stop])]

    def _line_blocks(self, line: int, encoding: PositionEncoding) -> list[int] | None:
        """Code units before each block of a long line (None when the line is ASCII)."""
        key = (line, encoding)
        if key in self._blocks:
            return self._blocks[key]
        start, end = self._start(line), self.line_end(line)
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
        old, starts, n = self._text, self._starts, len(self._starts)
        text = old[:start] + inserted + old[end:]
        _LAST_REPLACED[0] = (old, text, start, end)
        delta = len(inserted) - (end - start)
        first = self.line_of(start - 1) if start > 0 else 0
        last = self.line_of(end)
        # Old line starts after `end` stay starts (the break before each is untouched text).
        stop = self._start(last + 1) + delta if last + 1 < n else len(text)
        middle = [m.end() for m in _LINE_END.finditer(text, self._start(first), stop)]
        index = LineIndex.__new__(LineIndex)
        index._text = text
        if last + 1 < n and middle and middle[-1] == stop:
            middle.pop()  # `stop` itself: the first of the tail
        head = self._starts_between(0, first + 1)
        head.extend(middle)
        index._shift_at = len(head)
        if last + 1 >= self._shift_at:  # the lines after the edit all carry the old shift
            head.extend(starts[last + 1 :])
            index._shift = self._shift + delta
        else:
            head.extend(self._starts_between(last + 1, n))
            index._shift = delta
        if not index._shift:
            index._shift_at = len(head)
        index._starts = head
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
        return self._start(line)

    def line_end(self, line: int, *, include_newline: bool = False) -> int:
        """Offset just after the last character of `line` (before its line ending by default)."""
        if line + 1 < len(self._starts):
            end = self._start(line + 1)
            if include_newline:
                return end
            if self._text.startswith("\r\n", end - 2) and end - 2 >= self._start(line):
                return end - 2
            return end - 1
        return len(self._text)

    def line_of(self, offset: int) -> int:
        """The 0-based line holding `offset`."""
        offset, at, starts = max(0, offset), self._shift_at, self._starts
        if at < len(starts) and offset >= starts[at] + self._shift:
            return bisect.bisect_right(starts, offset - self._shift, at) - 1
        return bisect.bisect_right(starts, offset, 0, at) - 1

    def position(
        self, offset: int, encoding: PositionEncoding = PositionEncoding.UTF16
    ) -> Position:
        """The position of `offset`, its character counted in `encoding` code units."""
        offset = min(max(0, offset), len(self._text))
        line = self.line_of(offset)
        start = self._start(line)
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
        start = self._start(position.line)
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
