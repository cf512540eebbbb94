"""pytest-lsp fixtures: the real server over stdio, with VS Code's and Neovim's capabilities."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

FIXTURE = Path(__file__).parent.parent / "fixtures" / "framework"
SERVER = [sys.executable, "-m", "promptls"]
CLIENTS = ["visual-studio-code", "neovim"]


def workspace_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the fixture framework (tests may change files on disk)."""
    root = tmp_path_factory.mktemp("ws") / "framework"
    shutil.copytree(FIXTURE, root)
    return root.resolve()


async def start(
    client: LanguageClient,
    spec: str,
    folders: list[Path],
    settings: dict[str, Any] | None = None,
) -> None:
    """Initialise a session as the client `spec` would, and wait for the index."""
    client.set_configuration({"promptls": {"diagnosticsDelay": 50, **(settings or {})}})
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(spec),
            root_uri=folders[0].as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=f.as_uri(), name=f.name) for f in folders],
        )
    )
    await wait_ready(client)


async def stats(client: LanguageClient) -> dict[str, Any]:
    """The server's `promptls/stats`."""
    result = await client.protocol.send_request_async("promptls/stats", None)
    plain = _plain(result)
    assert isinstance(plain, dict)
    return plain


async def wait_ready(client: LanguageClient, timeout: float = 30) -> None:
    """Wait until the background index is built."""
    for _ in range(int(timeout * 20)):
        if (await stats(client)).get("indexReady"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("index never became ready")


def pulls(client: LanguageClient) -> bool:
    """Whether this client pulls diagnostics (Neovim 0.11) or gets them pushed (VS Code 1.65)."""
    caps = client.capabilities
    return bool(caps and caps.text_document and caps.text_document.diagnostic)


async def diagnostics(
    client: LanguageClient, uri: str, *, version: int | None = None, timeout: float = 10
) -> list[types.Diagnostic]:
    """The diagnostics of `uri` as this client gets them (pulled, or the next push)."""
    if pulls(client):
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
        return list(report.items)
    seen = pushes(client)
    for _ in range(int(timeout * 20)):
        for params in reversed(seen):
            if params.uri == uri and (version is None or params.version == version):
                return list(params.diagnostics)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no diagnostics for {uri} version {version}")


def pushes(client: LanguageClient) -> list[types.PublishDiagnosticsParams]:
    """Every publishDiagnostics the client received, in order."""
    return client.__dict__.setdefault("promptls_pushes", [])


def open_doc(client: LanguageClient, path: Path, version: int = 1, text: str | None = None) -> str:
    """Open a file in the editor; returns its URI."""
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id="markdown",
                version=version,
                text=path.read_text(encoding="utf-8") if text is None else text,
            )
        )
    )
    return uri


def statuses(client: LanguageClient) -> list[dict[str, Any]]:
    """Every `promptls/status` notification received."""
    return client.__dict__.setdefault("promptls_status", [])


def registrations(client: LanguageClient) -> list[types.Registration]:
    """Every capability the server registered dynamically."""
    return client.__dict__.setdefault("promptls_registrations", [])


def record(client: LanguageClient) -> None:
    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def _register(params: types.RegistrationParams) -> None:
        registrations(client).extend(params.registrations)

    refreshes = client.__dict__.setdefault("promptls_refreshes", [])

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def _lens_refresh(params: None) -> None:
        refreshes.append("codeLens")

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def _hint_refresh(params: None) -> None:
        refreshes.append("inlayHint")

    features = client.protocol.fm.features
    default = features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def _published(params: types.PublishDiagnosticsParams) -> None:
        default(params)
        pushes(client).append(params)

    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _published

    @client.feature("promptls/status")
    def _status(params: Any) -> None:
        statuses(client).append(params if isinstance(params, dict) else _plain(params))


def _plain(value: Any) -> Any:
    """pygls hands untyped payloads over as named tuples: make them plain dicts."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__"):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(server_command=SERVER),
)
async def client(
    request: pytest.FixtureRequest,
    lsp_client: LanguageClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LanguageClient]:
    """A session over a fresh copy of the fixture framework, as VS Code and as Neovim."""
    record(lsp_client)
    root = workspace_copy(tmp_path_factory)
    lsp_client.__dict__["root"] = root
    lsp_client.__dict__["spec"] = request.param
    await start(lsp_client, request.param, [root])
    yield lsp_client
    await lsp_client.shutdown_session()
