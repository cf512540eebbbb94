"""Text synchronisation: open, incremental change (debounced analysis), save and close.

The protocol applies each change to the server's copy of the document the LSP way
(`lsp/protocol.py`, `analysis.text.apply_changes`); the analysis of a version runs once,
after the user pauses typing, and a result for an older version is never published.
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from promptls.lsp.diagnostics import publish_affected, publish_early
from promptls.lsp.protocol import PromptProtocol
from promptls.lsp.server import PromptLanguageServer

log = logging.getLogger("promptls")


def _analyse_now(ls: PromptLanguageServer, uri: str, *, typing: bool = False) -> None:
    ls.timers.pop(uri, None)
    doc = ls.workspace.text_documents.get(uri)
    if doc is None or ls.index is None:
        return
    if not ls.ready.is_set():
        publish_early(ls, uri)  # the file on its own now; everything once the index is ready
        return
    if ls.analysed_versions.get(uri) == doc.version:
        return
    ls.reanalyse(uri, staged=typing)


def schedule(ls: PromptLanguageServer, uri: str, delay: float | None = None) -> None:
    """Analyse `uri` after the debounce delay, replacing a pending analysis."""
    pending = ls.timers.pop(uri, None)
    if pending is not None:
        pending.cancel()
    loop = asyncio.get_running_loop()
    wait = ls.settings.diagnostics_delay / 1000 if delay is None else delay
    ls.timers[uri] = loop.call_later(wait, lambda: _analyse_now(ls, uri, typing=True))


async def did_open(ls: PromptLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    """A document opened: analyse it straight away, then, on a thread, give the XML checks a
    worker process made of it what its edits resume from."""
    uri = params.text_document.uri
    _analyse_now(ls, uri)
    resume_edits_later(ls, uri)


def resume_edits_later(ls: PromptLanguageServer, uri: str) -> None:
    """`WorkspaceIndex.resume_edits` of the open document `uri`, on a thread (once indexed)."""
    index, path = ls.index, ls.path_of(uri)
    if index is None or path is None or not ls.ready.is_set():
        return

    def resume() -> None:
        index.resume_edits(path)

    job = asyncio.get_running_loop().run_in_executor(None, resume)
    ls.tasks.add(job)

    def done(finished: asyncio.Future[None]) -> None:
        ls.tasks.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            log.warning("could not prepare the edits of %s: %s", uri, finished.exception())

    job.add_done_callback(done)


def did_change(ls: PromptLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    """The user typed: analyse once they pause. (Not a coroutine: the timer starts at once.)"""
    schedule(ls, params.text_document.uri)


async def did_save(ls: PromptLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    """Saved: make sure the saved version is analysed."""
    _analyse_now(ls, params.text_document.uri)


async def did_close(ls: PromptLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    """Closed: the disk is the truth again for this file."""
    uri = params.text_document.uri
    pending = ls.timers.pop(uri, None)
    if pending is not None:
        pending.cancel()
    ls.analysed_versions.pop(uri, None)
    ls.encoded.pop(uri, None)
    if isinstance(ls.protocol, PromptProtocol):
        ls.protocol.forget_lines(uri)
    path = ls.path_of(uri)
    index = ls.index
    if path is not None:
        ls.diagnostic_memo.pop(path, None)
    if path is None or index is None:
        return
    with ls.lock:
        index.workspace.overlay.pop(path, None)
        affected = index.update(path) if _exists(path) else index.remove(path)
    publish_affected(ls, affected, closed=uri)


def _exists(path: str) -> bool:
    import os

    return os.path.isfile(path)


def register(server: PromptLanguageServer) -> None:
    """Register text synchronisation."""
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))(did_save)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
