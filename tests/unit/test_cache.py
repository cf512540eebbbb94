"""The load-cost cache: bounds, counters, and invalidation of exactly the affected entries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promptls.analysis.cache import Cost, CostCache, FileKey, SizedLRU, SyncLRU
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.workspace import Workspace
from promptls.config import Settings
from tests.conftest import WorkspaceMaker


def _cost(path: str, loads: tuple[str, ...] = ()) -> Cost:
    return Cost(path, 10, 12, (path, *loads), 10, (), 1.0)


def test_counters_and_hit_rate() -> None:
    cache = CostCache()
    key = FileKey("/a", ("disk", 1, 2))
    assert cache.get(key, "reference") is None
    cache.put(key, _cost("/a"))
    assert cache.get(key, "reference") is not None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    assert stats.hit_rate == 0.5
    assert stats.by_purpose == {"reference": {"hits": 1, "misses": 1}}
    assert stats.bytes > 0


@pytest.mark.parametrize(
    ("entries", "size"), [(3, 1 << 20), (100, 2000)], ids=["by-entries", "by-bytes"]
)
def test_bounded_and_evictions_counted(entries: int, size: int) -> None:
    cache = CostCache(max_entries=entries, max_bytes=size)
    for i in range(20):
        cache.put(FileKey(f"/f{i}", ("disk", i, i)), _cost(f"/f{i}"))
    stats = cache.stats()
    assert stats.entries <= entries and stats.bytes <= size
    assert stats.evictions == 20 - stats.entries


def test_invalidate_drops_the_file_and_sets_containing_it() -> None:
    cache = CostCache()
    cache.put(FileKey("/cmd", ("disk", 1, 1)), _cost("/cmd", ("/mod",)))
    cache.put(FileKey("/other", ("disk", 1, 1)), _cost("/other", ("/x",)))
    cache.put(FileKey("/mod", ("disk", 1, 1)), _cost("/mod"))
    assert cache.invalidate("/mod") == 2
    assert [k.path for k in cache.held()] == ["/other"]


FILES = {
    ".claude/commands/a.md": (
        "```xml\n<command>\n<module>m/shared.md - x</module>\n</command>\n```\n"
    ),
    ".claude/commands/b.md": "```xml\n<command>\n<module>m/shared.md - x</module>\n"
    "<module>m/own.md - y</module>\n</command>\n```\n",
    ".claude/commands/c.md": "```xml\n<command>\n<module>m/own.md - y</module>\n</command>\n```\n",
    ".claude/modules/m/shared.md": "shared module\n",
    ".claude/modules/m/own.md": "own module\n",
}


def test_index_invalidates_only_affected_costs(make_workspace: WorkspaceMaker) -> None:
    root = make_workspace(FILES)
    s = Settings()
    index = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)
    index.index()
    paths = {rel: os.path.join(index.workspace.folders[0], rel) for rel in FILES}
    for path in paths.values():
        index.cost(path)
    assert index.costs.stats().entries == 5
    shared = paths[".claude/modules/m/shared.md"]
    index.workspace.overlay[shared] = "shared module, now longer than it was before\n"
    index.update(shared, version=2)
    left = {k.path for k in index.costs.held()}
    assert left == {paths[".claude/commands/c.md"], paths[".claude/modules/m/own.md"]}
    cost, hit, _ = index.cost(paths[".claude/commands/a.md"]) or (None, None, None)
    assert (
        cost is not None
        and not hit
        and cost.load_tokens == index.load_tokens(paths[".claude/commands/a.md"])
    )
    again = index.cost(paths[".claude/commands/a.md"])
    assert again is not None and again[1]


def test_disk_change_changes_the_key(make_workspace: WorkspaceMaker) -> None:
    root = make_workspace(FILES)
    s = Settings()
    index = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)
    index.index()
    own = os.path.join(index.workspace.folders[0], ".claude/modules/m/own.md")
    first = index.get(own)
    assert first is not None and first.stamp[0] == "disk"
    Path(own).write_text("own module, edited on disk\n")
    index.update(own)
    second = index.get(own)
    assert second is not None and second.stamp != first.stamp


def test_sized_lru_is_bounded_by_the_size_of_its_keys() -> None:
    """Many versions of a large document must not pile up: the bound is characters of key, and
    an entry larger than the whole cache is not kept (the caller computes it again)."""
    cache = SizedLRU(maxsize=10)
    cache["abc"], cache["defgh"], cache["ij"] = 1, 2, 3
    assert cache.currsize == 10
    cache["x" * 11] = 4
    assert "x" * 11 not in cache and len(cache) == 3
    cache["klmn"] = 5  # the two least recently used go
    assert dict(cache) == {"ij": 3, "klmn": 5} and cache.currsize == 6


def test_region_checks_stay_bounded_over_many_versions(make_workspace: WorkspaceMaker) -> None:
    root = make_workspace({".claude/commands/big.md": "x\n"})
    s = Settings()
    index = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)
    index.index()
    path = os.path.join(index.workspace.folders[0], ".claude/commands/big.md")
    body = "<a>" + "word " * 20_000 + "</a>"  # 100 K characters of XML
    for i in range(200):  # 20 M characters of distinct regions (a count bound keeps them all)
        index.workspace.overlay[path] = f"```xml\n{body}{i}\n```\n"
        index.update(path, i + 1)
    held = sum(len(text) for text, _masks in index._region_checks)
    # (4 M characters: at least that much, or twice the workspace's XML, after the index)
    assert 0 < held == index._region_checks.currsize <= index._region_checks.maxsize == 4_000_000


def test_resized_keeps_what_fits_the_earliest_stored_going_first() -> None:
    cache = SyncLRU(maxsize=10)
    cache["abc"], cache["defgh"], cache["ij"] = 1, 2, 3
    assert isinstance(cache.resized(20), SyncLRU)
    assert dict(cache.resized(20)) == {"abc": 1, "defgh": 2, "ij": 3}
    smaller = cache.resized(7)
    assert dict(smaller) == {"defgh": 2, "ij": 3} and smaller.maxsize == 7
    assert dict(cache) == {"abc": 1, "defgh": 2, "ij": 3}  # (this one unchanged)


def test_the_check_cache_is_sized_from_the_workspace_xml(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptls.analysis import graph

    region = "<module>" + "step " * 200 + "</module>\n"
    root = make_workspace({f".claude/modules/m{i}.md": f"```xml\n{region}```\n" for i in range(5)})
    s = Settings()
    monkeypatch.setattr(graph, "_CHECKS_MIN", 100)
    index = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)
    assert index._region_checks.maxsize == 16_000_000
    index.index()
    xml = sum(r.end - r.start for fa in index.files.values() for r in fa.doc.regions)
    assert xml == 5 * len(region)
    assert index._region_checks.maxsize == 2 * xml
    assert len(index._region_checks) == 1  # the five are one text, checked once, still held
