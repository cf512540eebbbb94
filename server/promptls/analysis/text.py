"""Offsets <-> (line, character) in UTF-8, UTF-16 and UTF-32 code units.

Offsets throughout the core are Python string indices (code points) into a file's decoded text.
Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r``, as the LSP specification says.
"""

from __future__ import annotations

import bisect
import enum
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
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


# --------------------------------------------------------------------------------------------
# The smallest edits between two texts
# --------------------------------------------------------------------------------------------

_XML_SPACE = re.compile(r"[ \t\r\n]+")
_RESYNC_NEAR = 64
"""How many characters `_resync` skips at most on each side, looking for the nearest agreement."""
_RESYNC_FAR = 1 << 16
"""How far `_resync` looks for a run of characters skipped on one side only (a comment)."""
_RESYNC_KEY = 16
"""How many characters must agree where the two texts are taken to meet again."""
_RESYNC_MAX = 4096
"""How many places where the texts part `_aligned` looks at, at most."""


def common_prefix(a: str, b: str, i: int = 0, j: int = 0) -> int:
    """The length of the longest common prefix of `a[i:]` and `b[j:]` (see `_agreeing`)."""
    return _agreeing(
        min(len(a) - i, len(b) - j), lambda lo, hi: a[i + lo : i + hi] == b[j + lo : j + hi]
    )


def common_suffix(a: str, b: str, limit: int | None = None) -> int:
    """The length of the longest common suffix of `a` and `b`, at most `limit` (see
    `_agreeing`)."""
    n_a, n_b = len(a), len(b)
    most = min(n_a, n_b) if limit is None else min(limit, n_a, n_b)
    return _agreeing(most, lambda lo, hi: a[n_a - hi : n_a - lo] == b[n_b - hi : n_b - lo])


def _agreeing(limit: int, same: Callable[[int, int], bool]) -> int:
    """The largest k <= `limit` such that the texts agree over [0, k), where `same(lo, hi)`
    compares them over [lo, hi) (slices, at C speed): spans doubling in length until one
    differs, then halving into that one (the time is that of the agreement found, not of the
    texts)."""
    lo, step = 0, 16
    while lo < limit:
        hi = min(limit, lo + step)
        if not same(lo, hi):
            while hi - lo > 1:  # the first difference lies in [lo, hi)
                mid = (lo + hi) // 2
                if same(lo, mid):
                    lo = mid
                else:
                    hi = mid
            return lo
        lo, step = hi, step * 2
    return limit


def smallest_edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """Edits that make `new` of `old`, each kept to what changes: sorted, disjoint and none
    touching the next, as (start, end, text) with offsets into `old`. For a compression, which
    changes white space and rewrites a few tags (`<a></a>` to `<a/>`), that is the white space
    removed line by line and each tag rewritten, not the block replaced whole: an editor keeps
    the cursor, the folds and the marks inside it, and its undo shows what changed.

    The texts are aligned on what is not XML white space: each side's characters in order,
    matched for as long as they agree, and where they stop agreeing, matched again at the
    nearest point where 16 characters agree again (or the rest of both). Between matched
    characters, white space that differs is an edit; what lies between two matched stretches
    is one edit. The edits are checked by applying them; should an alignment ever be wrong, the
    answer is the one edit between the longest common prefix and suffix (never a wrong edit,
    and never one that cuts a `\r\n`, like every other)."""
    if old == new:
        return []
    a, b = _Spaced(old), _Spaced(new)
    edits: list[tuple[int, int, str]] = []
    # Each matched stretch (i, j, n): a.chars[i:i+n] == b.chars[j:j+n]; what lies between two
    # stretches (and before the first, after the last) is one edit where the texts differ.
    end_a = end_b = 0  # (the old and new text after the last matched character)
    for i, j, n in [*_aligned(a.chars, b.chars), (len(a.chars), len(b.chars), 0)]:
        _add_edit(edits, old, end_a, a.at(i), new[end_b : b.at(j)])
        if n == 0:
            break
        # The white space between the stretch's characters, numbered as in `old`.
        ka, stop_a = bisect.bisect_right(a.keys, i), bisect.bisect_left(a.keys, i + n)
        kb, stop_b = bisect.bisect_right(b.keys, j), bisect.bisect_left(b.keys, j + n)
        shift = i - j
        while ka < stop_a or kb < stop_b:
            ga = a.keys[ka] if ka < stop_a else i + n
            gb = b.keys[kb] + shift if kb < stop_b else i + n
            if ga <= gb:
                s, e = a.spans[ka]
                ka += 1
            else:
                s = e = a.at(gb)
            if gb <= ga:
                bs, be = b.spans[kb]
                kb += 1
                _add_edit(edits, old, s, e, new[bs:be])
            else:
                _add_edit(edits, old, s, e, "")
        end_a, end_b = a.at(i + n - 1) + 1, b.at(j + n - 1) + 1
    merged: list[tuple[int, int, str]] = []
    for edit in edits:
        if merged and merged[-1][1] >= edit[0]:  # (touching: one edit)
            start, end, text = merged[-1]
            merged[-1] = (start, edit[1], text + old[end : edit[0]] + edit[2])
        else:
            merged.append(edit)
    if apply_spans(old, merged) != new:  # (the alignment is checked, not trusted)
        whole: list[tuple[int, int, str]] = []
        _add_edit(whole, old, 0, len(old), new)
        return whole
    return merged


class _Spaced:
    """A text's characters other than XML white space (`chars`), and its runs of white space
    (`spans`), each numbered by how many of those characters come before it (`keys`)."""

    __slots__ = ("chars", "keys", "length", "shifts", "spans")

    def __init__(self, text: str) -> None:
        self.spans = [m.span() for m in _XML_SPACE.finditer(text)]
        self.shifts = list(accumulate(e - s for s, e in self.spans))
        self.keys = [s - (self.shifts[k - 1] if k else 0) for k, (s, _) in enumerate(self.spans)]
        self.chars = _XML_SPACE.sub("", text) if self.spans else text
        self.length = len(text)

    def at(self, k: int) -> int:
        """Where the k-th of `chars` stands in the text (its end, for k = len(chars))."""
        if k >= len(self.chars):
            return self.length
        m = bisect.bisect_right(self.keys, k)
        return k + (self.shifts[m - 1] if m else 0)


def _aligned(a: str, b: str) -> Iterator[tuple[int, int, int]]:
    """The stretches (i, j, n) where `a[i:i+n] == b[j:j+n]`, in order (see `smallest_edits`);
    after `_RESYNC_MAX` places where they part, the rest is left to one edit (two texts that
    differ everywhere are not a compression, and would take long to align)."""
    i = j = 0
    for _ in range(_RESYNC_MAX):
        if i >= len(a) or j >= len(b):
            return
        n = common_prefix(a, b, i, j)
        if n:
            yield i, j, n
            i, j = i + n, j + n
        met = _resync(a, b, i, j) if i < len(a) and j < len(b) else None
        if met is None:
            return
        i, j = met


def _resync(a: str, b: str, i: int, j: int) -> tuple[int, int] | None:
    """The nearest (i2, j2) past (i, j) where `a` and `b` agree again for `_RESYNC_KEY`
    characters, or to the end of both; None when there is none within reach."""

    # Near: the fewest characters skipped in all, each side skipping up to `_RESYNC_NEAR`
    # (a tag rewritten); for each skip in `a`, the nearest agreement in `b` found at C speed.
    best: tuple[int, int, int] | None = None
    for skip_a in range(min(_RESYNC_NEAR, len(a) - i) + 1):
        if best is not None and skip_a >= best[0]:
            break
        x = i + skip_a
        if len(a) - x < _RESYNC_KEY:  # (the rest of `a`: agreeing means the same rest)
            y = len(b) - (len(a) - x)
            found_y = y if j <= y <= j + _RESYNC_NEAR and a[x:] == b[y:] else -1
        else:
            found_y = b.find(a[x : x + _RESYNC_KEY], j, j + _RESYNC_NEAR + _RESYNC_KEY)
        if found_y >= 0 and (x, found_y) != (i, j):
            total = skip_a + found_y - j
            if best is None or total < best[0]:
                best = (total, x, found_y)
    if best is not None:
        return best[1], best[2]
    # Far: a run only one side has (a comment removed).
    found = []
    x = _skipped(a, b, i, j)
    if x >= 0:
        found.append((x - i, x, j))
    y = _skipped(b, a, j, i)
    if y >= 0:
        found.append((y - j, i, y))
    return min(found)[1:] if found else None


def _skipped(a: str, b: str, i: int, j: int) -> int:
    """The nearest x past i, within `_RESYNC_FAR`, where `a[x:]` agrees with `b[j:]` (as in
    `_resync`); -1 if none."""
    rest = len(b) - j
    if rest < _RESYNC_KEY:
        x = len(a) - rest
        return x if i < x <= i + _RESYNC_FAR and a[x:] == b[j:] else -1
    return a.find(b[j : j + _RESYNC_KEY], i + 1, i + _RESYNC_FAR + _RESYNC_KEY)


def _add_edit(edits: list[tuple[int, int, str]], old: str, start: int, end: int, text: str) -> None:
    """Add `old[start:end]` → `text`, less what the two have in common at either end (never
    cutting a `\\r\\n` in two: a position between them is no LSP position)."""
    before = old[start:end]
    if before == text:
        return
    k = common_prefix(before, text)
    if 0 < k < len(before) and before[k - 1] == "\r" and before[k] == "\n":
        k -= 1
    s = common_suffix(before, text, min(len(before), len(text)) - k)
    cut = len(before) - s
    if s > 0 and cut > 0 and before[cut - 1] == "\r" and before[cut] == "\n":
        s -= 1
    edits.append((start + k, end - s, text[k : len(text) - s]))


def apply_spans(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """`text` with each (start, end, new text) of `spans` (sorted, disjoint) applied."""
    parts: list[str] = []
    pos = 0
    for start, end, new in spans:
        parts.append(text[pos:start])
        parts.append(new)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
