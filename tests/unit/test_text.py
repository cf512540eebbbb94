"""Offsets <-> positions in the three LSP position encodings."""

from __future__ import annotations

import pytest

from promptls.analysis.text import LineIndex, Position, PositionEncoding

U8, U16, U32 = PositionEncoding.UTF8, PositionEncoding.UTF16, PositionEncoding.UTF32

CASES = [
    ("ascii", "abc\ndef", 5, U16, Position(1, 1)),
    ("crlf", "ab\r\ncd", 5, U16, Position(1, 1)),
    ("lone-cr", "ab\rcd", 4, U16, Position(1, 1)),
    ("emoji-utf16", "a😀b\nx", 2, U16, Position(0, 3)),
    ("emoji-utf8", "a😀b\nx", 2, U8, Position(0, 5)),
    ("emoji-utf32", "a😀b\nx", 2, U32, Position(0, 2)),
    ("cjk-utf16", "中文x", 2, U16, Position(0, 2)),
    ("cjk-utf8", "中文x", 2, U8, Position(0, 6)),
    ("end-of-text", "ab\n", 3, U16, Position(1, 0)),
    ("past-end-clamps", "ab", 99, U16, Position(0, 2)),
]


@pytest.mark.parametrize(
    ("text", "offset", "encoding", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_position(text: str, offset: int, encoding: PositionEncoding, expected: Position) -> None:
    index = LineIndex(text)
    assert index.position(offset, encoding) == expected
    assert index.offset(expected, encoding) == min(offset, len(text))


ROUND_TRIP = ["plain\ntext", "😀😀\r\n中文\rend", "", "\n\n", "é\u0301 x\r\n"]


@pytest.mark.parametrize(
    "text", ROUND_TRIP, ids=["plain", "mixed", "empty", "blank-lines", "combining"]
)
@pytest.mark.parametrize("encoding", list(PositionEncoding), ids=lambda e: e.value)
def test_round_trip(text: str, encoding: PositionEncoding) -> None:
    index = LineIndex(text)
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset + 1] == "\r\n":
            continue  # between \r and \n is not a position
        assert index.offset(index.position(offset, encoding), encoding) == offset


OFFSET_CLAMPS = [
    ("character-past-line-end", "ab\ncd", Position(0, 10), 2),
    ("line-past-end", "ab\ncd", Position(5, 0), 5),
    ("inside-surrogate-pair", "😀x", Position(0, 1), 1),
]


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [c[1:] for c in OFFSET_CLAMPS],
    ids=[c[0] for c in OFFSET_CLAMPS],
)
def test_offset_clamps(text: str, position: Position, expected: int) -> None:
    assert LineIndex(text).offset(position, U16) == expected


def test_line_bounds() -> None:
    index = LineIndex("ab\r\ncd\nef")
    assert index.line_count == 3
    assert [index.line_end(i) for i in range(3)] == [2, 6, 9]
    assert index.line_end(0, include_newline=True) == 4
