"""Duplicate content in one load set."""

from __future__ import annotations

import hashlib
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.workspace import Workspace
from promptls.config import Settings, settings_from
from tests.conftest import WorkspaceMaker

RULES = (
    "<rules>\n"
    "  <rule>Never log secrets, tokens, passwords or personal data in any environment.</rule>\n"
    "  <rule>Every change ships with a test that fails before it and passes after it.</rule>\n"
    "  <rule>Money amounts are integers in minor units, never floating point numbers.</rule>\n"
    "</rules>"
)
PARAGRAPH = (
    "Always run the full quality gate before you call a change done: tests, types, lint, and a "
    "review of the diff against the checklist, in that order, with nothing skipped. When a gate "
    "fails, fix the cause rather than the gate, and say in the summary which gate failed first."
)
FILES = {
    ".claude/commands/ship.md": "```xml\n<command>\n<module>m/a.md - a</module>\n"
    "<module>m/b.md - b</module>\n</command>\n```\n",
    ".claude/commands/solo.md": "```xml\n<command>\n<module>m/a.md - a</module>\n</command>\n```\n",
    ".claude/modules/m/a.md": f"# A\n\n{PARAGRAPH}\n\n```xml\n<module>\n{RULES}\n</module>\n```\n",
    ".claude/modules/m/b.md": (
        f"# B\n\n{PARAGRAPH}\n\n```xml\n<module>\n<purpose>B</purpose>\n  {RULES}\n</module>\n```\n"
    ),
}


def _index(root: object, **settings: object) -> WorkspaceIndex:
    s = settings_from(settings) if settings else Settings()
    index = WorkspaceIndex(Workspace([str(root)], s.kinds, s.exclude), s)
    index.index()
    return index


def test_copies_in_one_load_set_are_reported_with_the_other_copy(
    make_workspace: WorkspaceMaker,
) -> None:
    index = _index(make_workspace(FILES))
    a = os.path.join(index.workspace.folders[0], ".claude/modules/m/a.md")
    b = os.path.join(index.workspace.folders[0], ".claude/modules/m/b.md")
    found = [f for f in index.findings(a) if f.code == "duplicate-content"]
    labels = sorted(f.message.split(" ")[0] for f in found)
    assert labels == ["<rules>", "paragraph"]  # the element, not its <rule> children; the paragraph
    for finding in found:
        assert finding.severity.label == "information"
        assert finding.related and finding.related[0].path == b
        assert "ship.md loads both" in finding.message


def test_copies_not_loaded_together_are_fine(make_workspace: WorkspaceMaker) -> None:
    files = dict(FILES)
    files[".claude/commands/ship.md"] = files[".claude/commands/solo.md"]
    index = _index(make_workspace(files))
    a = os.path.join(index.workspace.folders[0], ".claude/modules/m/a.md")
    assert not [f for f in index.findings(a) if f.code == "duplicate-content"]


def test_threshold_setting(make_workspace: WorkspaceMaker) -> None:
    index = _index(make_workspace(FILES), duplicateMinTokens=500)
    a = os.path.join(index.workspace.folders[0], ".claude/modules/m/a.md")
    assert not [f for f in index.findings(a) if f.code == "duplicate-content"]


def test_a_block_pasted_many_times_lists_a_bounded_number_of_copies(
    make_workspace: WorkspaceMaker,
) -> None:
    """1,500 copies in one file: each is reported, with at most MAX_OTHERS related locations
    (all of them would be 2.25 million, which the server once spent minutes publishing)."""
    from promptls.analysis.duplicates import MAX_OTHERS

    files = {"CLAUDE.md": "# Memory\n\n" + f"{PARAGRAPH}\n\n" * 1500}
    index = _index(make_workspace(files), maxProblems=0)  # (all of them, not the first 1,000)
    memory = os.path.join(index.workspace.folders[0], "CLAUDE.md")
    found = [f for f in index.findings(memory) if f.code == "duplicate-content"]
    assert len(found) == 1500
    for finding in found:
        assert 0 < len(finding.related) <= MAX_OTHERS
        assert "(and 1,496 more)" in finding.message
    starts = {f.start for f in found}
    assert all(r.start in starts for f in found for r in f.related)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000\u200bab<", max_size=30))
def test_digest_normalises_whitespace_as_the_regular_expression_does(text: str) -> None:
    from promptls.analysis.duplicates import _digest

    words = re.sub(r"\s+", " ", text).strip()
    assert _digest(text) == hashlib.blake2b(words.encode("utf-8"), digest_size=16).digest()
