"""Shortcuts of the analysis must give exactly what a full analysis gives: a file analysed on its
own before the index is built, and (below) incremental updates over random edits."""

from __future__ import annotations

import os
from pathlib import Path

from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.workspace import Workspace
from promptls.config import Settings
from tests.conftest import WorkspaceMaker

COMMAND = """---
description: Ship a change
argument-hint: 3
---
```xml
<command purpose="ship">
  <delegation target="modules/dev/change.md">plan</delegation>
  <module>quality/check.md - checks</module>
  <module>quality/missing.md - not there</module>
  <step>unclosed
</command>
```
See [notes](../../notes.txt) and @../../CLAUDE.md
"""
FILES = {
    ".claude/commands/ship.md": COMMAND,
    ".claude/modules/dev/change.md": "```xml\n<module>\n<depends_on>\nquality/check.md\n"
    "</depends_on>\n</module>\n```\n",
    ".claude/modules/quality/check.md": "Check everything twice.\n",
    "notes.txt": "linked text\n",
    "CLAUDE.md": "@.claude/commands/ship.md\n",
}


def _fresh(root: Path) -> WorkspaceIndex:
    s = Settings()
    return WorkspaceIndex(Workspace([root], s.kinds, s.exclude), s)


def test_a_file_alone_has_its_own_findings_of_the_full_index(
    make_workspace: WorkspaceMaker,
) -> None:
    root = make_workspace(FILES)
    full = _fresh(root)
    full.index()
    alone = _fresh(root)
    for path, fa in full.files.items():
        early = alone.analyse_alone(path)
        assert early is not None
        assert (early.tokens, early.raw_tokens) == (fa.tokens, fa.raw_tokens)
        assert [(r.status, r.path) for r in early.resolutions] == [
            (r.status, r.path) for r in fa.resolutions
        ]
        own = [(f.code, f.start, f.end) for f in alone.own_findings(early)]
        every = [(f.code, f.start, f.end) for f in full.findings(path)]
        assert set(own) <= set(every)
        assert own == [(f.code, f.start, f.end) for f in full.own_findings(fa)]
    assert not alone.files  # nothing stored
    assert alone.analyse_alone(os.path.join(str(root), "nowhere.md")) is None
