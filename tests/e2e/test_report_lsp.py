"""`promptls/report` over LSP: the same report as `promptls report`, as HTML and as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient

from tests.e2e.conftest import _plain

pytestmark = pytest.mark.asyncio(loop_scope="function")


def root_of(client: LanguageClient) -> Path:
    root: Path = client.__dict__["root"]
    return root


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptls", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def report(client: LanguageClient, params: dict[str, Any]) -> dict[str, Any]:
    answer = _plain(await client.protocol.send_request_async("promptls/report", params))
    assert isinstance(answer, dict)
    return answer


async def test_report_json_equals_the_cli(client: LanguageClient) -> None:
    root = root_of(client)
    answer = await report(client, {"format": "json"})
    assert answer["format"] == "json" and answer["baseline"] is None
    assert answer["root"] == root.as_uri()
    expected = json.loads(cli("report", str(root), "--format", "json").stdout)
    assert answer["report"] == expected
    files = {
        f["path"]: f
        for f in json.loads(cli("check", str(root), "--format", "json").stdout)["files"]
    }
    for entry in answer["report"]["entries"]:
        assert entry["loadTokens"] == files[entry["path"]]["loadTokens"]
        assert entry["loads"] == files[entry["path"]]["loads"]


async def test_report_html_for_a_webview(client: LanguageClient) -> None:
    root = root_of(client)
    answer = await report(client, {"format": "html", "nonce": "n0nce"})
    page = answer["html"]
    assert page.startswith("<!DOCTYPE html>") and "acquireVsCodeApi" in page
    assert "script-src 'nonce-n0nce'" in page
    assert 'data-path=".claude/commands/ship.md"' in page
    assert 'href=".claude/commands/ship.md"' in page  # relative to the workspace folder
    assert "https://" not in page and "http://" not in page
    assert root.as_uri() == answer["root"]


async def test_report_uses_the_workspace_baseline(client: LanguageClient) -> None:
    root = root_of(client)
    assert cli("baseline", str(root)).returncode == 0
    answer = await report(client, {"format": "json"})
    assert answer["baseline"] == ".promptls/baseline.json"
    entries = answer["report"]["entries"]
    assert entries and all(e["change"]["diff"] == 0 for e in entries)
    assert (await report(client, {"format": "json", "baseline": False}))["baseline"] is None
    missing = await report(client, {"format": "json", "baseline": "nope.json"})
    assert missing["baseline"] is None and "nope.json" in missing["problem"]
