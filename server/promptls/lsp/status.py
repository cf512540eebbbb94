"""`promptls/status` (the status bar's figures after each analysis) and `promptls/stats`."""

from __future__ import annotations

from typing import Any

from promptls.analysis.graph import ENTRY_KINDS
from promptls.lsp.server import PromptLanguageServer

STATUS = "promptls/status"
STATS = "promptls/stats"
LOAD_TREE = "promptls/loadTree"
COUNT_TOKENS = "promptls/countTokens"


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
    edits = index.edits if index is not None else {}
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
        # Messages being handled, by the futures the protocol holds for them (a notification's
        # is dropped once it is handled: pygls would keep every one).
        "futuresHeld": len(ls.protocol._request_futures),
        "workers": (
            {
                "processes": workers.running,
                "pids": workers.pids,
                "jobs": workers.jobs,
                "failures": workers.failures,
                "answersHeld": workers.held,
            }
            if (workers := ls.workers) is not None
            else None
        ),
        "cache": index.costs.stats().as_json() if index is not None else None,
        "edits": {
            "shifted": edits.get("shifted", 0),
            "regionChecked": edits.get("region", 0),
            "parsed": edits.get("parsed", 0),
        },
    }


def _param(params: Any, name: str) -> Any:
    if isinstance(params, dict):
        return params.get(name)
    return getattr(params, name, None)


def load_tree_request(ls: PromptLanguageServer, params: Any) -> dict[str, Any] | None:
    """`promptls/loadTree` `{uri}`: a file's load tree, as data and as `promptls graph` text."""
    from promptls.analysis.graph import TreeNode, load_tree, tree_lines

    uri = _param(params, "uri")
    fa = ls.analysis(uri) if isinstance(uri, str) else None
    index = ls.index
    if fa is None or index is None:
        return None
    tree = load_tree(index, fa.path)

    def node(n: TreeNode) -> dict[str, Any]:
        return {
            "path": index.workspace.relative(n.path),
            "uri": ls.uri_of(n.path),
            "tokens": n.tokens,
            "note": n.note,
            "children": [node(c) for c in n.children],
        }

    load_set = index.load_set(fa.path)
    return {
        "uri": uri,
        "files": len(load_set.files),
        "loadTokens": index.load_tokens(fa.path),
        "tree": node(tree),
        "text": "\n".join(tree_lines(tree, index.workspace.relative)),
    }


def count_tokens_request(ls: PromptLanguageServer, params: Any) -> dict[str, Any]:
    """`promptls/countTokens` `{text}` or `{uri, range}`: the exact count of a piece of text
    (the status bar's selection count)."""
    text = _param(params, "text")
    uri = _param(params, "uri")
    rng = _param(params, "range")
    if not isinstance(text, str) and isinstance(uri, str) and rng is not None:
        fa = ls.analysis(uri)
        if fa is not None:
            from promptls.analysis.text import Position

            lines = ls.line_index(fa)
            start, end = _param(rng, "start"), _param(rng, "end")
            a = lines.offset(
                Position(_param(start, "line"), _param(start, "character")), ls.position_encoding
            )
            b = lines.offset(
                Position(_param(end, "line"), _param(end, "character")), ls.position_encoding
            )
            text = fa.doc.text[min(a, b) : max(a, b)]
    if not isinstance(text, str):
        return {"tokens": 0}
    counter = ls.counter
    count = counter.count(text) if counter is not None else 0
    from promptls.analysis.tokens import calibrate

    return {"tokens": calibrate(count, ls.settings.calibration), "characters": len(text)}


def register(server: PromptLanguageServer) -> None:
    """Register the custom requests (the notification needs no registration)."""
    server.feature(STATS)(stats)
    server.feature(LOAD_TREE)(load_tree_request)
    server.feature(COUNT_TOKENS)(count_tokens_request)
