"""The load-cost cache: each file's cost computed once per content version, served from memory.

Keyed by file identity and content (path + mtime/size for a file on disk, path + version for an
editor buffer), bounded in entries and in bytes, with hit, miss and eviction counters. A change
to a file drops its entry and every entry whose load set contains it, nothing more.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache

Stamp = tuple[Any, ...]
"""`("disk", mtime_ns, size)` or `("buffer", version)`: what a file's content version is."""


@dataclass(frozen=True, slots=True)
class FileKey:
    """A file at one content version."""

    path: str
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class Cost:
    """What loading a file costs."""

    path: str
    tokens: int
    raw_tokens: int
    load_files: tuple[str, ...]
    load_tokens: int
    references: tuple[tuple[str, int], ...]
    """Each directly loaded file with its own tokens, in reference order."""
    cold_ms: float
    """Measured time to read, parse, tokenize and resolve the file."""


def _size(cost: Cost) -> int:
    """Approximate bytes held by an entry."""
    strings = sum(len(p) for p in cost.load_files) + sum(len(p) for p, _ in cost.references)
    return (
        200
        + sys.getsizeof(cost.path)
        + strings
        + 16 * (len(cost.load_files) + len(cost.references))
    )


@dataclass(slots=True)
class CacheStats:
    """Counters of a `CostCache`."""

    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    invalidations: int
    by_purpose: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        """Hits over lookups (0 when there were none)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_json(self) -> dict[str, Any]:
        """The stats as `promptls/stats` and `promptls stats` report them."""
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "maxEntries": self.max_entries,
            "maxBytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "invalidations": self.invalidations,
            "hitRate": round(self.hit_rate, 4),
            "byPurpose": self.by_purpose,
        }


class _Bounded(LRUCache[FileKey, Cost]):
    """An LRU cache bounded in bytes (`maxsize`) and in entries, counting evictions."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=_size)
        self.max_entries = max_entries
        self.evictions = 0
        self._evicting = False

    def popitem(self) -> tuple[FileKey, Cost]:
        item = super().popitem()
        if self._evicting:
            self.evictions += 1
        return item

    def __setitem__(self, key: FileKey, value: Cost) -> None:
        self._evicting = True
        try:
            super().__setitem__(key, value)
            while len(self) > self.max_entries:
                self.popitem()
        finally:
            self._evicting = False


class CostCache:
    """Thread-safe store of `Cost`s with the counters the stats report."""

    def __init__(self, max_entries: int = 8192, max_bytes: int = 32 << 20) -> None:
        self._cache = _Bounded(max_entries, max_bytes)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self._purposes: dict[str, dict[str, int]] = {}

    def get(self, key: FileKey, purpose: str = "other") -> Cost | None:
        """The cost at `key`, counting a hit or a miss (under `purpose` too)."""
        with self._lock:
            cost = self._cache.get(key)
            counts = self._purposes.setdefault(purpose, {"hits": 0, "misses": 0})
            if cost is None:
                self.misses += 1
                counts["misses"] += 1
            else:
                self.hits += 1
                counts["hits"] += 1
            return cost

    def put(self, key: FileKey, cost: Cost) -> None:
        """Store a freshly computed cost."""
        with self._lock:
            self._cache[key] = cost

    def invalidate(self, path: str) -> int:
        """Drop the entries of `path` and of every file whose load set contains it."""
        with self._lock:
            doomed = [k for k, c in self._cache.items() if k.path == path or path in c.load_files]
            for key in doomed:
                del self._cache[key]
            self.invalidations += len(doomed)
            return len(doomed)

    def clear(self) -> None:
        """Drop everything (settings changed)."""
        with self._lock:
            self._cache.clear()

    def held(self) -> list[FileKey]:
        """The keys held now (for tests and stats)."""
        with self._lock:
            return list(self._cache.keys())

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(
                entries=len(self._cache),
                bytes=int(self._cache.currsize),
                max_entries=self._cache.max_entries,
                max_bytes=int(self._cache.maxsize),
                hits=self.hits,
                misses=self.misses,
                evictions=self._cache.evictions,
                invalidations=self.invalidations,
                by_purpose={k: dict(v) for k, v in self._purposes.items()},
            )


class SizedLRU(LRUCache[Any, Any]):
    """An LRU cache bounded by the total size of its keys (`sizeof(key)`, e.g. characters of
    text), not by how many there are: a thousand versions of a 500 KB document must not hold
    half a gigabyte. An entry larger than the whole cache is not kept."""

    def __init__(self, maxsize: int, sizeof: Callable[[Any], int] = len) -> None:
        # The size cachetools asks for is the size of the key being stored (see __setitem__).
        super().__init__(maxsize=maxsize, getsizeof=lambda _value: self._size)
        self._sizeof_key = sizeof
        self._size = 1

    def __setitem__(self, key: Any, value: Any) -> None:
        size = max(1, self._sizeof_key(key))
        if size > self.maxsize:
            return
        self._size = size
        super().__setitem__(key, value)

    def resized(self, maxsize: int) -> SizedLRU:
        """A cache of the same kind bounded by `maxsize`, holding this one's entries (those
        stored first are the first to go when they do not all fit)."""
        other = type(self)(maxsize, self._sizeof_key)
        for key, value in list(self.items()):
            other[key] = value
        return other


class SyncLRU(SizedLRU):
    """A `SizedLRU` safe to share between the indexing thread and the editor's."""

    def __init__(self, maxsize: int, sizeof: Callable[[Any], int] = len) -> None:
        super().__init__(maxsize, sizeof)
        self._lock = threading.RLock()

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        with self._lock:
            return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)

    def resized(self, maxsize: int) -> SizedLRU:
        with self._lock:
            return super().resized(maxsize)
