"""Offsets <-> positions in the three LSP position encodings, line breaks, UTF-8 sizes,
document changes applied as LSP reads them, and the smallest edits between two texts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptls.analysis.text import (
    LineIndex,
    Position,
    PositionEncoding,
    Range,
    TextChange,
    apply_changes,
    common_prefix,
    first_line_break,
    over_utf8_size,
    smallest_edits,
    utf8_size,
)
from tests.e2e.test_protocol_fuzz import ORDINARY_EDITS, REPRODUCTIONS, SPLITLINES_ONLY
from tests.fuzzing import PROFILE, apply_lsp

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


@pytest.mark.parametrize("char", SPLITLINES_ONLY, ids=lambda c: f"U+{ord(c):04X}")
def test_only_lf_crlf_and_cr_break_lines(char: str) -> None:
    """`str.splitlines()` splits at these; LSP does not."""
    index = LineIndex(f"a{char}b\nc")
    assert index.line_count == 2
    assert index.line_end(0) == 3
    assert index.position(4) == Position(1, 0)
    assert first_line_break(f"a{char}b\r\nc") == 3


@pytest.mark.parametrize(
    ("text", "start", "end", "expected"),
    [
        ("ab\r\ncd", 0, None, 2),
        ("ab\rcd\n", 0, None, 2),
        ("ab\ncd", 0, None, 2),
        ("ab\ncd\r\n", 3, None, 5),
        ("abcd", 0, None, -1),
        ("ab\ncd", 0, 2, -1),
    ],
    ids=["crlf", "lone-cr", "lf", "from-start", "none", "bounded"],
)
def test_first_line_break(text: str, start: int, end: int | None, expected: int) -> None:
    assert first_line_break(text, start, end) == expected


@pytest.mark.parametrize(
    ("text", "size"),
    [("abc", 3), ("é", 2), ("中" * 3, 9), ("😀", 4), ("\ud800", 3), ("", 0)],
    ids=["ascii", "latin", "cjk", "emoji", "lone-surrogate", "empty"],
)
def test_utf8_size(text: str, size: int) -> None:
    assert utf8_size(text) == size
    for limit in range(size + 2):
        assert over_utf8_size(text, limit) is (size > limit)


def _change(line_a: int, char_a: int, line_b: int, char_b: int, text: str) -> TextChange:
    return TextChange(Range(Position(line_a, char_a), Position(line_b, char_b)), text)


def _core(change: Any) -> TextChange:
    """The core's change for an lsprotocol one (from the e2e tables), without importing it."""
    r = change.range
    return _change(r.start.line, r.start.character, r.end.line, r.end.character, change.text)


#: (text, changes, encoding, expected)
CHANGES: list[tuple[str, str, list[TextChange], PositionEncoding, str]] = (
    [
        ("insert", "abc", [_change(0, 1, 0, 1, "X")], U16, "aXbc"),
        ("replace-over-lines", "ab\ncd\nef", [_change(0, 1, 2, 1, "X")], U16, "aXf"),
        ("whole-document", "abc", [TextChange(None, "new")], U16, "new"),
        (
            "one-after-the-other",
            "abc",
            [_change(0, 0, 0, 0, "1\n"), _change(1, 3, 1, 3, "2"), TextChange(None, "x")],
            U16,
            "x",
        ),
        (
            "sequential",
            "abc",
            [_change(0, 0, 0, 0, "1\n"), _change(1, 3, 1, 3, "2")],
            U16,
            "1\nabc2",
        ),
        ("past-line-end-crlf", "ab\r\ncd", [_change(0, 7, 0, 7, "X")], U16, "abX\r\ncd"),
        ("past-line-end-cr", "ab\rcd", [_change(0, 3, 0, 3, "X")], U16, "abX\rcd"),
        ("past-last-line", "ab\ncd", [_change(9, 0, 9, 4, "X")], U16, "ab\ncdX"),
        ("reversed", "abcdef", [_change(0, 5, 0, 1, "")], U16, "af"),
        ("surrogate-pair-utf16", "😀x", [_change(0, 2, 0, 3, "y")], U16, "😀y"),
        ("inside-surrogate-pair", "😀x", [_change(0, 1, 0, 1, "y")], U16, "😀yx"),
        ("emoji-utf8", "😀x", [_change(0, 4, 0, 5, "y")], PositionEncoding.UTF8, "😀y"),
        ("inside-utf8-sequence", "éx", [_change(0, 1, 0, 1, "y")], PositionEncoding.UTF8, "éyx"),
        ("emoji-utf32", "😀x😀", [_change(0, 1, 0, 2, "y")], U32, "😀y😀"),
        ("u2028-utf32", "a\u2028b\nc", [_change(1, 0, 1, 1, "X")], U32, "a\u2028b\nX"),
        ("join-cr-and-lf", "a\rb", [_change(1, 0, 1, 1, "\n")], U16, "a\r\n"),
    ]
    + [
        (f"repro-{name}", text, [_core(change)], U16, expected)
        for name, (text, change, expected) in REPRODUCTIONS.items()
    ]
    + [
        (f"ordinary-{i}", text, [_core(change)], U16, expected)
        for i, (text, change, expected) in enumerate(ORDINARY_EDITS)
    ]
)


@pytest.mark.parametrize(
    ("text", "changes", "encoding", "expected"),
    [c[1:] for c in CHANGES],
    ids=[c[0] for c in CHANGES],
)
def test_apply_changes(
    text: str, changes: list[TextChange], encoding: PositionEncoding, expected: str
) -> None:
    assert apply_changes(text, changes, encoding) == expected


_LSP_BREAK = re.compile(r"(\r\n|\r|\n)")
#: (codec, bytes per code unit) of each position encoding.
_CODECS = {U8: ("utf-8", 1), U16: ("utf-16-le", 2), U32: ("utf-32-le", 4)}


def _naive_offset(text: str, position: Position, encoding: PositionEncoding) -> int:
    """An LSP position's offset, the slow obvious way: split the lines at LSP line breaks, walk
    the line counting code units; past its end is its end, past the last line the text's end,
    inside a character after it."""
    parts = _LSP_BREAK.split(text)  # line, break, line, break, ..., line
    lines, breaks = parts[0::2], parts[1::2]
    if position.line >= len(lines):
        return len(text)
    start = sum(len(lines[i]) + len(breaks[i]) for i in range(position.line))
    units = 0
    for i, ch in enumerate(lines[position.line]):
        if units >= position.character:
            return start + i
        codec, width = _CODECS[encoding]
        units += len(ch.encode(codec, "surrogatepass")) // width
    return start + len(lines[position.line])


def _naive_apply(text: str, change: TextChange, encoding: PositionEncoding) -> str:
    if change.range is None:
        return change.text
    a = _naive_offset(text, change.range.start, encoding)
    b = _naive_offset(text, change.range.end, encoding)
    a, b = min(a, b), max(a, b)
    return text[:a] + change.text + text[b:]


_PIECES = st.sampled_from(
    ["a", "bc", " ", "\n", "\r\n", "\r", "😀", "é", "中", *SPLITLINES_ONLY, "\t", "<x>"]
)
_TEXTS = st.lists(_PIECES, max_size=30).map("".join)
_POSITIONS = st.builds(
    Position, st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=14)
)
_CHANGES = st.one_of(
    st.builds(TextChange, st.builds(Range, _POSITIONS, _POSITIONS), _TEXTS),
    st.builds(TextChange, st.none(), _TEXTS),
)


@PROFILE
@given(
    text=_TEXTS,
    changes=st.lists(_CHANGES, min_size=1, max_size=4),
    encoding=st.sampled_from(list(PositionEncoding)),
)
def test_apply_changes_is_the_naive_reading(
    text: str, changes: list[TextChange], encoding: PositionEncoding
) -> None:
    expected = text
    for change in changes:
        expected = _naive_apply(expected, change, encoding)
    assert apply_changes(text, changes, encoding) == expected
    if encoding is U16:  # the fuzz test's reading of a change (tests/fuzzing.py) agrees
        for change in changes:
            text = apply_lsp(text, change.range, change.text)
        assert text == expected


_EDITS = st.tuples(
    st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=40), _TEXTS
)


@PROFILE
@given(text=_TEXTS, edits=st.lists(_EDITS, min_size=1, max_size=8))
def test_replace_is_a_fresh_index(text: str, edits: list[tuple[int, int, str]]) -> None:
    """Edits one after the other (typing on one line, then before or after it: the starts
    after an edit are moved when read, and the move is added into them when an edit lands
    before) give the index of the text made from scratch."""
    index = LineIndex(text)
    for x, y, inserted in edits:
        a, b = sorted((min(x, len(text)), min(y, len(text))))
        index.position(a, U16)  # fill the cache of the line before the edit, for long lines
        index = index.replace(a, b, inserted)
        text = text[:a] + inserted + text[b:]
        fresh = LineIndex(text)
        assert index.text == text
        assert index.line_count == fresh.line_count
        for line in range(-1, index.line_count + 1):
            assert index.line_start(line) == fresh.line_start(line)
            assert index.line_end(line) == fresh.line_end(line)
            assert index.line_end(line, include_newline=True) == fresh.line_end(
                line, include_newline=True
            )
        for offset in range(-1, len(text) + 2):
            assert index.line_of(offset) == fresh.line_of(offset)
            position = fresh.position(offset, U16)
            assert index.position(offset, U16) == position
            assert index.offset(position, U16) == fresh.offset(position, U16)


def test_typing_on_one_line_keeps_the_starts_after_it() -> None:
    """Characters typed one after the other on one line leave the list of the later lines'
    starts as it was (the move is added when they are read); an edit before them adds it."""
    text = "".join(f"line {i}\n" for i in range(50))
    index = LineIndex(text)
    at = text.index("line 20") + 4
    for k in range(5):
        index = index.replace(at + k, at + k, "x")
        text = text[: at + k] + "x" + text[at + k :]
    later = index._starts[30]
    assert later == LineIndex(text).line_start(30) - 5  # kept, moved when read
    assert index.line_start(30) == LineIndex(text).line_start(30)
    index = index.replace(3, 3, "\n")  # before them: the earlier move goes into the starts
    text = text[:3] + "\n" + text[3:]
    assert index._starts[31] == LineIndex(text).line_start(31) - 1  # (this edit's kept apart)
    assert [index.line_start(i) for i in range(52)] == [
        LineIndex(text).line_start(i) for i in range(52)
    ]


@pytest.mark.parametrize("encoding", list(PositionEncoding), ids=lambda e: e.value)
def test_replace_keeps_long_lines_exact(encoding: PositionEncoding) -> None:
    line = "é😀ab" * 700  # longer than a block, not ASCII: positions go through the block table
    text = f"{line}\n{line}\r\n{line}"
    index = LineIndex(text)
    for offset in (5, 3000, len(line) + 2000, len(text) - 7):
        index.position(offset, encoding)
    for a, b, inserted in [(10, 10, "x"), (len(line) + 5, len(line) + 9, "中\r"), (0, 1, "")]:
        index = index.replace(a, b, inserted)
        text = text[:a] + inserted + text[b:]
        fresh = LineIndex(text)
        for offset in range(0, len(text) + 1, 37):
            assert index.position(offset, encoding) == fresh.position(offset, encoding)
            position = fresh.position(offset, encoding)
            assert index.offset(position, encoding) == fresh.offset(position, encoding)


# --------------------------------------------------------------------------------------------
# smallest_edits
# --------------------------------------------------------------------------------------------


def _edited(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in reversed(edits):
        text = text[:start] + new + text[end:]
    return text


def _well_formed_edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """`smallest_edits(old, new)`, checked: it makes `new`, each edit changes something, and
    they are sorted, inside `old`, apart (none touching the next, so no client has to order two
    edits at one position) and never between a CR and its LF."""
    edits = smallest_edits(old, new)
    assert _edited(old, edits) == new
    pos = -1
    for start, end, text in edits:
        assert pos < start <= end <= len(old) or (pos == -1 and start == 0 <= end <= len(old))
        assert old[start:end] != text
        for at in (start, end):
            assert not (0 < at < len(old) and old[at - 1] == "\r" and old[at] == "\n")
        pos = end
    return edits


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("<a/>", "<a/>", []),
        # indentation and line breaks removed, run by run; text white space collapsed
        (
            "  <a>\n    <b> hi   there </b>\n  </a>\n",
            "<a><b> hi there </b></a>\n",
            [(0, 2, ""), (5, 10, ""), (17, 19, ""), (29, 32, "")],
        ),
        ("<a>\n    <b/>\n</a>", "<a>\n<b/>\n</a>", [(4, 8, "")]),  # (the line break kept)
        # a tag rewritten: only what differs
        ("<a></a>\n<b>x</b>", "<a/><b>x</b>", [(2, 6, "/"), (7, 8, "")]),
        (
            '<a  x = "1" ></a>\n<b/>',
            '<a x="1"/><b/>',
            [(3, 4, ""), (5, 6, ""), (7, 8, ""), (11, 16, "/"), (17, 18, "")],
        ),
        # a comment removed, short or long (past what is tried pair by pair), or added
        ("<a><!-- c --> <b/></a>", "<a><b/></a>", [(4, 15, "")]),
        ("<a><!--" + "c" * 200 + "--> <b/></a>", "<a><b/></a>", [(4, 212, "")]),
        (
            "<a><b/></a>",
            "<a><!--" + "c" * 200 + "--><b/></a>",
            [(4, 4, "!--" + "c" * 200 + "--><")],
        ),
        # white space added where there was none
        ("<a><b/></a>", "<a>\n <b/>\n</a>", [(3, 3, "\n "), (7, 7, "\n")]),
        # a CR and its LF go together
        ("<a>\r\n  <b/>\r\n</a>", "<a><b/></a>", [(3, 7, ""), (11, 13, "")]),
        ("<a>\r\n</a>", "<a>\n</a>", [(3, 5, "\n")]),
        ("<a>\r\n</a>", "<a>\r</a>", [(3, 5, "\r")]),
        ("", "abc", [(0, 0, "abc")]),
        ("abc", "", [(0, 3, "")]),
        ("x", "y", [(0, 1, "y")]),
    ],
)
def test_smallest_edits(old: str, new: str, expected: list[tuple[int, int, str]]) -> None:
    assert _well_formed_edits(old, new) == expected


def test_smallest_edits_of_a_long_block_touch_only_what_changed() -> None:
    lines = [f"    <step n='{k}'>  Do   thing {k}  </step>" for k in range(3000)]
    old = "<steps>\n" + "\n".join(lines) + "\n</steps>\n"
    new = old.replace("    ", "").replace("   ", " ").replace("<step n='7'>", "<step n='seven'>")
    edits = _well_formed_edits(old, new)
    assert len(edits) == 2 * 3000 + 1  # indentation and the run in the text, line by line; n
    assert (old.index("'7'") + 1, old.index("'7'") + 2, "seven") in edits
    assert all(old[s:e].isspace() for s, e, t in edits if t != "seven")


def test_smallest_edits_of_texts_that_differ_everywhere_stay_few() -> None:
    """Past 4,096 places where the texts part, the rest is one edit (aligning texts that differ
    everywhere would take long, and they are no compression)."""
    old = "".join(f"<row>value {k:06d} A</row>\n" for k in range(10_000))
    new = old.replace(" A<", " B<")
    edits = _well_formed_edits(old, new)
    assert len(edits) <= 4097
    assert edits[-1][1] - edits[-1][0] > len(old) // 2


def test_smallest_edits_never_gives_a_wrong_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the alignment ever be wrong, the answer is the one edit between the common prefix
    and suffix."""
    import promptls.analysis.text as text_module

    monkeypatch.setattr(text_module, "_aligned", lambda a, b: iter([(0, 1, 2)]))
    assert _well_formed_edits("<a> <b/></a>", "<a><c/></a>") == [(3, 6, "<c")]


# Texts made of XML-ish pieces, and their edits: white space changed, pieces rewritten.
_XMLISH = st.lists(
    st.sampled_from(["<a>", "</a>", "<b/>", "<!-- c -->", "x", "yz", "&amp;", '="1"', "é", "😀"])
    | st.sampled_from([" ", "  ", "\n", "\r\n", "\t", "\n    ", "\r"]),
    max_size=40,
).map("".join)


@st.composite
def _rewrites(draw: st.DrawFn) -> tuple[str, str]:
    old = draw(_XMLISH)
    new = old
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(new)))
        end = draw(st.integers(at, min(len(new), at + 6)))
        new = new[:at] + draw(_XMLISH.filter(lambda t: len(t) < 12)) + new[end:]
    if draw(st.booleans()):
        new = " ".join(new.split())
    return old, new


@PROFILE
@given(pair=_rewrites())
def test_smallest_edits_make_the_new_text(pair: tuple[str, str]) -> None:
    old, new = pair
    edits = _well_formed_edits(old, new)
    if "".join(old.split()) == "".join(new.split()):
        # white space only: every edit replaces white space with white space
        assert all(not old[s:e].strip() and not t.strip() for s, e, t in edits)


@PROFILE
@given(a=_TEXTS, b=_TEXTS, i=st.integers(0, 40), j=st.integers(0, 40))
def test_common_prefix(a: str, b: str, i: int, j: int) -> None:
    i, j = min(i, len(a)), min(j, len(b))
    n = common_prefix(a, b, i, j)
    assert a[i : i + n] == b[j : j + n]
    assert i + n == len(a) or j + n == len(b) or a[i + n] != b[j + n]
