"""The workspace index: load sets and costs, cycles, import depth, budgets, incremental updates."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

from promptls.analysis.graph import (
    MAX_TREE_DEPTH,
    TreeNode,
    WorkspaceIndex,
    load_tree,
    tree_lines,
)
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.config import Settings, settings_from
from tests.conftest import WorkspaceMaker

COMMAND = """---
description: Ship a change
---
```xml
<command purpose="ship">
  <delegation target="modules/dev/change.md">plan</delegation>
  <module>quality/check.md - checks</module>
  <context_budget>Estimated tokens: ~6,000</context_budget>
</command>
```
"""
FILES = {
    ".claude/commands/ship.md": COMMAND,
    ".claude/modules/dev/change.md": (
        "```xml\n<module>\n<depends_on>\nquality/check.md\n</depends_on>\n</module>\n```\n"
    ),
    ".claude/modules/quality/check.md": "Check everything twice.\n",
    ".claude/modules/loop/a.md": "```xml\n<depends_on>\nloop/b.md\n</depends_on>\n```\n",
    ".claude/modules/loop/b.md": "```xml\n<depends_on>\nloop/a.md\n</depends_on>\n```\n",
    "README.md": "not a prompt file\n",
    "notes.txt": "linked text\n",
    "CLAUDE.md": "@d1.md and [notes](notes.txt)\n",
    **{f"d{i}.md": f"@d{i + 1}.md\n" for i in range(1, 8)},
}


def _index(root: Path, **settings: object) -> WorkspaceIndex:
    s = settings_from(settings) if settings else Settings()
    index = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)
    index.index()
    return index


def _p(index: WorkspaceIndex, rel: str) -> str:
    return os.path.join(index.workspace.folders[0], rel)


def _codes(index: WorkspaceIndex, rel: str) -> list[str]:
    return [f.code for f in index.findings(_p(index, rel))]


def test_load_set_and_cost(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES))
    ship = _p(index, ".claude/commands/ship.md")
    files = [index.workspace.relative(p) for p in index.load_set(ship).files]
    assert files == [
        ".claude/commands/ship.md",
        ".claude/modules/dev/change.md",
        ".claude/modules/quality/check.md",
    ]
    assert index.load_tokens(ship) == sum(index.files[p].tokens for p in index.load_set(ship).files)


def test_counts_are_exact(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES))
    counter = TokenCounter()
    for path, fa in index.files.items():
        raw = Path(path).read_bytes().decode("utf-8", errors="replace")
        assert fa.raw_tokens == counter.count_exact(raw)
    ship = index.files[_p(index, ".claude/commands/ship.md")]
    assert ship.tokens == counter.count_exact(COMMAND[COMMAND.index("```xml") :])


def test_counts_handed_out_in_batches_reach_every_file(make_workspace: WorkspaceMaker) -> None:
    """Forty files on two counting threads go in batches of five: each file gets its own
    counts; a count that fails fails the index, not silently."""
    files = {f"notes/n{i:02}.md": "word " * i + "\n" for i in range(40)}
    root = make_workspace(files)
    s = Settings()
    index = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)
    index.analyse_many([str(root / rel) for rel in files], threads=2)
    counter = TokenCounter()
    assert len(index.files) == 40
    for rel, text in files.items():
        assert index.files[str(root / rel)].raw_tokens == counter.count_exact(text)

    class Failing(TokenCounter):
        def count_whole(self, texts: object) -> list[int]:
            raise RuntimeError("no counts")

    broken = WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s, Failing())
    with pytest.raises(RuntimeError, match="no counts"):
        broken.analyse_many([str(root / rel) for rel in files], threads=2)


def test_other_file_joins_when_referenced(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES))
    assert index.get(_p(index, "notes.txt")) is not None
    assert index.get(_p(index, "README.md")) is None


def test_cycle_reported_in_each_file(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES))
    for rel in (".claude/modules/loop/a.md", ".claude/modules/loop/b.md"):
        (cycle,) = [f for f in index.findings(_p(index, rel)) if f.code == "import-cycle"]
        assert "loop/a.md" in cycle.message and "loop/b.md" in cycle.message
        assert cycle.related
    assert len(index.load_set(_p(index, ".claude/modules/loop/a.md")).files) == 2


@pytest.mark.parametrize(("depth", "loaded"), [(5, 6), (3, 4)], ids=["default-5", "setting-3"])
def test_import_depth(make_workspace: WorkspaceMaker, depth: int, loaded: int) -> None:
    index = _index(make_workspace(FILES), importDepth=depth)
    claude = _p(index, "CLAUDE.md")
    files = index.load_set(claude).files
    assert sum(1 for f in files if os.path.basename(f).startswith("d")) == loaded - 1
    culprit = f"d{depth}.md"
    assert "import-depth" in _codes(index, culprit)


def test_copies_found_again_when_a_cut_import_moves(make_workspace: WorkspaceMaker) -> None:
    """A keystroke in the file whose @import the depth limit cuts moves that import: the load
    set is built again, and the copies found in it are looked for again too (they were kept,
    with the places of the text before: found by `make fuzz`)."""
    paragraph = " ".join(
        f"Shared rule number {i} is repeated in two loaded files." for i in range(8)
    )
    root = make_workspace(
        {**FILES, "d1.md": f"@d2.md\n\n{paragraph}\n", "d5.md": f"@d6.md\n\n{paragraph}\n"}
    )
    index = _index(root)
    d5 = _p(index, "d5.md")
    before = [f for f in index.findings(d5) if f.code == "duplicate-content"]
    assert before and "import-depth" in _codes(index, "d5.md")
    text = "A line typed above, with words.\n" + index.files[d5].doc.text
    index.workspace.overlay[d5] = text
    index.update(d5, 2)
    assert index.edits["shifted"] == 1  # (its references moved)
    fresh = _index(root)
    fresh.workspace.overlay[d5] = text
    fresh.update(d5, 2)
    found = [(f.code, f.start, f.end) for f in index.findings(d5)]
    assert found == [(f.code, f.start, f.end) for f in fresh.findings(d5)]
    (copy,) = [f for f in index.findings(d5) if f.code == "duplicate-content"]
    assert text[copy.start : copy.end].startswith("Shared rule number 0")


def test_budgets_and_context_mismatch(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES), loadBudget=100, budgets={"command": 50})
    codes = _codes(index, ".claude/commands/ship.md")
    assert {"load-budget", "token-budget", "context-budget-mismatch"} <= set(codes)


def test_eighty_percent_is_information(make_workspace: WorkspaceMaker) -> None:
    root = make_workspace(FILES)
    index = _index(root)
    ship = _p(index, ".claude/commands/ship.md")
    tokens = index.files[ship].tokens
    index = _index(root, budgets={"command": int(tokens / 0.9)})
    (finding,) = [f for f in index.findings(ship) if f.code == "token-budget"]
    assert finding.severity.label == "information"


def test_severity_override(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES), severity={"import-cycle": "off"})
    assert "import-cycle" not in _codes(index, ".claude/modules/loop/a.md")


def test_update_invalidates_only_what_loads_the_file(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES))
    ship = _p(index, ".claude/commands/ship.md")
    check = _p(index, ".claude/modules/quality/check.md")
    before = index.load_tokens(ship)
    index.load_set(_p(index, "CLAUDE.md"))
    index.workspace.overlay[check] = "Check everything twice, and then a third time for luck.\n"
    affected = index.update(check, version=2)
    assert ship in affected and _p(index, ".claude/modules/dev/change.md") in affected
    assert _p(index, "CLAUDE.md") not in affected
    assert index.load_tokens(ship) > before
    assert index.files[check].version == 2


def test_created_file_resolves_waiting_references(make_workspace: WorkspaceMaker) -> None:
    root = make_workspace({"CLAUDE.md": "@later.md\n"})
    index = _index(root)
    claude = _p(index, "CLAUDE.md")
    assert "unresolved-reference" in _codes(index, "CLAUDE.md")
    (root / "later.md").write_text("now here\n")
    index.update(str(Path(index.workspace.folders[0]) / "later.md"))
    assert "unresolved-reference" not in _codes(index, "CLAUDE.md")
    assert len(index.load_set(claude).files) == 2
    os.remove(root / "later.md")
    index.remove(_p(index, "later.md"))
    assert "unresolved-reference" in _codes(index, "CLAUDE.md")


def test_load_tree_marks_repeats(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES))
    tree = load_tree(index, _p(index, ".claude/commands/ship.md"))
    notes = {index.workspace.relative(c.path): c.note for c in tree.children}
    assert notes[".claude/modules/quality/check.md"] in ("", "loaded above")
    change = next(c for c in tree.children if c.path.endswith("change.md"))
    assert [index.workspace.relative(c.path) for c in change.children] == [
        ".claude/modules/quality/check.md"
    ]


def test_findings_capped_most_severe_first(make_workspace: WorkspaceMaker) -> None:
    """A file with thousands of problems reports `maxProblems` of them, errors before warnings,
    and says how many more there are."""
    body = "a < b & c\n" * 30 + "<open>\n"  # 60 lexical warnings, then an unclosed element
    root = make_workspace({".claude/commands/noisy.md": f"```xml\n<r>\n{body}</r>\n```\n"})
    index = _index(root, maxProblems=10)
    found = index.findings(_p(index, ".claude/commands/noisy.md"))
    assert len(found) == 11
    (more,) = [f for f in found if f.code == "too-many-problems"]
    assert more.message.startswith("51 more problems")
    assert any(f.code == "xml-syntax" and f.severity == 1 for f in found)  # the error is kept
    assert [f.start for f in found] == sorted(f.start for f in found)
    everything = _index(root, maxProblems=0).findings(_p(index, ".claude/commands/noisy.md"))
    assert len(everything) == 61 and "too-many-problems" not in {f.code for f in everything}


def test_the_garbage_collector_is_paused_while_indexing_then_as_it_was(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from promptls.analysis import graph

    root = make_workspace({"CLAUDE.md": "@.claude/modules/a.md\n", ".claude/modules/a.md": "A\n"})
    seen: list[bool] = []
    real = WorkspaceIndex.analyse_many

    def analyse_many(self: WorkspaceIndex, *args: object, **kwargs: object) -> None:
        seen.append(gc.isenabled())
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(WorkspaceIndex, "analyse_many", analyse_many)
    assert gc.isenabled()
    _index(root)
    assert seen and not any(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        _index(root)
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()
    # Builds overlapping (a rebuild while another runs): on again only after the last.
    with graph._collector_paused():
        with graph._collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        with pytest.raises(ValueError), graph._collector_paused():
            raise ValueError
        assert not gc.isenabled()
    assert gc.isenabled()


def test_compression_hints_turned_off_cost_nothing(make_workspace: WorkspaceMaker) -> None:
    """`xml-compressible` turned off: no compression is made for the findings (nor for the
    slow findings an editor asks for after a pause); one is still made when asked for."""
    rule = "    <rule>\n        Keep   rule {}   short.\n    </rule>\n"
    rules = "".join(rule.format(i) for i in range(9))
    text = f"```xml\n<module>\n{rules}</module>\n```\n"
    root = make_workspace({".claude/modules/a.md": text})
    on = _index(root)
    path = _p(on, ".claude/modules/a.md")
    assert "xml-compressible" in _codes(on, ".claude/modules/a.md")
    off = _index(root, severity={"xml-compressible": "off"})
    assert not off.compression_hints
    off.prepare_slow(path)
    assert off.findings(path) == [f for f in on.findings(path) if f.code != "xml-compressible"]
    assert not off._compressions
    assert off.compressions(path) == on.compressions(path) != []


def _state(index: WorkspaceIndex) -> dict[str, object]:
    """What the index knows of each file: its resolutions, load set and findings."""
    return {
        index.workspace.relative(path): (
            [(r.ref.target, r.status, r.path) for r in fa.resolutions],
            sorted(index.load_set(path).files),
            [(f.code, f.start, f.message) for f in index.findings(path)],
        )
        for path, fa in sorted(index.files.items())
    }


@pytest.mark.parametrize("batched", [True, False], ids=["changes", "one-by-one"])
def test_many_changes_on_disk_settle_once(
    make_workspace: WorkspaceMaker, monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    """A branch switch: files deleted, created and changed. Inside `changes()` every file's
    references are resolved again once, at the end, and the index is what a fresh one is; the
    files affected include every file whose references now resolve differently."""
    root = make_workspace(FILES)
    index = _index(root)
    deleted = [".claude/modules/quality/check.md", "d5.md", ".claude/modules/loop/b.md"]
    created = {"later.md": "@d6.md\n", ".claude/modules/quality/check2.md": "Checks.\n"}
    changed = {"CLAUDE.md": "@d1.md and @later.md and [notes](notes.txt)\n"}
    for rel in deleted:
        os.remove(root / rel)
    for rel, text in {**created, **changed}.items():
        (root / rel).write_text(text)
    calls: list[int] = []
    re_resolve = index._re_resolve

    def counted() -> set[str]:
        calls.append(1)
        return re_resolve()

    monkeypatch.setattr(index, "_re_resolve", counted)
    affected: set[str] = set()
    with index.changes() if batched else contextlib.nullcontext(set()) as settled:
        for rel in deleted:
            affected |= index.remove(_p(index, rel))
        for rel in [*created, *changed]:
            affected |= index.update(_p(index, rel))
    affected |= settled
    assert len(calls) == (1 if batched else len(deleted) + len(created))
    assert _state(index) == _state(_index(root))
    for rel in (".claude/commands/ship.md", ".claude/modules/dev/change.md", "d4.md", "CLAUDE.md"):
        assert _p(index, rel) in affected, rel


def _recursive_tree(index: WorkspaceIndex, root: str) -> TreeNode:
    """The load tree as first written, recursively (for trees well within the recursion limit)."""
    members = set(index.load_set(root).files)
    expanded: set[str] = set()

    def build(path: str, ancestors: tuple[str, ...]) -> TreeNode:
        fa = index.get(path)
        tokens = fa.tokens if fa else 0
        if path in ancestors:
            return TreeNode(path, tokens, (), "cycle")
        if path in expanded:
            return TreeNode(path, tokens, (), "loaded above")
        expanded.add(path)
        edges = fa.edges if fa else ()
        return TreeNode(
            path, tokens, tuple(build(c, (*ancestors, path)) for c in edges if c in members)
        )

    return build(root, ())


def _module(*deps: str) -> str:
    lines = "".join(f"{d}.md\n" for d in deps)
    return f"```xml\n<module>\n<depends_on>\n{lines}</depends_on>\n</module>\n```\n"


GRAPH = {
    ".claude/commands/go.md": "```xml\n<command>\n<module>g/a.md - a</module>\n"
    "<module>g/b.md - b</module>\n</command>\n```\n",
    ".claude/modules/g/a.md": _module("g/c", "g/d"),
    ".claude/modules/g/b.md": _module("g/d", "g/a", "g/b"),
    ".claude/modules/g/c.md": _module("g/e"),
    ".claude/modules/g/d.md": _module("g/c", "g/a"),
    ".claude/modules/g/e.md": "The end.\n",
}


def _shape(node: TreeNode, index: WorkspaceIndex) -> str:
    name = Path(node.path).stem + (f"[{node.note}]" if node.note else "")
    inner = ",".join(_shape(c, index) for c in node.children)
    return f"{name}({inner})" if inner else name


@pytest.mark.parametrize(
    ("max_depth", "shape"),
    [
        (64, "go(a(c(e),d(c[loaded above],a[cycle])),b(d[loaded above],a[loaded above],b[cycle]))"),
        (4, "go(a(c(e),d(c[loaded above],a[cycle])),b(d[loaded above],a[loaded above],b[cycle]))"),
        (3, "go(a(c,e,d,c[loaded above],a[cycle]),b(d[loaded above],a[loaded above],b[cycle]))"),
        (2, "go(a,c,e,d,c[loaded above],a[cycle],b,d[loaded above],a[loaded above],b[cycle])"),
    ],
)
def test_load_tree_depth_limit(make_workspace: WorkspaceMaker, max_depth: int, shape: str) -> None:
    """Within the limit the tree is the recursive one; below it, files are listed flat under
    their ancestor at the limit, in the same order, each expanded once, cycles still marked."""
    index = _index(make_workspace(GRAPH))
    go = _p(index, ".claude/commands/go.md")
    assert _shape(load_tree(index, go, max_depth), index) == shape
    assert load_tree(index, go) == _recursive_tree(index, go)


def test_load_tree_of_a_chain_deeper_than_the_recursion_limit(
    make_workspace: WorkspaceMaker,
) -> None:
    n = 3 * sys.getrecursionlimit()
    files = {f".claude/modules/c/m{i}.md": _module(f"c/m{i + 1}") for i in range(n - 1)}
    files[f".claude/modules/c/m{n - 1}.md"] = "The end.\n"
    files[".claude/commands/go.md"] = (
        "```xml\n<command>\n<module>c/m0.md - go</module>\n</command>\n```\n"
    )
    index = _index(make_workspace(files))
    tree = load_tree(index, _p(index, ".claude/commands/go.md"))
    path, node = [tree], tree  # go, m0, m1 ... down to the file at the level above the limit
    while len(node.children) == 1:
        node = node.children[0]
        path.append(node)
    assert len(path) == MAX_TREE_DEPTH - 1
    flat = node.children
    assert [Path(c.path).stem for c in flat] == [f"m{i}" for i in range(MAX_TREE_DEPTH - 2, n)]
    assert all(not c.children and not c.note for c in flat)
    assert len(tree_lines(tree, str)) == n + 1
