"""Two workspace folders in one session: each indexed, each resolving inside itself."""

from __future__ import annotations

import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.conftest import diagnostics, open_doc, record, start, stats, workspace_copy

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "promptls"]))
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    record(lsp_client)
    yield lsp_client
    await lsp_client.shutdown_session()


async def test_two_folders(
    client: LanguageClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first = workspace_copy(tmp_path_factory)
    second = workspace_copy(tmp_path_factory)
    (second / ".claude/modules/quality/missing.md").write_text("# present in the second folder\n")
    await start(client, "visual-studio-code", [first, second])
    assert (await stats(client))["index"]["files"] == 2 * 6 + 1
    one = open_doc(client, first / ".claude/commands/ship.md")
    two = open_doc(client, second / ".claude/commands/ship.md")
    codes_one = {d.code for d in await diagnostics(client, one, version=1)}
    codes_two = {d.code for d in await diagnostics(client, two, version=1)}
    assert "unresolved-reference" in codes_one
    assert "unresolved-reference" not in codes_two
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="/ship"))
    assert len([s for s in found if s.name == "/ship"]) == 2
