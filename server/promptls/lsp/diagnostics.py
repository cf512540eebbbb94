"""Diagnostics: pull (`textDocument/diagnostic`, `workspace/diagnostic`) and push, with the same
findings, codes and ranges as `promptls check`."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterable

from lsprotocol import types

from promptls.analysis.graph import FileAnalysis
from promptls.analysis.incremental import text_edit
from promptls.analysis.text import LineIndex
from promptls.lsp.convert import to_diagnostic
from promptls.lsp.protocol import PromptProtocol
from promptls.lsp.server import BuiltDiagnostic, DiagnosticMemo, PromptLanguageServer

IDENTIFIER = "promptls"
log = logging.getLogger("promptls")


def pull_supported(ls: PromptLanguageServer) -> bool:
    """Whether the client pulls diagnostics."""
    td = ls.client_capabilities.text_document
    return bool(td and td.diagnostic)


def refresh_supported(ls: PromptLanguageServer) -> bool:
    """Whether the client accepts `workspace/diagnostic/refresh`."""
    ws = ls.client_capabilities.workspace
    return bool(ws and ws.diagnostics and ws.diagnostics.refresh_support)


def diagnostics_for(
    ls: PromptLanguageServer, fa: FileAnalysis, *, slow: bool = True
) -> list[types.Diagnostic]:
    """The LSP diagnostics of an analysed file (without the slow ones when `slow` is False)."""
    return [built.diagnostic for built in built_diagnostics(ls, fa, slow=slow)]


def built_diagnostics(
    ls: PromptLanguageServer, fa: FileAnalysis, *, slow: bool = True
) -> list[BuiltDiagnostic]:
    """`diagnostics_for`, each with the JSON text it was last pushed as (see `publish`)."""
    index = ls.index
    if index is None:
        return []
    findings = index.findings(fa.path, slow=slow)
    related: dict[str, LineIndex] = {}
    for f in findings:
        for rel in f.related:
            other = index.get(rel.path)
            if other is not None:
                related[rel.path] = ls.line_index(other)
    lines = ls.line_index(fa)
    encoding = ls.position_encoding
    # A keystroke changes few diagnostics, and the positions of few: those the last build made
    # are taken again, by their offsets, wherever the edit cannot have moved them.
    earlier = _Earlier(ls.diagnostic_memo.get(fa.path), lines, encoding)
    memo: dict[tuple[object, ...], BuiltDiagnostic] = {}
    out: list[BuiltDiagnostic] = []
    for f in findings:
        if f.related:
            out.append(BuiltDiagnostic(to_diagnostic(f, lines, encoding, related)))
            continue
        key = (f.code, f.severity, f.message, f.data, f.start, f.end)
        built = memo.get(key) or earlier.get(key)
        if built is None:
            built = BuiltDiagnostic(to_diagnostic(f, lines, encoding, related))
        memo[key] = built
        out.append(built)
    if len(ls.diagnostic_memo) > 64 and fa.path not in ls.diagnostic_memo:
        ls.diagnostic_memo.clear()  # (pulls of the whole workspace go through here too)
    ls.diagnostic_memo[fa.path] = DiagnosticMemo(lines, encoding, memo)
    return out


class _Earlier:
    """The diagnostics built for an earlier text of a file, found again for the current text.

    A diagnostic's range depends only on the text up to its end (and on the character after it
    when the one before is a `\r`): one that ends before the edit (the single span where the
    two texts differ) is unchanged. One on a line that starts after the edit has moved by the
    edit's length, its characters the same and its lines by as many as the edit added: it is
    the earlier diagnostic of the offsets before the edit, its range moved down when lines were
    added or removed. The others are built again."""

    __slots__ = ("after", "before", "built", "delta", "lines_added")

    def __init__(self, memo: DiagnosticMemo | None, lines: LineIndex, encoding: object) -> None:
        self.built = memo.built if memo is not None and memo.encoding is encoding else {}
        self.before = self.after = self.delta = self.lines_added = 0
        if not self.built or memo is None:
            return
        old, new = memo.lines.text, lines.text
        if old is new or old == new:
            self.before = self.after = len(new) + 1  # every offset is "before" the edit
            return
        edit = text_edit(old, new)
        # (an offset just after a `\r` starts a line or not as the next character is `\n`)
        self.before = edit.start - (new[edit.start - 1 : edit.start] == "\r")
        # The first line start after the edit's end: the lines from there on are the earlier
        # text's lines, moved.
        next_line = lines.line_of(edit.new_end) + 1
        self.after = lines.line_start(next_line) if next_line < lines.line_count else len(new) + 1
        self.delta = edit.delta
        self.lines_added = lines.line_count - memo.lines.line_count

    def get(self, key: tuple[object, ...]) -> BuiltDiagnostic | None:
        start, end = key[-2], key[-1]
        assert isinstance(start, int) and isinstance(end, int)
        if end <= self.before:
            return self.built.get(key)
        if start < self.after:
            return None
        found = self.built.get((*key[:-2], start - self.delta, end - self.delta))
        if found is None or not self.lines_added:
            return found
        r = found.diagnostic.range
        moved = types.Range(
            start=types.Position(r.start.line + self.lines_added, r.start.character),
            end=types.Position(r.end.line + self.lines_added, r.end.character),
        )
        diagnostic = copy.copy(found.diagnostic)
        diagnostic.range = moved
        return BuiltDiagnostic(diagnostic)


def _result_id(ls: PromptLanguageServer, uri: str) -> str:
    doc = ls.workspace.text_documents.get(uri)
    version = doc.version if doc is not None else "disk"
    return f"{uri}@{version}"


def _report(
    ls: PromptLanguageServer, uri: str, previous: str | None
) -> tuple[str, list[types.Diagnostic] | None]:
    """(resultId, diagnostics) or (resultId, None) when unchanged since `previous`."""
    fa = ls.analysis(uri)
    result_id = _result_id(ls, uri)
    items = diagnostics_for(ls, fa) if fa is not None else []
    last = ls.sent.get(uri)
    ls.sent[uri] = (result_id, items)
    if (
        previous is not None
        and previous == result_id
        and last is not None
        and last == (result_id, items)
    ):
        return result_id, None
    return result_id, items


async def document_diagnostic(
    ls: PromptLanguageServer, params: types.DocumentDiagnosticParams
) -> types.DocumentDiagnosticReport:
    """`textDocument/diagnostic`."""
    uri = params.text_document.uri
    await ls.wait_ready()
    result_id, items = _report(ls, uri, params.previous_result_id)
    if items is None:
        return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
    return types.RelatedFullDocumentDiagnosticReport(items=items, result_id=result_id)


async def workspace_diagnostic(
    ls: PromptLanguageServer, params: types.WorkspaceDiagnosticParams
) -> types.WorkspaceDiagnosticReport:
    """`workspace/diagnostic`: every indexed file."""
    await ls.wait_ready()
    index = ls.index
    if index is None:
        return types.WorkspaceDiagnosticReport(items=[])
    previous = {p.uri: p.value for p in params.previous_result_ids}
    reports: list[types.WorkspaceDocumentDiagnosticReport] = []
    with ls.lock:
        paths = sorted(index.files)
    for count, path in enumerate(paths):
        if count % 50 == 49:
            await asyncio.sleep(0)  # a point where $/cancelRequest can stop a long report
        uri = ls.uri_of(path)
        doc = ls.workspace.text_documents.get(uri)
        version = doc.version if doc is not None else None
        result_id, items = _report(ls, uri, previous.get(uri))
        if items is None:
            reports.append(
                types.WorkspaceUnchangedDocumentDiagnosticReport(
                    uri=uri, version=version, result_id=result_id
                )
            )
        else:
            reports.append(
                types.WorkspaceFullDocumentDiagnosticReport(
                    uri=uri, version=version, items=items, result_id=result_id
                )
            )
    return types.WorkspaceDiagnosticReport(items=reports)


def publish(ls: PromptLanguageServer, uri: str, *, slow: bool = True) -> None:
    """Push the diagnostics of an open document's current version. After an edit the fast
    findings go out first (`slow=False`) and the complete set follows unless the user types on."""
    doc = ls.workspace.text_documents.get(uri)
    fa = ls.analysis(uri)
    if doc is None:
        return
    if fa is None or fa.version != doc.version:
        return  # never publish a result for another version
    items = built_diagnostics(ls, fa, slow=slow)
    if isinstance(ls.protocol, PromptProtocol):
        # Each diagnostic is encoded once, while `built_diagnostics` keeps reusing it.
        protocol = ls.protocol
        texts: list[str] = []
        for item in items:
            if item.json is None:
                item.json = protocol.to_json(item.diagnostic)
            texts.append(item.json)
        listed = ",".join(texts)
        version = "" if doc.version is None else f',"version":{int(doc.version)}'
        protocol.notify_json(
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
            f'{{"uri":{json.dumps(uri)},"diagnostics":[{listed}]{version}}}',
        )
    else:
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri, diagnostics=[item.diagnostic for item in items], version=doc.version
            )
        )
    if not slow:
        _complete_later(ls, uri, doc.version)


def publish_early(ls: PromptLanguageServer, uri: str) -> bool:
    """Before the index is complete: push what the open document shows on its own (syntax,
    frontmatter, its own tokens, references against the disk); the full set follows when the
    index is ready. False when there was nothing to publish this way."""
    early = ls.early
    if early is None or pull_supported(ls):
        return False
    doc = ls.workspace.text_documents.get(uri)
    fa = ls.early_analysis(uri)
    if doc is None or fa is None or fa.version != doc.version:
        return False
    lines = ls.line_index(fa)
    encoding = ls.position_encoding
    items = [to_diagnostic(f, lines, encoding, {}) for f in early.own_findings(fa)]
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=items, version=doc.version)
    )
    return True


def _complete_later(ls: PromptLanguageServer, uri: str, version: int) -> None:
    """Publish the complete set of `version` once the user pauses. Its costly part (compressing
    the XML regions, hashing blocks for duplicates) runs on a worker thread, so that a keystroke
    meanwhile is not kept waiting; the set is published only if `version` is still current."""

    def current() -> bool:
        doc = ls.workspace.text_documents.get(uri)
        return doc is not None and doc.version == version

    def complete() -> None:
        ls.timers.pop("complete:" + uri, None)
        index = ls.index
        fa = ls.analysis(uri)
        if not current() or index is None or fa is None:
            return
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, index.prepare_slow, fa.path)
        ls.tasks.add(job)

        def done(finished: asyncio.Future[None]) -> None:
            ls.tasks.discard(finished)
            if finished.cancelled():
                return
            if finished.exception() is not None:  # computed again on the loop, and reported
                log.warning("slow findings of %s failed: %s", uri, finished.exception())
            if current():
                publish(ls, uri)

        job.add_done_callback(done)

    pending = ls.timers.pop("complete:" + uri, None)
    if pending is not None:
        pending.cancel()
    ls.timers["complete:" + uri] = asyncio.get_running_loop().call_later(0.05, complete)


def publish_affected(
    ls: PromptLanguageServer,
    affected: Iterable[str],
    origin: str | None = None,
    closed: str | None = None,
    staged: bool = False,
) -> None:
    """After an analysis: tell the client about every open document whose results changed.
    `staged` (while typing): the edited document's fast findings first, the rest just after."""
    from promptls.lsp.hints import refresh
    from promptls.lsp.status import send_status

    affected = set(affected)
    # The edited document first: its diagnostics are what the user waits for.
    open_uris = sorted(
        (u for u in ls.open_uris() if ls.uri_path(u) in affected or u == origin),
        key=lambda u: u != origin,
    )
    others = affected - ({ls.uri_path(origin)} if origin else set())
    if not pull_supported(ls):
        for uri in open_uris:
            publish(ls, uri, slow=not (staged and uri == origin))
        if closed is not None:
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=closed, diagnostics=[])
            )
    elif others and refresh_supported(ls):
        ls.refresh_client(types.WORKSPACE_DIAGNOSTIC_REFRESH)
    if others:
        refresh(ls)  # hints and lenses of other files show what changed
    for uri in open_uris:
        send_status(ls, uri)


def refresh_all(ls: PromptLanguageServer) -> None:
    """The whole index changed (indexing finished, settings changed)."""
    from promptls.lsp.hints import refresh

    refresh(ls)
    if pull_supported(ls):
        if refresh_supported(ls):
            ls.refresh_client(types.WORKSPACE_DIAGNOSTIC_REFRESH)
    else:
        for uri in ls.open_uris():
            publish(ls, uri)
    from promptls.lsp.status import send_status

    for uri in ls.open_uris():
        send_status(ls, uri)


def after_analysis(ls: PromptLanguageServer, uri: str, affected: set[str], staged: bool) -> None:
    """An open document was analysed: publish, refresh and update statuses as needed."""
    publish_affected(ls, affected, origin=uri, staged=staged)


def register(server: PromptLanguageServer) -> None:
    """Register pull diagnostics (push needs no registration)."""
    server.after_analysis = lambda uri, affected, staged: after_analysis(
        server, uri, affected, staged
    )
    server.feature(
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        types.DiagnosticOptions(
            identifier=IDENTIFIER, inter_file_dependencies=True, workspace_diagnostics=True
        ),
    )(document_diagnostic)
    server.feature(types.WORKSPACE_DIAGNOSTIC)(workspace_diagnostic)
