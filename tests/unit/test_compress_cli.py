"""`promptls compress`: check, diff, write (atomic, mode kept, nothing lost), JSON."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from promptls.analysis.compress import equivalent
from promptls.cli import main
from promptls.fileio import ChangedOnDisk, atomic_write, read_snapshot
from tests.conftest import WorkspaceMaker

MODULE = """# Review

Intro paragraph stays exactly as it is.

```xml
<module name = "review">
  <purpose>
    Check a change before it lands.
  </purpose>
  <steps>
    <step>Read the diff.</step>
    <step>Run the tests.</step>
  </steps>
</module>
```

Outro.
"""
BROKEN = "# Broken\n\n```xml\n<module>\n    <step>never closed   \n</module>\n```\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _block(text: str) -> str:
    return text.split("```xml\n", 1)[1].split("```", 1)[0]


def test_check_reports_and_exits_1(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace({".claude/modules/review.md": MODULE})
    code, out = run(capsys, "compress", str(root), "--check")
    assert code == 1
    assert ".claude/modules/review.md: compressible: 1 block(s), -" in out
    assert (root / ".claude/modules/review.md").read_text() == MODULE


def test_write_keeps_markdown_and_meaning(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace({".claude/modules/review.md": MODULE})
    path = root / ".claude/modules/review.md"
    os.chmod(path, 0o640)
    code, _ = run(capsys, "compress", str(root), "--write")
    assert code == 0
    after = path.read_text()
    assert after.startswith("# Review\n\nIntro paragraph stays exactly as it is.\n\n```xml\n")
    assert after.endswith("```\n\nOutro.\n")
    assert equivalent(_block(MODULE), _block(after), "whitespace")
    assert len(after) < len(MODULE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert run(capsys, "compress", str(root), "--check")[0] == 0  # idempotent: nothing left


def test_json_regions(make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_workspace({".claude/modules/review.md": MODULE})
    _, out = run(capsys, "compress", str(root), "--format", "json")
    data = json.loads(out)
    (region,) = data["regions"]
    assert region["path"] == ".claude/modules/review.md"
    assert region["range"]["start"] == {"line": 5, "character": 0}
    assert region["tokensAfter"] < region["tokensBefore"]


def test_diff(make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_workspace({".claude/modules/review.md": MODULE})
    _, out = run(capsys, "compress", str(root), "--diff")
    assert out.startswith("--- a/.claude/modules/review.md\n+++ b/.claude/modules/review.md\n")


def test_malformed_block_only_trimmed(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace({".claude/modules/broken.md": BROKEN})
    run(capsys, "compress", str(root), "--write")
    after = (root / ".claude/modules/broken.md").read_text()
    assert after.count("\n") == BROKEN.count("\n")  # no line joined
    assert after.split() == BROKEN.split()


def test_invalid_utf8_is_left_alone(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    data = MODULE.encode().replace(b"Outro.", b"Outro \xff.")
    root = make_workspace({".claude/modules/review.md": data})
    main(["compress", str(root), "--write"])
    assert (root / ".claude/modules/review.md").read_bytes() == data
    assert "not valid UTF-8" in capsys.readouterr().err


def test_atomic_write_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "f.md"
    path.write_text("one\n")
    _, snapshot = read_snapshot(str(path))
    path.write_text("two, changed meanwhile\n")
    with pytest.raises(ChangedOnDisk):
        atomic_write(snapshot, b"three\n")
    assert path.read_text() == "two, changed meanwhile\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.md"]  # no temporary file left behind


def test_crlf_files_keep_crlf(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    crlf = MODULE.replace("\n", "\r\n").encode()
    root = make_workspace({".claude/modules/review.md": crlf})
    run(capsys, "compress", str(root), "--write")
    after = (root / ".claude/modules/review.md").read_bytes()
    assert b"\n" not in after.replace(b"\r\n", b"")


def test_a_file_changed_after_indexing_is_compressed_as_it_is_now(
    make_workspace: WorkspaceMaker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The index's parse is reused only for the very text that will be written."""
    import promptls.fileio

    root = make_workspace({".claude/modules/review.md": MODULE})
    path = root / ".claude/modules/review.md"
    now = MODULE.replace("Read the diff.", "Read   the   whole   diff.")
    real = promptls.fileio.read_snapshot

    def changed_meanwhile(target: str) -> object:
        path.write_text(now, encoding="utf-8")
        return real(target)

    monkeypatch.setattr(promptls.fileio, "read_snapshot", changed_meanwhile)
    code, _ = run(capsys, "compress", str(root), "--write")
    assert code == 0
    written = path.read_text(encoding="utf-8")
    assert "<step>Read the whole diff.</step>" in written
    assert written.startswith("# Review\n\nIntro paragraph") and written.endswith("```\n\nOutro.\n")
    assert equivalent(_block(now), _block(written), "whitespace")


def test_files_of_no_prompt_kind_are_counted_and_taken_with_all(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    """A framework's sources (here `src/`, which no kind's globs take) are left out of a folder
    with a note saying how many hold XML blocks and how to include them; `--all` takes them
    (named folders only: `docs/` is not named in the second run)."""
    xml_task = '<task id="t">\n  <step n="1">\n    Read the diff.\n  </step>\n</task>\n'
    files = {
        ".claude/modules/review.md": MODULE,
        "src/agents/dev.md": MODULE,
        "src/tasks/review.xml": xml_task,
        "src/notes.md": "# Notes\n\nNo XML here.\n",
        "docs/guide.md": MODULE,
    }
    root = make_workspace(files)
    code = main(["compress", str(root), "--check"])
    captured = capsys.readouterr()
    assert code == 1
    assert "src/" not in captured.out and "docs/" not in captured.out
    assert "1 file(s), 1 block(s)" in captured.out
    assert "4 .md/.xml file(s) in the folders named are of no prompt kind" in captured.err
    assert "3 of them hold XML blocks, left out" in captured.err and "--all" in captured.err
    code, out = run(capsys, "compress", str(root / "src"), "--all", "--write")
    assert code == 0
    assert "src/agents/dev.md: compressed" in out and "src/tasks/review.xml: compressed" in out
    assert ".claude/" not in out
    assert (root / "docs/guide.md").read_text() == MODULE
    assert (root / "src/notes.md").read_text() == files["src/notes.md"]
    after = (root / "src/tasks/review.xml").read_text()
    assert equivalent(xml_task, after, "whitespace") and len(after) < len(xml_task)


def test_check_finding_no_prompt_file_says_why(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    """A framework's repository whose prompts no kind takes: `check` finds nothing, and says
    how many .md/.xml files it passed over and how to map them (not when it found some)."""
    root = make_workspace({"src/tasks/review.xml": "<task/>\n", "src/a.md": "# A\n"})
    assert main(["check", str(root)]) == 0
    err = capsys.readouterr().err
    assert "2 .md/.xml file(s) in the folders named are of no prompt kind" in err
    assert "no prompt files were found" in err and "[kinds]" in err
    (root / ".claude/modules").mkdir(parents=True)
    (root / ".claude/modules/m.md").write_text("# M\n")
    assert main(["check", str(root)]) == 0
    assert capsys.readouterr().err == ""
