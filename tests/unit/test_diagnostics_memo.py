"""The diagnostics built for a file's earlier text are taken again after an edit only where the
edit cannot have moved them (`diagnostics._Earlier`): every diagnostic found again has exactly
the range a fresh build gives for the new text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from promptls.analysis.text import LineIndex, PositionEncoding
from promptls.lsp.convert import lsp_range
from promptls.lsp.diagnostics import _Earlier
from promptls.lsp.server import BuiltDiagnostic, DiagnosticMemo

_CHARS = st.sampled_from(["a", "b", " ", "\n", "\r", "\r\n", "é", "😀", "<", "x"])
_TEXT = st.lists(_CHARS, max_size=40).map("".join)


def _key(start: int, end: int) -> tuple[object, ...]:
    return ("xml-syntax", 1, "message", None, start, end)


def _built(
    lines: LineIndex, encoding: PositionEncoding
) -> dict[tuple[object, ...], BuiltDiagnostic]:
    n = len(lines.text)
    return {
        _key(s, e): BuiltDiagnostic(
            types.Diagnostic(range=lsp_range(lines.range(s, e, encoding)), message="message")
        )
        for s in range(n + 1)
        for e in range(s, min(n, s + 6) + 1)
    }


@settings(max_examples=300, deadline=None)
@given(
    old=_TEXT,
    at=st.integers(0, 40),
    removed=st.integers(0, 4),
    inserted=st.lists(_CHARS, max_size=3).map("".join),
    encoding=st.sampled_from(list(PositionEncoding)),
)
def test_what_is_found_again_has_the_new_texts_range(
    old: str, at: int, removed: int, inserted: str, encoding: PositionEncoding
) -> None:
    at = min(at, len(old))
    new = old[:at] + inserted + old[at + removed :]
    old_lines, new_lines = LineIndex(old), LineIndex(new)
    earlier = _Earlier(
        DiagnosticMemo(old_lines, encoding, _built(old_lines, encoding)), new_lines, encoding
    )
    for s in range(len(new) + 1):
        for e in range(s, min(len(new), s + 6) + 1):
            found = earlier.get(_key(s, e))
            if found is not None:
                assert found.diagnostic.range == lsp_range(new_lines.range(s, e, encoding)), (s, e)


@pytest.mark.parametrize("typed", ["x", "\n"], ids=["character", "line break"])
def test_a_keystroke_keeps_what_it_did_not_touch(typed: str) -> None:
    """Typing on line 50 of 100: the diagnostics above it are the same objects (their JSON text
    is not made again); those on the lines below too, or, when a line was added, moved down one
    line. Only those on the edited line are built again."""
    old = "".join(f"line {i} <b>text</b>\n" for i in range(100))
    at = old.index("line 50") + 5
    new = old[:at] + typed + old[at:]
    encoding = PositionEncoding.UTF16
    old_lines = LineIndex(old)
    memo = _built(old_lines, encoding)
    earlier = _Earlier(DiagnosticMemo(old_lines, encoding, memo), LineIndex(new), encoding)
    above = old.index("line 10")
    assert earlier.get(_key(above, above + 4)) is memo[_key(above, above + 4)]
    below = old.index("line 70")
    found = earlier.get(_key(below + len(typed), below + len(typed) + 4))
    assert found is not None
    kept = memo[_key(below, below + 4)]
    if typed == "\n":
        assert found is not kept
        assert found.diagnostic.range.start == types.Position(71, 0)
        assert kept.diagnostic.range.start == types.Position(70, 0)  # (left as it was)
    else:
        assert found is kept
    assert earlier.get(_key(at, at + 1)) is None  # on the edited line: built again


def test_another_encoding_reuses_nothing() -> None:
    lines = LineIndex("é <a>\n")
    memo = DiagnosticMemo(lines, PositionEncoding.UTF8, _built(lines, PositionEncoding.UTF8))
    assert _Earlier(memo, lines, PositionEncoding.UTF16).get(_key(0, 2)) is None
    assert _Earlier(memo, lines, PositionEncoding.UTF8).get(_key(0, 2)) is not None
