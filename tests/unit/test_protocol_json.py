"""Notifications sent from JSON text (`PromptProtocol.notify_json`) are the messages pygls would
send: the same framing, the same JSON once parsed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lsprotocol import types

from promptls.analysis.document import parse_document
from promptls.analysis.outline import OutlineNode, folds, limit_folds, outline
from promptls.analysis.text import LineIndex, PositionEncoding
from promptls.lsp.convert import to_range
from promptls.lsp.protocol import PromptProtocol
from promptls.lsp.server import create_server
from promptls.lsp.symbols import _KIND, _fold_json, symbols_json


class _Pipe:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def _messages(raw: bytes, framed: bool) -> list[dict[str, Any]]:
    if not framed:
        return [json.loads(raw)]
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
    assert int(fields["Content-Length"]) == len(body)
    assert fields["Content-Type"] == "application/vscode-jsonrpc; charset=utf-8"
    return [json.loads(body)]


def _diagnostic(line: int, message: str, **extra: Any) -> types.Diagnostic:
    return types.Diagnostic(
        range=types.Range(types.Position(line, 2), types.Position(line, 9)),
        message=message,
        severity=types.DiagnosticSeverity.Warning,
        code="unresolved-reference",
        source="promptls",
        **extra,
    )


@pytest.mark.parametrize("framed", [True, False], ids=["stdio", "websocket"])
@pytest.mark.parametrize("version", [7, None])
def test_publish_from_json_text_is_what_pygls_sends(framed: bool, version: int | None) -> None:
    server = create_server()
    protocol = server.protocol
    assert isinstance(protocol, PromptProtocol)
    pipe = _Pipe()
    protocol.set_writer(pipe, include_headers=framed)
    uri = "file:///w/.claude/commands/ship\u00e9.md"
    items = [
        _diagnostic(0, "no file “modules/x.md” \u2192 did you mean modules/y.md?"),
        _diagnostic(3, "over budget: 1,234 tokens", data={"tokens": 1234}),
        _diagnostic(
            5,
            "copy of a block",
            related_information=[
                types.DiagnosticRelatedInformation(
                    types.Location(uri, types.Range(types.Position(1, 0), types.Position(2, 0))),
                    "first here",
                )
            ],
            tags=[types.DiagnosticTag.Unnecessary],
        ),
    ]
    params = types.PublishDiagnosticsParams(uri=uri, diagnostics=items, version=version)
    protocol.notify(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS, params)
    listed = ",".join(protocol.to_json(d) for d in items)
    tail = "" if version is None else f',"version":{version}'
    protocol.notify_json(
        types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
        f'{{"uri":{json.dumps(uri)},"diagnostics":[{listed}]{tail}}}',
    )
    by_pygls, ours = pipe.sent
    assert ours.isascii()  # (non-ASCII escaped, as pygls writes it)
    assert _messages(ours, framed) == _messages(by_pygls, framed)


def test_nothing_is_sent_without_a_transport() -> None:
    protocol = create_server().protocol
    assert isinstance(protocol, PromptProtocol)
    protocol.notify_json("promptls/status", "{}")  # logged, not raised


def _open_protocol(text: str) -> tuple[PromptProtocol, list[Any]]:
    """A server's protocol, initialized, with `file:///w/a.md` open holding `text`; and the
    errors its server reports."""
    server = create_server()
    protocol = server.protocol
    assert isinstance(protocol, PromptProtocol)
    protocol.set_writer(_Pipe())
    protocol.handle_message(
        protocol.structure_message(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        )
    )
    protocol.workspace.put_text_document(
        types.TextDocumentItem(uri="file:///w/a.md", language_id="markdown", version=1, text=text)
    )
    reported: list[Any] = []
    server.report_server_error = lambda error, source: reported.append((error, source))  # type: ignore[method-assign]
    return protocol, reported


def _did_change(protocol: PromptProtocol, version: int, text: str) -> None:
    protocol.handle_message(
        protocol.structure_message(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didChange",
                "params": {
                    "textDocument": {"uri": "file:///w/a.md", "version": version},
                    "contentChanges": [
                        {
                            "range": {
                                "start": {"line": 1, "character": 0},
                                "end": {"line": 1, "character": 0},
                            },
                            "text": text,
                        }
                    ],
                },
            }
        )
    )


def test_did_change_is_applied_and_handled_at_once() -> None:
    protocol, reported = _open_protocol("one\ntwo\n")
    seen: list[int] = []
    protocol.fm.features[types.TEXT_DOCUMENT_DID_CHANGE] = lambda params: seen.append(
        params.text_document.version
    )
    _did_change(protocol, 2, "x")
    _did_change(protocol, 3, "y")
    doc = protocol.workspace.get_text_document("file:///w/a.md")
    assert (doc.source, doc.version, seen, reported) == ("one\nyxtwo\n", 3, [2, 3], [])
    assert protocol._request_futures == {}


def test_a_failing_did_change_handler_is_reported_and_the_text_still_changes() -> None:
    protocol, reported = _open_protocol("one\ntwo\n")

    def fail(params: types.DidChangeTextDocumentParams) -> None:
        raise RuntimeError("boom")

    protocol.fm.features[types.TEXT_DOCUMENT_DID_CHANGE] = fail
    _did_change(protocol, 2, "x")
    assert protocol.workspace.get_text_document("file:///w/a.md").source == "one\nxtwo\n"
    assert len(reported) == 1 and "boom" in str(reported[0][0])


def test_refresh_requests_one_at_a_time_and_one_after_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concurrent.futures import Future

    import promptls.lsp.server as server_module

    server = create_server()
    sent: list[Future[Any]] = []

    def send_request(method: str, params: Any) -> Future[Any]:
        sent.append(Future())
        return sent[-1]

    monkeypatch.setattr(server.protocol, "send_request", send_request)
    method = types.WORKSPACE_CODE_LENS_REFRESH
    server.refresh_client(method)
    server.refresh_client(method)
    server.refresh_client(method)
    assert len(sent) == 1  # the client has not answered
    sent[0].set_result(None)
    assert len(sent) == 2  # one more, for what changed meanwhile
    sent[1].set_result(None)
    assert len(sent) == 2  # nothing changed since
    server.refresh_client(method)
    assert len(sent) == 3
    monkeypatch.setattr(server_module, "REFRESH_LOST_AFTER", 0.0)
    server.refresh_client(method)  # the third is taken as lost
    assert len(sent) == 4
    sent[2].set_result(None)  # answered late: changes nothing
    assert len(sent) == 4
    monkeypatch.setattr(server_module, "REFRESH_LOST_AFTER", 5.0)
    server.refresh_client(method)  # the fourth is pending: asked again
    sent[3].cancel()  # pygls cancels what is pending at shutdown: nothing more is sent
    assert len(sent) == 4


_OUTLINED = (
    '---\ndescription: Ship\n---\n# Ship \u00e9\U0001f680\n\n```xml\n<command name="ship">\n'
    '  <step n="1">Build "it"</step>\n  <step>\u00e9\U0001f680 test</step>\n  <empty/>\n'
    '</command>\n```\n\n## Then\n\n<notes purpose="x">\n<a><b><c>deep</c></b></a>\n</notes>\n'
    "### Deeper\n\n# Last\n"
)


@pytest.mark.parametrize("encoding", list(PositionEncoding), ids=str)
@pytest.mark.parametrize("max_depth", [64, 3, 1])
def test_symbols_written_as_json_are_what_pygls_sends(
    encoding: PositionEncoding, max_depth: int
) -> None:
    """`symbols_json` against the same outline built as lsprotocol objects and written by
    pygls's converter (nested, flattened at the depth limit, with and without details)."""
    doc = parse_document(_OUTLINED, "command")
    roots = outline(doc, max_depth)
    lines = LineIndex(_OUTLINED)

    def built(node: OutlineNode) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=node.name,
            detail=node.detail or None,
            kind=_KIND[node.kind],
            range=to_range(lines, node.start, node.end, encoding),
            selection_range=to_range(lines, node.selection_start, node.selection_end, encoding),
            children=[built(c) for c in node.children] or None,
        )

    protocol = create_server().protocol
    assert isinstance(protocol, PromptProtocol)
    expected = json.loads(protocol.to_json([built(r) for r in roots]))
    written = symbols_json(roots, lines, encoding)
    assert written.isascii()
    assert json.loads(written) == expected
    assert '"children"' in written and '"detail"' in written
    assert symbols_json([], lines, encoding) == "[]"


def test_folds_written_as_json_are_what_pygls_sends() -> None:
    doc = parse_document(_OUTLINED + "<!--\na comment\n-->\n", "command")
    found = folds(doc)
    kinds = {"comment": types.FoldingRangeKind.Comment, "region": types.FoldingRangeKind.Region}
    built = [
        types.FoldingRange(start_line=f.start_line, end_line=f.end_line, kind=kinds.get(f.kind))
        for f in found
    ]
    protocol = create_server().protocol
    assert isinstance(protocol, PromptProtocol)
    written = "[" + ",".join(map(_fold_json, found)) + "]"
    assert json.loads(written) == json.loads(protocol.to_json(built))
    assert {f.kind for f in found} == {"region", "comment"}


@pytest.mark.parametrize("limit", [None, 0, 1, 3, 100])
def test_folds_within_the_clients_limit_are_the_longest(limit: int | None) -> None:
    found = folds(parse_document(_OUTLINED, "command"))
    kept = limit_folds(found, limit)
    if not limit or limit >= len(found):
        assert kept == found
        return
    assert len(kept) == limit
    assert kept == [f for f in found if f in kept]  # in their order
    shortest_kept = min(f.end_line - f.start_line for f in kept)
    assert all(f.end_line - f.start_line <= shortest_kept for f in found if f not in kept)
