"""`promptls check | tokens | graph`: formats, exit codes, and agreement with tiktoken."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from promptls.analysis.tokens import TokenCounter
from promptls.cli import main
from tests.conftest import WorkspaceMaker

WS = {
    "CLAUDE.md": "# Project\n@docs/a.md\n@docs/missing.md\n",
    "docs/a.md": "Emoji 😀 line with `code`\n",
    ".claude/commands/bad.md": (
        "---\ndescription: x\ntools: Read\n---\n```xml\n<command>\n  <step>one\n</command>\n```\n"
    ),
    ".claude/modules/ok.md": "```xml\n<module><purpose>fine</purpose></module>\n```\n",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_shape(make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_workspace(WS)
    code, out, _ = run(capsys, "check", str(root), "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert data["version"] == 1 and data["encoding"] == "cl100k_base"
    assert data["positionEncoding"] == "utf-16"
    by_path = {f["path"]: f for f in data["files"]}
    assert set(by_path) == {
        "CLAUDE.md",
        "docs/a.md",
        ".claude/commands/bad.md",
        ".claude/modules/ok.md",
    }
    claude = by_path["CLAUDE.md"]
    assert claude["loads"] == ["CLAUDE.md", "docs/a.md"]
    assert claude["loadTokens"] == claude["tokens"] + by_path["docs/a.md"]["tokens"]
    counter = TokenCounter()
    for entry in data["files"]:
        text = (root / entry["path"]).read_bytes().decode("utf-8", errors="replace")
        assert entry["rawTokens"] == counter.count_exact(text)
    bad = {d["code"]: d for d in by_path[".claude/commands/bad.md"]["diagnostics"]}
    assert bad["xml-syntax"]["severity"] == "error"
    assert bad["xml-syntax"]["range"]["start"] == {"line": 6, "character": 2}
    assert bad["frontmatter-unknown-key"]["range"]["start"] == {"line": 2, "character": 0}
    assert data["summary"]["error"] >= 2


def test_text_format_is_one_based(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace(WS)
    code, out, _ = run(capsys, "check", str(root))
    assert code == 1
    assert ".claude/commands/bad.md:7:3: error xml-syntax " in out
    assert "CLAUDE.md:3:2: error unresolved-reference cannot find `docs/missing.md`" in out
    assert out.splitlines()[-1].startswith("4 files, ≈")


@pytest.mark.parametrize(
    ("files", "fail_on", "expected"),
    [
        ({"CLAUDE.md": "clean\n"}, "error", 0),
        ({"CLAUDE.md": "@~/x.md\n"}, "error", 0),
        ({"CLAUDE.md": "@~/x.md\n"}, "information", 1),
        ({"CLAUDE.md": "@missing.md\n"}, "error", 1),
    ],
    ids=["clean", "information-passes", "fail-on-information", "error-fails"],
)
def test_exit_codes(
    make_workspace: WorkspaceMaker,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    fail_on: str,
    expected: int,
) -> None:
    root = make_workspace(files)
    assert run(capsys, "check", str(root), "--fail-on", fail_on)[0] == expected


@pytest.mark.parametrize(
    "argv",
    [["check", "/no/such/folder"], ["frobnicate"], ["tokens", "/no/such/file.md"]],
    ids=["missing-path", "unknown-command", "tokens-missing"],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err


def test_sarif(make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_workspace(WS)
    _, out, _ = run(capsys, "check", str(root), "--format", "sarif")
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run_ = sarif["runs"][0]
    assert run_["tool"]["driver"]["name"] == "promptls"
    rule_ids = {r["id"] for r in run_["tool"]["driver"]["rules"]}
    for result in run_["results"]:
        assert result["ruleId"] in rule_ids
        assert result["level"] in ("error", "warning", "note")
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1


def test_utf16_columns_after_emoji(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace({"CLAUDE.md": "😀 @gone.md\n"})
    for encoding, column in (("utf-16", 4), ("utf-8", 6), ("utf-32", 3)):
        _, out, _ = run(
            capsys, "check", str(root), "--format", "json", "--position-encoding", encoding
        )
        (diag,) = json.loads(out)["files"][0]["diagnostics"]
        assert diag["range"]["start"]["character"] == column, encoding


def test_tokens_command(make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_workspace(WS)
    path = root / ".claude/commands/bad.md"
    code, out, _ = run(capsys, "tokens", str(path))
    assert code == 0
    raw = TokenCounter().count_exact(path.read_text())
    assert f"{raw:,}" in out and "command" in out


def test_graph_command(make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_workspace(WS)
    code, out, _ = run(capsys, "graph", str(root / "CLAUDE.md"))
    assert code == 0
    assert "loads 2 files" in out and "└── docs/a.md" in out


def test_check_one_file_reports_only_it(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace({**WS, ".git/HEAD": "ref"})
    cwd = os.getcwd()
    try:
        os.chdir(root)
        _, out, _ = run(capsys, "check", "docs/a.md", "--format", "json")
    finally:
        os.chdir(cwd)
    assert [f["path"] for f in json.loads(out)["files"]] == ["docs/a.md"]


def test_a_folder_inside_a_framework_is_checked_as_part_of_it(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check .claude/commands` reports the commands, resolved against the framework (it once
    took the folder for a workspace of its own and reported nothing, exit 0)."""
    root = make_workspace(
        {
            **WS,
            ".claude/commands/ok.md": "---\ndescription: x\n---\n@.claude/modules/ok.md\n",
        }
    )
    _, whole, _ = run(capsys, "check", str(root), "--format", "json")
    everything = {f["path"]: f for f in json.loads(whole)["files"]}
    code, out, _ = run(capsys, "check", str(root / ".claude/commands"), "--format", "json")
    files = {f["path"]: f for f in json.loads(out)["files"]}
    assert set(files) == {".claude/commands/bad.md", ".claude/commands/ok.md"}
    assert files == {path: everything[path] for path in files}
    assert files[".claude/commands/ok.md"]["loads"] == [
        ".claude/commands/ok.md",
        ".claude/modules/ok.md",
    ]
    assert code == 1  # bad.md's XML


def test_tokens_of_a_folder_and_graph_of_a_folder(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace(WS)
    code, out, _ = run(capsys, "tokens", str(root / ".claude"), str(root / "CLAUDE.md"))
    assert code == 0
    shown = [line.split()[0] for line in out.splitlines()[1:]]
    assert shown == [
        str(root / ".claude/commands/bad.md"),
        str(root / ".claude/modules/ok.md"),
        str(root / "CLAUDE.md"),
        "total",
    ]
    code, _, err = run(capsys, "graph", str(root / ".claude"))
    assert code == 2 and "graph shows the load tree of one file" in err


def test_a_closed_pipe_ends_quietly(make_workspace: WorkspaceMaker) -> None:
    """`promptls check | head`: a reader that went away is no error to report."""
    import subprocess

    root = make_workspace(WS)
    # `true` reads nothing and is gone long before Python has started and writes.
    script = '"$0" -m promptls check "$1" | true; echo "${PIPESTATUS[0]}"'
    shell = subprocess.run(
        ["bash", "-c", script, sys.executable, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shell.stderr == ""
    assert shell.stdout.strip() == "141"


def test_nothing_outside_the_workspace_is_opened(
    make_workspace: WorkspaceMaker, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("secret")
    root = make_workspace({"CLAUDE.md": f"@../outside.md @{outside} @link.md\n"})
    (root / "link.md").symlink_to(outside)
    opened: list[str] = []

    def audit(event: str, args: tuple[object, ...]) -> None:
        if event == "open" and isinstance(args[0], str):
            opened.append(os.path.realpath(args[0]))

    sys.addaudithook(audit)
    _, out, _ = run(capsys, "check", str(root), "--format", "json")
    assert str(outside.resolve()) not in opened
    codes = [d["code"] for d in json.loads(out)["files"][0]["diagnostics"]]
    assert codes.count("outside-workspace") == 3
