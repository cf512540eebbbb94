"""The real server over stdio, as VS Code (push diagnostics, UTF-16) and Neovim (pull, UTF-8)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.e2e.conftest import (
    diagnostics,
    open_doc,
    pulls,
    pushes,
    stats,
    statuses,
    wait_ready,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")

SHIP = ".claude/commands/ship.md"


async def current_diagnostics(
    client: LanguageClient, uri: str, done: Callable[[list[types.Diagnostic]], bool]
) -> list[types.Diagnostic]:
    """The document's diagnostics (pulled, or the last pushed) once `done` holds of them, or
    after five seconds of asking."""
    found: list[types.Diagnostic] = []
    for _ in range(100):
        await asyncio.sleep(0.05)
        if pulls(client):
            found = await diagnostics(client, uri)
        else:
            found = list(client.diagnostics.get(uri, []))
        if done(found):
            break
    return found


def root_of(client: LanguageClient) -> Path:
    return client.__dict__["root"]


def check_json(root: Path, encoding: str) -> dict[str, dict]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "promptls",
            "check",
            str(root),
            "--format",
            "json",
            "--position-encoding",
            encoding,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {f["path"]: f for f in json.loads(out.stdout)["files"]}


def plain(diags: list[types.Diagnostic]) -> list[tuple[str, int, str, dict]]:
    return sorted(
        (
            str(d.code),
            int(d.severity or 0),
            d.message,
            {
                "start": {"line": d.range.start.line, "character": d.range.start.character},
                "end": {"line": d.range.end.line, "character": d.range.end.character},
            },
        )
        for d in diags
    )


def negotiated(client: LanguageClient) -> str:
    caps = client.capabilities
    encodings = caps.general.position_encodings if caps and caps.general else None
    return (
        str(encodings[0].value if hasattr(encodings[0], "value") else encodings[0])
        if encodings
        else "utf-16"
    )


def change(
    client: LanguageClient,
    uri: str,
    version: int,
    start: types.Position,
    text: str,
    end: types.Position | None = None,
) -> None:
    """Send one `didChange` replacing `start`..`end` (an insertion at `start` by default)."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=start, end=start if end is None else end), text=text
                )
            ],
        )
    )


async def test_diagnostics_match_the_cli(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    got = plain(await diagnostics(client, uri, version=1))
    expected = check_json(root, negotiated(client))[SHIP]["diagnostics"]
    severities = {"error": 1, "warning": 2, "information": 3, "hint": 4}
    want = sorted(
        (d["code"], severities[d["severity"]], d["message"], d["range"]) for d in expected
    )
    assert got == want
    assert {"xml-syntax", "unresolved-reference", "context-budget-mismatch"} <= {g[0] for g in got}
    # The server parsed the workspace on its worker processes (one per core but one), the
    # command line here.
    await wait_ready(client)
    workers = (await stats(client))["workers"]
    if sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1:
        assert workers["processes"] >= 1 and workers["jobs"] > 0 and workers["failures"] == 0
        assert workers["answersHeld"] == 0  # every answer taken
    assert plain(await diagnostics(client, uri, version=1)) == want


async def test_position_encoding_is_negotiated(client: LanguageClient) -> None:
    """The unclosed <step> line holds an emoji: its end column depends on the encoding."""
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    diags = await diagnostics(client, uri, version=1)
    (xml,) = [d for d in diags if d.code == "xml-syntax"]
    assert xml.range.start.line == 12 and xml.range.start.character == 4
    assert (await stats(client))["positionEncoding"] == negotiated(client)


async def test_incremental_edit_updates_diagnostics(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    # Close the <step> element: insert "</step>" at the end of line 12 (after the emoji).
    line = (root / SHIP).read_text().splitlines()[12]
    units = (
        len(line.encode("utf-16-le")) // 2 if negotiated(client) == "utf-16" else len(line.encode())
    )
    change(client, uri, 2, types.Position(line=12, character=units), "</step>")
    diags = await diagnostics(client, uri, version=2)
    assert "xml-syntax" not in {d.code for d in diags}
    assert "unresolved-reference" in {d.code for d in diags}


async def test_unsaved_module_edit_updates_the_command(client: LanguageClient) -> None:
    root = root_of(client)
    ship = open_doc(client, root / SHIP)
    await diagnostics(client, ship, version=1)
    for _ in range(200):
        if any(s["uri"] == ship for s in statuses(client)):
            break
        await asyncio.sleep(0.05)
    before = [s for s in statuses(client) if s["uri"] == ship][-1]["loadTokens"]
    gates = root / ".claude/modules/quality/gates.md"
    text = (
        gates.read_text() + "\nAn unsaved paragraph that adds tokens to every command loading it.\n"
    )
    open_doc(client, gates, version=1, text=text)
    for _ in range(200):
        after = [s for s in statuses(client) if s["uri"] == ship][-1]["loadTokens"]
        if after > before:
            break
        await asyncio.sleep(0.05)
    assert after > before
    assert "unsaved paragraph" not in gates.read_text()


async def test_status_notification(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    for _ in range(100):
        mine = [s for s in statuses(client) if s["uri"] == uri]
        if mine:
            break
        await asyncio.sleep(0.05)
    status = mine[-1]
    expected = check_json(root, "utf-16")[SHIP]
    assert status["tokens"] == expected["tokens"]
    assert status["loadTokens"] == expected["loadTokens"]
    assert status["loadFiles"] == len(expected["loads"])
    assert status["budget"] == 8000 and status["loadBudget"] == 50000
    assert status["version"] == 1


async def test_configuration_change_reanalyses(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    assert "load-budget" not in {d.code for d in await diagnostics(client, uri, version=1)}
    client.set_configuration({"promptls": {"diagnosticsDelay": 50, "loadBudget": 100}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if (await stats(client))["indexReady"]:
            codes = {d.code for d in await diagnostics(client, uri)}
            if "load-budget" in codes:
                break
    assert "load-budget" in codes


async def test_watched_file_created(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    assert "unresolved-reference" in {d.code for d in await diagnostics(client, uri, version=1)}
    missing = root / ".claude/modules/quality/missing.md"
    missing.write_text("# Now written\n")
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=missing.as_uri(), type=types.FileChangeType.Created)]
        )
    )
    found = await current_diagnostics(
        client, uri, lambda ds: all(d.code != "unresolved-reference" for d in ds)
    )
    assert "unresolved-reference" not in {d.code for d in found}


async def test_watched_files_changed_together(client: LanguageClient) -> None:
    """A branch switch: one notification creates a file a reference waited for and deletes one
    another reference loads; the diagnostics end as a fresh index would have them."""
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    before = [
        d for d in await diagnostics(client, uri, version=1) if d.code == "unresolved-reference"
    ]
    assert any("missing.md" in d.message for d in before)
    assert not any("gates.md" in d.message for d in before)
    missing = root / ".claude/modules/quality/missing.md"
    missing.write_text("# Now written\n")
    gates = root / ".claude/modules/quality/gates.md"
    gates.unlink()
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[
                types.FileEvent(uri=gates.as_uri(), type=types.FileChangeType.Deleted),
                types.FileEvent(uri=missing.as_uri(), type=types.FileChangeType.Created),
            ]
        )
    )
    found = await current_diagnostics(
        client, uri, lambda ds: any("gates.md" in d.message for d in ds)
    )
    messages = [d.message for d in found if d.code == "unresolved-reference"]
    assert any("gates.md" in m for m in messages)
    assert not any("missing.md" in m for m in messages)


async def test_progress_reported(client: LanguageClient) -> None:
    reports = [r for tokens in client.progress_reports.values() for r in tokens]
    kinds = [type(r).__name__ for r in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_document_symbols_and_folding(client: LanguageClient) -> None:
    uri = open_doc(client, root_of(client) / SHIP)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    names = [s.name for s in symbols]
    assert names == ["frontmatter", "Ship 🚀 a change"]
    heading = symbols[1]
    (command,) = heading.children
    assert command.name == "<command>"
    assert "<delegation>" in [c.name for c in command.children]
    folds = await client.text_document_folding_range_async(
        types.FoldingRangeParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert any(f.start_line == 0 and f.end_line == 3 for f in folds)  # frontmatter
    assert any(f.start_line == 6 for f in folds)  # the xml fence


async def test_links_definition_references_hover(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    links = await client.text_document_document_link_async(
        types.DocumentLinkParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    targets = sorted(Path(str(link.target)).name for link in links)
    assert targets == ["gates.md", "small-change.md"]
    position = types.Position(line=8, character=30)  # inside modules/dev/small-change.md
    found = await client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=position
        )
    )
    assert isinstance(found, list) and found[0].uri.endswith("dev/small-change.md")
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    assert hover is not None and "Make one small, tested change." in str(hover.contents.value)
    assert "tokens" in str(hover.contents.value)
    missing = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=10, character=35),  # in quality/missing.md
        )
    )
    assert missing is not None
    assert str(missing.contents.value) == (
        "**quality/missing.md**: not found (tried .claude/commands/, .claude/modules/, "
        ".claude/system/, .claude/, ./)"
    )
    gates = (root / ".claude/modules/quality/gates.md").as_uri()
    refs = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=types.TextDocumentIdentifier(uri=gates),
            position=types.Position(line=0, character=0),
            context=types.ReferenceContext(include_declaration=False),
        )
    )
    assert sorted(Path(r.uri).name for r in refs) == ["CLAUDE.md", "ship.md", "small-change.md"]


async def test_workspace_symbols(client: LanguageClient) -> None:
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="ship"))
    assert found and found[0].name == "/ship"
    every = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query=""))
    names = {s.name for s in every}
    assert {"/ship", "reviewer", "dev/small-change", "quality/gates"} <= names


async def test_workspace_diagnostic_pull(client: LanguageClient) -> None:
    if not pulls(client):
        pytest.skip("VS Code 1.65 does not pull diagnostics")
    report = await client.workspace_diagnostic_async(
        types.WorkspaceDiagnosticParams(previous_result_ids=[])
    )
    by_uri = {Path(r.uri).name: r for r in report.items}
    assert "ship.md" in by_uri and by_uri["ship.md"].items
    ids = [
        types.PreviousResultId(uri=r.uri, value=r.result_id) for r in report.items if r.result_id
    ]
    again = await client.workspace_diagnostic_async(
        types.WorkspaceDiagnosticParams(previous_result_ids=ids)
    )
    assert all(isinstance(r, types.WorkspaceUnchangedDocumentDiagnosticReport) for r in again.items)


async def test_pull_unchanged_report(client: LanguageClient) -> None:
    if not pulls(client):
        pytest.skip("VS Code 1.65 does not pull diagnostics")
    uri = open_doc(client, root_of(client) / SHIP)
    first = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert first.result_id == f"{uri}@1"
    second = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(
            text_document=types.TextDocumentIdentifier(uri=uri), previous_result_id=first.result_id
        )
    )
    assert isinstance(second, types.RelatedUnchangedDocumentDiagnosticReport)


async def test_handler_error_does_not_kill_the_server(client: LanguageClient) -> None:
    bogus = "file:///nowhere/at/all.md"
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=bogus))
    )
    assert symbols == []
    assert (await stats(client))["index"]["files"] > 0


async def test_watched_files_registered_dynamically(client: LanguageClient) -> None:
    from tests.e2e.conftest import registrations

    caps = client.capabilities
    watch = caps.workspace.did_change_watched_files if caps and caps.workspace else None
    found = [
        r for r in registrations(client) if r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES
    ]
    if watch and watch.dynamic_registration:
        assert found
    else:
        assert not found


async def test_typing_never_publishes_a_stale_version(client: LanguageClient) -> None:
    from tests.e2e.conftest import pushes

    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    start = len(pushes(client))
    for version in range(2, 12):
        change(client, uri, version, types.Position(line=4, character=0), "x")
    final = await diagnostics(client, uri, version=11)
    assert {d.code for d in final} >= {"xml-syntax"}
    await asyncio.sleep(0.5)
    versions = [p.version for p in pushes(client)[start:] if p.uri == uri]
    assert versions == sorted(versions)
    if not pulls(client):
        assert versions and versions[-1] == 11
        assert len(versions) < 10  # debounced: not one analysis per keystroke


async def test_notifications_leave_no_futures_behind(client: LanguageClient) -> None:
    """pygls keeps a future for each notification it handles; a server open all day would
    hold one per keystroke. Typing, saving, closing and opening again leave none."""
    root = root_of(client)
    path = root / SHIP
    uri = open_doc(client, path)
    await diagnostics(client, uri, version=1)
    for version in range(2, 42):
        change(client, uri, version, types.Position(line=0, character=0), "x" * (version % 2))
    await diagnostics(client, uri, version=41)
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    uri = open_doc(client, path, version=50)
    await diagnostics(client, uri, version=50)
    await asyncio.sleep(0.2)
    assert (await stats(client))["futuresHeld"] == 0


async def test_watched_file_deleted(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    assert "unresolved-reference" in {d.code for d in await diagnostics(client, uri, version=1)}
    gates = root / ".claude/modules/quality/gates.md"
    gates.unlink()
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=gates.as_uri(), type=types.FileChangeType.Deleted)]
        )
    )
    found = await current_diagnostics(
        client, uri, lambda ds: sum(d.code == "unresolved-reference" for d in ds) == 2
    )
    unresolved = [d for d in found if d.code == "unresolved-reference"]
    assert any("gates.md" in d.message for d in unresolved)


async def test_load_tree_and_count_tokens(client: LanguageClient) -> None:
    from tests.e2e.conftest import _plain

    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    tree = _plain(await client.protocol.send_request_async("promptls/loadTree", {"uri": uri}))
    expected = check_json(root, "utf-16")[SHIP]
    assert tree["loadTokens"] == expected["loadTokens"]
    assert tree["files"] == len(expected["loads"])
    assert [c["path"] for c in tree["tree"]["children"]] == expected["loads"][1:3]
    assert tree["text"].splitlines()[0].startswith(".claude/commands/ship.md")
    count = _plain(
        await client.protocol.send_request_async("promptls/countTokens", {"text": "hello world"})
    )
    assert count["tokens"] == 2
    ranged = _plain(
        await client.protocol.send_request_async(
            "promptls/countTokens",
            {
                "uri": uri,
                "range": {"start": {"line": 4, "character": 0}, "end": {"line": 5, "character": 0}},
            },
        )
    )
    assert ranged["tokens"] > 0


def _hint_texts(hints: list[types.InlayHint] | None) -> list[str]:
    return [
        h.label if isinstance(h.label, str) else "".join(p.value for p in h.label)
        for h in hints or []
    ]


async def _hints(
    client: LanguageClient, uri: str, first: int = 0, last: int = 200
) -> list[types.InlayHint]:
    return list(
        await client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(
                    start=types.Position(line=first, character=0),
                    end=types.Position(line=last, character=0),
                ),
            )
        )
        or []
    )


async def _lens(client: LanguageClient, uri: str) -> str:
    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert lenses and lenses[0].command is not None
    assert lenses[0].command.command == "promptls.showLoadTree"
    assert list(lenses[0].command.arguments or []) == [uri]
    return lenses[0].command.title


async def test_inlay_hints_equal_the_targets_tokens(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    expected = check_json(root, "utf-16")
    hints = await _hints(client, uri)
    texts = _hint_texts(hints)
    small = expected[".claude/modules/dev/small-change.md"]["tokens"]
    gates = expected[".claude/modules/quality/gates.md"]["tokens"]
    assert texts == [f"≈{small:,} tok", f"≈{gates:,} tok"]  # the unresolved reference has none
    # each hint sits right after its reference
    line = (root / SHIP).read_text().splitlines()[8]
    assert hints[0].position.line == 8
    assert line[: hints[0].position.character].endswith("modules/dev/small-change.md")


async def test_inlay_hints_of_each_range_asked_in_turn(client: LanguageClient) -> None:
    """Two views of one document ask for their ranges in turn: each gets the hints of its own
    lines, the same each time (the server remembers them by range)."""
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    whole = await _hints(client, uri)
    assert len(whole) == 2
    line = whole[0].position.line
    for _ in range(3):
        assert await _hints(client, uri) == whole
        assert await _hints(client, uri, line, line + 1) == whole[:1]
        assert await _hints(client, uri, line + 1, 200) == whole[1:]
        assert await _hints(client, uri, 0, line) == []


async def test_code_lens_equals_the_load_cost(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    expected = check_json(root, "utf-16")[SHIP]
    title = await _lens(client, uri)
    load = expected["loadTokens"]
    files = len(expected["loads"])
    share = f"{load * 100 / 50000:.0f} %"
    assert title == f"Loads {files} files · ≈{load:,} tokens · {share} of 50,000 · declared ~50"


async def test_editing_a_module_updates_every_command_lens_and_hint(client: LanguageClient) -> None:
    root = root_of(client)
    ship = open_doc(client, root / SHIP)
    memory = open_doc(client, root / "CLAUDE.md")
    await diagnostics(client, ship, version=1)
    before_ship, before_memory = await _lens(client, ship), await _lens(client, memory)
    before_hint = _hint_texts(await _hints(client, ship))[1]
    gates = root / ".claude/modules/quality/gates.md"
    extra = "\nA new unsaved paragraph, long enough to change the count of every loader.\n"
    open_doc(client, gates, version=1, text=gates.read_text() + extra)
    for _ in range(100):
        await asyncio.sleep(0.05)
        after_ship, after_memory = await _lens(client, ship), await _lens(client, memory)
        if after_ship != before_ship and after_memory != before_memory:
            break
    assert after_ship != before_ship and after_memory != before_memory
    after_hint = _hint_texts(await _hints(client, ship))[1]
    assert after_hint != before_hint
    cache = (await stats(client))["cache"]
    assert cache["invalidations"] > 0
    assert _hint_texts(await _hints(client, ship))[1] == after_hint
    assert (await stats(client))["cache"]["hits"] >= cache["hits"] + 2  # unchanged: from the cache


async def test_refresh_requests_wait_for_the_clients_answer(client: LanguageClient) -> None:
    """Typing in a module that a command loads asks the client to refresh hints and lenses;
    while it has not answered, no second request of the kind goes out, and one follows the
    answer (the last change is always shown)."""
    root = root_of(client)
    ship = open_doc(client, root / SHIP)
    await diagnostics(client, ship, version=1)
    gates = root / ".claude/modules/quality/gates.md"
    uri = open_doc(client, gates)
    await diagnostics(client, uri, version=1)
    arrived: list[float] = []

    async def slow_refresh(params: None) -> None:
        arrived.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.4)

    workspace = client.capabilities.workspace
    hints, lenses = workspace and workspace.inlay_hint, workspace and workspace.code_lens
    if hints and hints.refresh_support:
        method = types.WORKSPACE_INLAY_HINT_REFRESH
    elif lenses and lenses.refresh_support:
        method = types.WORKSPACE_CODE_LENS_REFRESH
    else:
        pytest.skip("the client takes no refresh requests")
    client.protocol.fm.features[method] = slow_refresh
    last_sent = 0.0
    for version in range(2, 12):
        change(client, uri, version, types.Position(line=0, character=0), "word ")
        last_sent = asyncio.get_running_loop().time()
        await diagnostics(client, uri, version=version)
    await asyncio.sleep(1.5)
    assert 2 <= len(arrived) <= 4, arrived  # ten analyses, each asking for a refresh
    assert arrived[-1] > last_sent
    assert all(b - a >= 0.39 for a, b in itertools.pairwise(arrived))  # never two unanswered
    assert (await stats(client))["futuresHeld"] == 0


async def test_hover_shows_costs_and_cache(client: LanguageClient) -> None:
    uri = open_doc(client, root_of(client) / SHIP)
    position = types.Position(line=8, character=30)
    first = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    second = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    assert first is not None and second is not None
    text = str(second.contents.value)
    assert "load cost" in text and "Loads:" in text and "quality/gates.md" in text
    assert "cold" in text and "from the cache" in text


async def test_duplicate_content_diagnostic(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / ".claude/modules/quality/gates.md")
    diags = await diagnostics(client, uri, version=1)
    (dup,) = [d for d in diags if d.code == "duplicate-content"]
    assert dup.severity == types.DiagnosticSeverity.Information
    assert dup.related_information and dup.related_information[0].location.uri.endswith(
        "dev/small-change.md"
    )


def _spans(text: str, edits: list[types.TextEdit], encoding: str) -> list[tuple[int, int, str]]:
    """The edits as (start, end, new text) offsets into `text`, in order."""
    from promptls.analysis.text import LineIndex, Position, PositionEncoding

    index = LineIndex(text)
    enc = PositionEncoding(encoding)
    return sorted(
        (
            index.offset(Position(e.range.start.line, e.range.start.character), enc),
            index.offset(Position(e.range.end.line, e.range.end.character), enc),
            e.new_text,
        )
        for e in edits
    )


def _apply(text: str, edits: list[types.TextEdit], encoding: str) -> str:
    for start, end, new in reversed(_spans(text, edits, encoding)):
        text = text[:start] + new + text[end:]
    return text


def _edits_of(action: types.CodeAction, uri: str) -> list[types.TextEdit]:
    edit = action.edit
    assert edit is not None
    if edit.document_changes:
        (change,) = edit.document_changes
        assert isinstance(change, types.TextDocumentEdit)
        return [e for e in change.edits if isinstance(e, types.TextEdit)]
    assert edit.changes is not None
    return list(edit.changes[uri])


async def _actions(
    client: LanguageClient,
    uri: str,
    only: list[str] | None = None,
    diagnostics: list[types.Diagnostic] | None = None,
) -> list[types.CodeAction]:
    """The code actions over the first 400 lines, for `diagnostics` (none by default)."""
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0), end=types.Position(line=400, character=0)
            ),
            context=types.CodeActionContext(diagnostics=diagnostics or [], only=only),
        )
    )
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


async def _resolved(client: LanguageClient, action: types.CodeAction) -> types.CodeAction:
    if action.edit is None:
        return await client.code_action_resolve_async(action)
    return action


async def test_compression_quick_fix_matches_the_cli(client: LanguageClient) -> None:
    import re
    import shutil

    root = root_of(client)
    rel = ".claude/modules/dev/small-change.md"
    uri = open_doc(client, root / rel)
    await diagnostics(client, uri, version=1)
    actions = [a for a in await _actions(client, uri) if a.kind == types.CodeActionKind.QuickFix]
    (action,) = [a for a in actions if a.title.startswith("Compress <module> block")]
    assert re.fullmatch(r"Compress <module> block: -\d+ tokens \(-\d+%\)", action.title)
    resolved = await _resolved(client, action)
    text = (root / rel).read_text()
    edits = _edits_of(resolved, uri)
    applied = _apply(text, edits, negotiated(client))
    # The smallest edits, not the block replaced whole: here each takes white space away.
    spans = _spans(text, edits, negotiated(client))
    assert len(spans) > 1
    assert all(not text[s:e].strip() and not new.strip() for s, e, new in spans)
    copy = root.parent / "cli-copy"
    shutil.copytree(root, copy)
    subprocess.run(
        [sys.executable, "-m", "promptls", "compress", str(copy), "--write"],
        check=False,
        capture_output=True,
    )
    assert applied == (copy / rel).read_text()
    saved = int(re.search(r"-(\d+) tokens", action.title).group(1))  # type: ignore[union-attr]
    from promptls.analysis.tokens import TokenCounter

    counter = TokenCounter()
    assert counter.count_exact((root / rel).read_text()) - counter.count_exact(applied) == saved


async def test_xml_quick_fixes_replace_delete_or_escape(client: LanguageClient) -> None:
    root = root_of(client)
    path = root / ".claude/modules/dev/quotes.md"
    text = '# Quotes\n\n```xml\n<metric">R&D</metric">\n<step>run <package> now</step>\n```\n'
    uri = open_doc(client, path, text=text)
    diags = [
        d
        for d in await current_diagnostics(
            client, uri, lambda ds: sum(d.code == "xml-syntax" for d in ds) == 4
        )
        if d.code == "xml-syntax"
    ]
    assert sorted(str(d.severity) for d in diags) == sorted(
        str(s) for s in [types.DiagnosticSeverity.Warning] * 3 + [types.DiagnosticSeverity.Error]
    )
    fixes = [
        a
        for a in await _actions(client, uri, ["quickfix"], diags)
        if a.diagnostics and a.diagnostics[0] in diags
    ]
    assert sorted((a.title, bool(a.is_preferred)) for a in fixes) == [
        ('Delete `"`', True),
        ('Delete `"`', True),
        ("Replace `&` with `&amp;`", True),
        ("Replace `<package>` with `&lt;package>`", False),  # (a guess: never preferred)
    ]
    edits = [e for a in fixes for e in _edits_of(a, uri)]
    assert _apply(text, edits, negotiated(client)) == (
        "# Quotes\n\n```xml\n<metric>R&amp;D</metric>\n<step>run &lt;package> now</step>\n```\n"
    )


async def test_malformed_block_is_never_restructured(client: LanguageClient) -> None:
    root = root_of(client)
    uri = open_doc(client, root / SHIP)
    await diagnostics(client, uri, version=1)
    for action in await _actions(client, uri, [types.CodeActionKind.Source]):
        text = (root / SHIP).read_text()
        applied = _apply(text, _edits_of(await _resolved(client, action), uri), negotiated(client))
        assert applied.count("\n") == text.count("\n")
        assert applied.split() == text.split()


async def test_source_actions_offered(client: LanguageClient) -> None:
    uri = open_doc(client, root_of(client) / ".claude/modules/dev/small-change.md")
    await diagnostics(client, uri, version=1)
    kinds = {
        a.kind
        for a in await _actions(client, uri, ["source.compressXml.promptls", "source.fixAll"])
    }
    assert kinds == {"source.compressXml.promptls", "source.fixAll.promptls"}
    assert "xml-compressible" not in {d.code for d in await diagnostics(client, uri)}  # < 20 tokens
    client.set_configuration(
        {"promptls": {"diagnosticsDelay": 50, "compression": {"minSaving": 1}}}
    )
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    codes: set[str] = set()
    for _ in range(200):
        await asyncio.sleep(0.05)
        if (await stats(client))["indexReady"]:
            codes = {str(d.code) for d in await diagnostics(client, uri)}
            if "xml-compressible" in codes:
                break
    assert "xml-compressible" in codes


RAW_COMMAND = """---
description: Review in raw XML
---

# Review

Prose to type in, over
two lines.

<command name="review">
  <purpose>Review the change; keep it short.</purpose>
  <module>quality/missing.md - not there</module>
  <step>Read the diff.</step>
</command>

```xml
<notes>
  <note>Fenced words.</note>
</notes>
```
"""


async def _complete_set(client: LanguageClient, uri: str, version: int) -> list[types.Diagnostic]:
    """The complete diagnostics of `version` (pushed after the fast set, once typing pauses)."""
    if pulls(client):
        return await diagnostics(client, uri, version=version)
    await diagnostics(client, uri, version=version)
    for _ in range(200):
        sets = [p for p in pushes(client) if p.uri == uri and p.version == version]
        if len(sets) >= 2:
            return list(sets[-1].diagnostics)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no complete set for version {version}")


async def test_keystrokes_show_what_the_cli_shows(client: LanguageClient) -> None:
    """Typing in raw XML, prose, a fence and the frontmatter, Enter, a tag renamed, a heading
    made and a backtick typed: each version's diagnostics are those `promptls check` gives for
    the same text, and `promptls/stats` tells how each edit was analysed (shifted, one region
    checked again, or the file parsed again)."""
    root = root_of(client)
    path = root / ".claude/commands/raw.md"
    path.write_text(RAW_COMMAND)
    text = RAW_COMMAND
    uri = open_doc(client, path, text=text)
    await diagnostics(client, uri, version=1)
    before = (await stats(client))["edits"]

    def at(offset: int) -> types.Position:
        line = text.count("\n", 0, offset)
        return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))

    edits = [  # (where: a piece of the text and an offset into it, removed, inserted)
        ("the diff", 3, 0, "x"),  # element text in raw XML: shifted
        ("two lines", 3, 0, "\n"),  # Enter in prose: shifted
        ("Fenced", 6, 0, " more"),  # element text in a fence: shifted
        ("<notes>", 6, 0, "x"),  # a tag renamed in a fence: the region checked again
        ("Review in", 6, 0, "ed"),  # the frontmatter's YAML: shifted
        ("Prose to", 0, 0, "# "),  # a heading made: shifted (its line looked at again)
        ("Prose to", 0, 0, "`"),  # a backtick typed (code spans may pair anew): parsed again
    ]
    for version, (piece, into, removed, inserted) in enumerate(edits, 2):
        offset = text.index(piece) + into
        change(client, uri, version, at(offset), inserted, at(offset + removed))
        text = text[:offset] + inserted + text[offset + removed :]
        got = plain(await _complete_set(client, uri, version))
        path.write_text(text)
        expected = check_json(root, negotiated(client))[".claude/commands/raw.md"]["diagnostics"]
        severities = {"error": 1, "warning": 2, "information": 3, "hint": 4}
        want = sorted(
            (d["code"], severities[d["severity"]], d["message"], d["range"]) for d in expected
        )
        assert got == want, (version, inserted)
    after = (await stats(client))["edits"]
    done = {k: after[k] - before[k] for k in after}
    assert done == {"shifted": 5, "regionChecked": 1, "parsed": 1}
