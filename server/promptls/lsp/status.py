"""`promptls/status` (the status bar's figures after each analysis) and `promptls/stats`."""

from __future__ import annotations

from typing import Any

from promptls.analysis.graph import ENTRY_KINDS
from promptls.lsp.server import PromptLanguageServer

STATUS = "promptls/status"
STATS = "promptls/stats"


def status_payload(ls: PromptLanguageServer, uri: str) -> dict[str, Any] | None:
    """The status of an analysed document, or None when it is not a prompt file we index."""
    fa = ls.analysis(uri)
    index = ls.index
    if fa is None or index is None:
        return None
    load_set = index.load_set(fa.path)
    doc = ls.workspace.text_documents.get(uri)
    return {
        "uri": uri,
        "version": doc.version if doc is not None else None,
        "kind": fa.kind,
        "tokens": fa.tokens,
        "rawTokens": fa.raw_tokens,
        "budget": ls.settings.budgets.for_kind(fa.kind),
        "loadTokens": index.load_tokens(fa.path),
        "loadBudget": ls.settings.load_budget if fa.kind in ENTRY_KINDS else None,
        "loadFiles": len(load_set.files),
        "encoding": ls.settings.encoding,
    }


def send_status(ls: PromptLanguageServer, uri: str) -> None:
    """Notify the client of a document's figures."""
    payload = status_payload(ls, uri)
    if payload is not None:
        ls.protocol.notify(STATUS, payload)


def stats(ls: PromptLanguageServer, params: Any = None) -> dict[str, Any]:
    """`promptls/stats`: the server's counters."""
    index = ls.index
    files = dict(index.files) if index is not None else {}
    return {
        "documentsAnalysed": ls.stats.analysed,
        "analysisMs": {"p50": ls.stats.percentile(0.5), "p95": ls.stats.percentile(0.95)},
        "indexingSeconds": ls.stats.indexing_seconds,
        "indexReady": ls.ready.is_set(),
        "index": {
            "files": len(files),
            "tokens": sum(fa.tokens for fa in files.values()),
            "rawTokens": sum(fa.raw_tokens for fa in files.values()),
            "errors": len(index.errors) if index is not None else 0,
        },
        "encoding": ls.settings.encoding,
        "positionEncoding": ls.position_encoding.value,
    }


def register(server: PromptLanguageServer) -> None:
    """Register the custom request (the notification needs no registration)."""
    server.feature(STATS)(stats)
