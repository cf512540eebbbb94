"""File kinds by path glob, at any depth."""

from __future__ import annotations

import pytest

from promptls.analysis.kinds import glob_regex, kind_of
from promptls.config import Settings

KINDS = [
    ("CLAUDE.md", "memory"),
    ("packages/web/CLAUDE.md", "memory"),
    ("CLAUDE.local.md", "memory"),
    (".claude/commands/ship.md", "command"),
    (".claude/commands/frontend/component.md", "command"),
    ("nested/framework/.claude/commands/x.md", "command"),
    (".claude/agents/reviewer.md", "agent"),
    (".claude/skills/release-notes/SKILL.md", "skill"),
    (".claude/output-styles/terse.md", "output-style"),
    (".claude/rules/python/style.md", "rule"),
    (".claude/modules/quality/checklist.md", "module"),
    (".claude/system/gates.md", "module"),
    (".claude/templates/pr.md", "module"),
    ("components/planning/estimate.md", "component"),
    ("PROJECT_CONFIG.xml", "project-config"),
    ("README.md", "other"),
    (".claude/settings.json", "other"),
]


@pytest.mark.parametrize(("path", "kind"), KINDS, ids=[k[0] for k in KINDS])
def test_default_kinds(path: str, kind: str) -> None:
    assert kind_of(path, Settings().kinds) == kind


def test_override_kinds() -> None:
    kinds = {**Settings().kinds, "module": ["prompts/**/*.md"]}
    assert kind_of("prompts/a/b.md", kinds) == "module"
    assert kind_of(".claude/modules/a.md", kinds) == "other"


GLOBS = [
    ("**/*.md", "a.md", True),
    ("**/*.md", "x/y/a.md", True),
    ("*.md", "x/a.md", False),
    ("a/**", "a/b/c", True),
    ("a/?.md", "a/b.md", True),
    ("a/?.md", "a/bc.md", False),
    ("a.b", "axb", False),
]


@pytest.mark.parametrize(("glob", "path", "expected"), GLOBS, ids=[f"{g[0]}~{g[1]}" for g in GLOBS])
def test_glob(glob: str, path: str, expected: bool) -> None:
    assert bool(glob_regex(glob).match(path)) is expected
