"""Every reference form of the formats, and how each resolves, confined to the workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptls.analysis.document import parse_document
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.references import Reference, Resolution, Resolver, extract_references
from promptls.analysis.workspace import Workspace
from promptls.config import Settings, load_settings
from tests.conftest import WorkspaceMaker

EXTRACT = [
    ("memory-import", "memory", "See @docs/style.md for style.\n", [("import", "docs/style.md")]),
    ("import-home", "memory", "@~/.claude/mine.md\n", [("import", "~/.claude/mine.md")]),
    ("import-trailing-dot", "memory", "Read @docs/a.md.\n", [("import", "docs/a.md")]),
    ("email-is-not-import", "memory", "mail me@example.com\n", []),
    ("handle-is-not-import", "memory", "thanks @someone\n", []),
    ("import-in-code-span", "memory", "`@docs/a.md`\n", []),
    ("import-in-fence", "memory", "```\n@docs/a.md\n```\n", []),
    (
        "delegation",
        "command",
        '```xml\n<delegation target="modules/x/y.md">go</delegation>\n```\n',
        [("delegation", "modules/x/y.md")],
    ),
    (
        "pattern",
        "command",
        '```xml\n<uses_pattern from="patterns/tdd.md">r</uses_pattern>\n```\n',
        [("pattern", "patterns/tdd.md")],
    ),
    (
        "module-element",
        "command",
        '```xml\n<module condition="always">quality/c.md - checks</module>\n```\n',
        [("module", "quality/c.md")],
    ),
    (
        "module-attribute",
        "command",
        '```xml\n<step module="patterns/y.md"/>\n```\n',
        [("module-attribute", "patterns/y.md")],
    ),
    (
        "depends-on-lines",
        "module",
        "```xml\n<depends_on>\n  quality/a.md for checks\n  - patterns/b.md\n  prose line\n"
        "</depends_on>\n```\n",
        [("dependency", "quality/a.md"), ("dependency", "patterns/b.md")],
    ),
    (
        "provides-to",
        "module",
        "```xml\n<provides_to>\n  commands/x.md\n</provides_to>\n```\n",
        [("provides", "commands/x.md")],
    ),
    (
        "component-line",
        "component",
        "Intro\ncomponents/a/b.md\n",
        [("component", "components/a/b.md")],
    ),
    ("component-in-bash-fence", "component", "```bash\ncomponents/a/b.md\n```\n", []),
    ("markdown-link", "module", "[checks](../quality/c.md#top)\n", [("link", "../quality/c.md")]),
    ("url-link-ignored", "module", "[site](https://x.org/a.md) [a](#anchor)\n", []),
    ("image-ignored", "module", "![img](pic.png)\n", []),
    (
        "include-element",
        "command",
        "```xml\n<include>components/validation/framework.md</include>\n```\n",
        [("include", "components/validation/framework.md")],
    ),
    (
        "component-element",
        "command",
        "```xml\n<component>components/a/b.md</component>\n```\n",
        [("include", "components/a/b.md")],
    ),
    (
        "include-component-attribute",
        "command",
        '```xml\n<include component="components/report.md" />\n```\n',
        [("attribute", "components/report.md")],
    ),
    (
        "ref-attribute",
        "component",
        '```xml\n<context_file ref="../orchestration/plan.md" importance="critical"/>\n```\n',
        [("attribute", "../orchestration/plan.md")],
    ),
    (
        "anchor-stripped",
        "module",
        "```xml\n<checkpoint_template>patterns/check.md#CRITICAL</checkpoint_template>\n```\n",
        [("include", "patterns/check.md")],
    ),
    (
        "backticked-dependency",
        "module",
        "```xml\n<depends_on>\n  - `patterns/critical.md`: for thinking\n</depends_on>\n```\n",
        [("dependency", "patterns/critical.md")],
    ),
    (
        "output-path-is-not-a-reference",
        "command",
        "```xml\n<output_file>reports/summary.md</output_file>\n```\n",
        [],
    ),
    (
        "raw-xml-delegation",
        "command",
        '<delegation target="modules/a.md"/>\n',
        [("delegation", "modules/a.md")],
    ),
    (
        # The `@` is the import mark: one reference to the path, not a second to `@./...`.
        "import-element-holding-an-at-import",
        "module",
        "```xml\n<imports>\n  <import>@./shared/loading.md</import>\n</imports>\n```\n",
        [("include", "./shared/loading.md")],
    ),
    (
        # A link in an `<example>` illustrates; an `@` import there still loads.
        "links-in-examples-are-illustrations",
        "memory",
        "See [the guide](docs/guide.md).\n\n<example>\n- [file1](./file1.ext)\n"
        "- @docs/loaded.md\n</example>\n\n<task>\n  <examples>\n"
        "    [another](./sub/file2.ext)\n  </examples>\n  [real](docs/real.md)\n</task>\n",
        [("link", "docs/guide.md"), ("import", "docs/loaded.md"), ("link", "docs/real.md")],
    ),
    (
        # BMAD's paths from the project root: in text, code spans and attribute values; not in
        # a fence of another language, nor in an example.
        "project-root-paths",
        "agent",
        "---\nname: pm\ndescription: see {project-root}/bmad/meta.md\n---\n"
        "Load {project-root}/bmad/bmm/agents/pm.md now.\n\n<agent>\n"
        "  <step>Read `{project-root}/bmad/core/tasks/workflow.xml`.</step>\n"
        '  <item workflow="{project-root}/bmad/bmm/workflows/prd/workflow.yaml">PRD</item>\n'
        "  <example>{project-root}/bmad/shown.md</example>\n</agent>\n\n"
        "```yaml\npath: {project-root}/bmad/config.yaml\n```\n"
        "Not one: {project-root}/bmad/ or {project-root}/x.csv or {other}/x.md.\n",
        [
            ("project-root", "bmad/bmm/agents/pm.md"),
            ("project-root", "bmad/core/tasks/workflow.xml"),
            ("project-root", "bmad/bmm/workflows/prd/workflow.yaml"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("kind", "text", "expected"), [c[1:] for c in EXTRACT], ids=[c[0] for c in EXTRACT]
)
def test_extract(kind: str, text: str, expected: list[tuple[str, str]]) -> None:
    refs = extract_references(parse_document(text, kind))
    assert [(r.form, r.target) for r in refs] == expected
    for ref in refs:
        assert text[ref.start : ref.end] == ref.target


FRAMEWORK = {
    "CLAUDE.md": "@docs/style.md\n",
    "docs/style.md": "style\n",
    ".claude/commands/ship.md": "x\n",
    ".claude/commands/local.md": "x\n",
    ".claude/modules/development/small-change.md": "m\n",
    ".claude/modules/patterns/tdd.md": "p\n",
    ".claude/modules/quality/checklist.md": "q\n",
    ".claude/system/gates.md": "g\n",
    "components/planning/estimate.md": "c\n",
    "folder/.keep": "",
    "docs/setup.md": "setup\n",
    "notes/TODO": "an extensionless file\n",
}

RESOLVE = [
    (
        "import-from-file-folder",
        "CLAUDE.md",
        "import",
        "docs/style.md",
        "resolved",
        "docs/style.md",
    ),
    (
        "delegation-under-claude",
        ".claude/commands/ship.md",
        "delegation",
        "modules/development/small-change.md",
        "resolved",
        ".claude/modules/development/small-change.md",
    ),
    (
        "pattern-under-modules",
        ".claude/commands/ship.md",
        "pattern",
        "patterns/tdd.md",
        "resolved",
        ".claude/modules/patterns/tdd.md",
    ),
    (
        "module-under-system",
        ".claude/commands/ship.md",
        "module",
        "gates.md",
        "resolved",
        ".claude/system/gates.md",
    ),
    (
        "own-folder-first",
        ".claude/commands/ship.md",
        "module",
        "local.md",
        "resolved",
        ".claude/commands/local.md",
    ),
    (
        "component-root",
        ".claude/commands/ship.md",
        "component",
        "components/planning/estimate.md",
        "resolved",
        "components/planning/estimate.md",
    ),
    (
        "link-relative",
        ".claude/modules/patterns/tdd.md",
        "link",
        "../quality/checklist.md",
        "resolved",
        ".claude/modules/quality/checklist.md",
    ),
    (
        "workspace-root",
        ".claude/commands/ship.md",
        "import",
        "docs/style.md",
        "resolved",
        "docs/style.md",
    ),
    (
        "missing",
        ".claude/commands/ship.md",
        "delegation",
        "modules/development/small-chnge.md",
        "unresolved",
        None,
    ),
    ("dotdot-out", "CLAUDE.md", "import", "../../etc/passwd", "outside", None),
    ("absolute-out", "CLAUDE.md", "import", "/etc/passwd", "outside", None),
    ("home", "CLAUDE.md", "import", "~/.claude/x.md", "outside", None),
    ("folder", "CLAUDE.md", "link", "folder", "directory", None),
    # `@` followed by a name with a slash but no extension, and no such file: a mention.
    ("mention-team", "CLAUDE.md", "import", "AI/ML-Expert", "mention", None),
    ("mention-package", "CLAUDE.md", "import", "anthropic-ai/sdk", "mention", None),
    ("extensionless-file", "CLAUDE.md", "import", "notes/TODO", "resolved", "notes/TODO"),
    ("extension-forgotten", "CLAUDE.md", "import", "docs/setup", "unresolved", None),
    ("explicitly-relative", "CLAUDE.md", "import", "./docs/nothing", "unresolved", None),
    ("with-extension", "CLAUDE.md", "import", "docs/nothing.md", "unresolved", None),
    # `{project-root}/...`: from the project's root only, never the file's own folder.
    (
        "project-root",
        ".claude/commands/ship.md",
        "project-root",
        "docs/style.md",
        "resolved",
        "docs/style.md",
    ),
    (
        "project-root-not-own-folder",
        "docs/style.md",
        "project-root",
        "style.md",
        "unresolved",
        None,
    ),
    ("project-root-missing", "CLAUDE.md", "project-root", "docs/gone.md", "unresolved", None),
    # Its first folder is not there: a layout installed elsewhere (a framework's own sources).
    ("project-root-uninstalled", "CLAUDE.md", "project-root", "bmad/x.md", "uninstalled", None),
]


def _resolved(
    make_workspace: WorkspaceMaker, source: str, form: str, target: str
) -> tuple[Resolution, Workspace]:
    """`target`, written in `source` (a path in `FRAMEWORK`) in `form`, resolved; and the
    workspace."""
    root = make_workspace(FRAMEWORK)
    ws = Workspace([root], Settings().kinds)
    ws.scan()
    resolver = Resolver(ws, Settings().search_roots, Settings().loadable_extensions)
    where = os.path.join(ws.folders[0], source)
    return resolver.resolve(where, Reference(form, target, 0, len(target))), ws


@pytest.mark.parametrize(
    ("source", "form", "target", "status", "path"),
    [c[1:] for c in RESOLVE],
    ids=[c[0] for c in RESOLVE],
)
def test_resolve(
    make_workspace: WorkspaceMaker,
    source: str,
    form: str,
    target: str,
    status: str,
    path: str | None,
) -> None:
    res, ws = _resolved(make_workspace, source, form, target)
    assert res.status == status
    if path is not None:
        assert res.path is not None and ws.relative(res.path) == path


SUGGEST = [
    ("typo-in-name", "modules/development/small-chnge.md", "modules/development/small-change.md"),
    (
        "wrong-folder-same-name",
        "modules/quality/small-change.md",
        "modules/development/small-change.md",
    ),
    ("nothing-close", "modules/development/missing-module.md", None),
]


@pytest.mark.parametrize(
    ("target", "expected"), [c[1:] for c in SUGGEST], ids=[c[0] for c in SUGGEST]
)
def test_suggestions(make_workspace: WorkspaceMaker, target: str, expected: str | None) -> None:
    res, _ = _resolved(make_workspace, ".claude/commands/ship.md", "delegation", target)
    assert res.suggestion == expected


def test_unresolved_suggests_closest_and_lists_roots(make_workspace: WorkspaceMaker) -> None:
    res, _ = _resolved(
        make_workspace,
        ".claude/commands/ship.md",
        "delegation",
        "modules/development/small-chnge.md",
    )
    assert res.suggestion == "modules/development/small-change.md"
    assert res.tried[:2] == (".claude/commands/", ".claude/")


def test_an_import_missing_its_extension_says_so(make_workspace: WorkspaceMaker) -> None:
    res, _ = _resolved(make_workspace, "CLAUDE.md", "import", "docs/setup")
    assert (res.status, res.suggestion) == ("unresolved", "docs/setup.md")


def test_mentions_are_not_findings(make_workspace: WorkspaceMaker) -> None:
    """`@AI/ML-Expert` and `@anthropic-ai/sdk` in prose name no file: no finding, no load."""
    root = make_workspace(
        {
            "CLAUDE.md": "Ask @AI/ML-Expert; use @anthropic-ai/sdk and @docs/gone.md.\n",
        }
    )
    config = load_settings(root)
    index = WorkspaceIndex(Workspace([root], config.kinds, config.exclude), config)
    index.index()
    path = str(root / "CLAUDE.md")
    found = [(f.code, index.files[path].doc.text[f.start : f.end]) for f in index.findings(path)]
    assert found == [("unresolved-reference", "docs/gone.md")]
    assert [r.status for r in index.files[path].resolutions] == ["mention", "mention", "unresolved"]


def test_symlink_out_is_outside(make_workspace: WorkspaceMaker, tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("secret")
    root = make_workspace({"CLAUDE.md": "@link.md\n"})
    (root / "link.md").symlink_to(secret)
    (root / "loop.md").symlink_to(root / "loop.md")
    ws = Workspace([root], Settings().kinds)
    ws.scan()
    resolver = Resolver(ws, Settings().search_roots, Settings().loadable_extensions)
    source = os.path.join(ws.folders[0], "CLAUDE.md")
    assert resolver.resolve(source, Reference("import", "link.md", 0, 1)).status == "outside"
    assert resolver.resolve(source, Reference("import", "loop.md", 0, 1)).status in (
        "loop",
        "outside",
    )


def test_fifo_is_never_opened(make_workspace: WorkspaceMaker) -> None:
    root = make_workspace({"CLAUDE.md": "@pipe.md\n"})
    os.mkfifo(root / "pipe.md")
    ws = Workspace([root], Settings().kinds)
    ws.scan()
    resolver = Resolver(ws, Settings().search_roots, Settings().loadable_extensions)
    source = os.path.join(ws.folders[0], "CLAUDE.md")
    assert resolver.resolve(source, Reference("import", "pipe.md", 0, 1)).status == "special"


@settings(max_examples=300, deadline=None)
@given(
    stems=st.lists(
        st.text(alphabet="abcdeklmnrst-_", min_size=1, max_size=14), min_size=1, max_size=40
    ),
    pick=st.integers(min_value=0),
    edits=st.lists(st.tuples(st.integers(0, 20), st.sampled_from("abkz-")), max_size=3),
)
def test_close_stems_prefilter_finds_what_difflib_finds(
    stems: list[str], pick: int, edits: list[tuple[int, str]]
) -> None:
    """Candidates are filtered by difflib's own upper bounds before difflib ranks them: the
    suggestions are exactly those of `get_close_matches` over every known file (the query is a
    known stem with a few characters changed, so that some come close)."""
    import difflib

    query = list(stems[pick % len(stems)])
    for at, ch in edits:
        query[at % len(query)] = ch
    wanted = "".join(query)
    resolver = Resolver.__new__(Resolver)
    resolver._stems = {s: [s] for s in stems}
    resolver._bag_stems()
    resolver._close = {}
    expected = difflib.get_close_matches(wanted, list(resolver._stems), n=5, cutoff=0.8)
    assert resolver._close_stems(wanted) == expected


def test_project_root_paths_are_checked_and_load_nothing(make_workspace: WorkspaceMaker) -> None:
    """A BMAD path from the project root: a missing file in a folder the project has is a
    warning; one in a folder it does not have is not a finding; none joins the load set (the
    model reads them when a step or a menu item asks). The files they name are analysed with
    the workspace, whatever their kind (they must exist and parse), and so are those they name
    in turn, and one named by an edit."""
    root = make_workspace(
        {
            ".claude/commands/pm.md": "Load {project-root}/bmad/agents/pm.md, then\n"
            "{project-root}/bmad/gone.md and {project-root}/src/agents/pm.md.\n",
            "bmad/agents/pm.md": "<agent>the PM <step>never closed</agent>\n"
            "Run {project-root}/bmad/tasks/flow.xml.\n",
            "bmad/tasks/flow.xml": "<task><step>go</step></task>\n",
            "bmad/tasks/later.xml": "<task/>\n",
        }
    )
    config = load_settings(root)
    index = WorkspaceIndex(Workspace([root], config.kinds, config.exclude), config)
    index.index()
    path = str(root / ".claude/commands/pm.md")
    fa = index.files[path]
    assert [r.status for r in fa.resolutions] == ["resolved", "unresolved", "uninstalled"]
    found = [(f.code, fa.doc.text[f.start : f.end]) for f in index.findings(path)]
    assert found == [("unresolved-reference", "bmad/gone.md")]
    assert index.load_set(path).files == (path,)
    agent, flow = str(root / "bmad/agents/pm.md"), str(root / "bmad/tasks/flow.xml")
    assert agent in index.files and flow in index.files
    assert str(root / "bmad/tasks/later.xml") not in index.files
    assert "xml-syntax" in [f.code for f in index.findings(agent)]
    index.workspace.overlay[path] = fa.doc.text + "Then {project-root}/bmad/tasks/later.xml.\n"
    index.update(path, 2)
    assert str(root / "bmad/tasks/later.xml") in index.files
    assert index.load_set(path).files == (path,)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["components/", "a/b", ".md", ".txt", "x", " ", "\t", "- ", "* ", "\n", "\r", "`", "/"]
        ),
        max_size=30,
    ).map("".join)
)
def test_component_lines_are_the_pattern_s_matches(text: str) -> None:
    """Looking only at the lines holding `components/` finds what the pattern finds at every
    line start."""
    from promptls.analysis import references

    expected = [m.span(1) for m in references._COMPONENT_LINE.finditer(text)]
    assert [m.span(1) for m in references._component_lines(text)] == expected


_SEGMENT = st.sampled_from(["a", "b", "ab", ".claude", "x.md", "a b", "é"])


@settings(max_examples=200, deadline=None)
@given(
    folders=st.lists(st.lists(_SEGMENT, min_size=0, max_size=3), min_size=1, max_size=3),
    tail=st.lists(_SEGMENT, min_size=0, max_size=4),
    which=st.integers(min_value=0),
)
def test_relative_and_contains_agree_with_os_path(
    folders: list[list[str]], tail: list[str], which: int
) -> None:
    """`Workspace.relative` and `contains` are string operations on normalised paths: the same
    answers as `os.path.relpath` from the innermost folder, and as a lexical containment test
    (folders nested in one another, the folder itself, the file system root as a folder)."""
    roots = [os.path.join(os.sep, *parts) for parts in folders]
    ws = Workspace(roots, {})
    path = os.path.normpath(os.path.join(ws.folders[which % len(ws.folders)], *tail))
    inside = [f for f in ws.folders if path == f or os.path.commonpath([path, f]) == f]
    assert ws.contains(path) == bool(inside)
    innermost = max(inside, key=len)
    expected = os.path.relpath(path, innermost).replace(os.sep, "/")
    assert ws.relative(path) == ("" if expected == "." else expected)
    assert ws.relative(path) == ws.relative(path)  # (remembered)
