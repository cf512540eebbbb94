"""The real server over a TCP socket and a WebSocket (`promptls serve --tcp | --ws`): the same
diagnostics as over stdio, pushed for each version."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from typing import Any

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pytest_lsp import client_capabilities

from promptls.cli import main
from tests.e2e.conftest import SERVER, workspace_copy
from tests.e2e.test_server import SHIP, check_json, plain


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _connect(client: LanguageClient, transport: str, port: int) -> None:
    """Connect once the server listens (it takes a moment to start)."""
    for _ in range(200):
        try:
            if transport == "tcp":
                await client.start_tcp("127.0.0.1", port)
            else:
                await client.start_ws("127.0.0.1", port)
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"the server never listened on port {port}")


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_socket_transports_push_what_the_cli_reports(
    transport: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = workspace_copy(tmp_path_factory)
    port = _free_port()
    server = subprocess.Popen(
        [*SERVER, "serve", f"--{transport}", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = LanguageClient("transports", "1")
    pushed: list[types.PublishDiagnosticsParams] = []
    arrived = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def _pushed(params: types.PublishDiagnosticsParams) -> None:
        pushed.append(params)
        arrived.set()

    @client.feature(types.WORKSPACE_CONFIGURATION)
    def _configuration(params: types.ConfigurationParams) -> list[Any]:
        return [{"diagnosticsDelay": 0} for _ in params.items]

    for method in (types.WINDOW_WORK_DONE_PROGRESS_CREATE, types.CLIENT_REGISTER_CAPABILITY):
        client.feature(method)(lambda params: None)
    for method in (types.PROGRESS, types.WINDOW_LOG_MESSAGE, "promptls/status"):
        client.feature(method)(lambda params: None)

    async def version(uri: str, wanted: int) -> types.PublishDiagnosticsParams:
        for _ in range(400):
            found = [p for p in pushed if p.uri == uri and p.version == wanted]
            if found:
                return found[-1]
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 0.05)
        raise AssertionError(f"no diagnostics for version {wanted} over {transport}")

    try:
        await _connect(client, transport, port)
        await client.initialize_async(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            )
        )
        client.initialized(types.InitializedParams())
        path = root / SHIP
        uri = path.as_uri()
        text = path.read_text(encoding="utf-8")
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="markdown", version=1, text=text
                )
            )
        )
        expected = check_json(root, "utf-16")[SHIP]["diagnostics"]
        severities = {"error": 1, "warning": 2, "information": 3, "hint": 4}
        want = sorted(
            (d["code"], severities[d["severity"]], d["message"], d["range"]) for d in expected
        )
        # The first push may come before the index is complete (the file on its own).
        for _ in range(200):
            if plain(list((await version(uri, 1)).diagnostics)) == want:
                break
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 0.1)
        assert plain(list((await version(uri, 1)).diagnostics)) == want
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + "\n")],
            )
        )
        assert {d.code for d in (await version(uri, 2)).diagnostics} >= {"xml-syntax"}
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        with contextlib.suppress(Exception):
            await client.stop()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.stderr is not None
    assert "Traceback" not in server.stderr.read().decode("utf-8", "replace")


def test_serve_ws_without_websockets_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "websockets" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["serve", "--ws", "--port", str(_free_port())]) == 2
    assert "pip install 'promptls[ws]'" in capsys.readouterr().err


def test_listening_beyond_this_machine_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import promptls.lsp.server

    served: list[tuple[str, str, int]] = []  # (transport, host, port), worker processes aside
    monkeypatch.setattr(promptls.lsp.server, "serve", lambda *args: served.append(args[:3]) or 0)
    assert main(["serve", "--tcp", "--port", "2087"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["serve", "--tcp", "--host", "0.0.0.0", "--port", "2087"]) == 0
    assert "whoever connects" in capsys.readouterr().err
    assert served == [("tcp", "127.0.0.1", 2087), ("tcp", "0.0.0.0", 2087)]
