"""File kinds decided by path globs (`**` matches any number of folders, at any depth)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from promptls.config import KINDS


@functools.lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `**/` any folders (or none), `*` within a name, `?` one character."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append(r"(?:[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, patterns: Sequence[str]) -> bool:
    """Whether the posix relative `path` matches any of the globs."""
    return any(glob_regex(p).match(path) for p in patterns)


def kind_of(path: str, kinds: Mapping[str, Sequence[str]]) -> str:
    """The kind of the posix path relative to its workspace folder (`other` when none matches)."""
    for kind in KINDS:
        patterns = kinds.get(kind)
        if patterns and matches(path, patterns):
            return kind
    return "other"
