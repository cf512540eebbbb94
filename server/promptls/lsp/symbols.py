"""Document symbols (headings and XML elements as a tree, at most `MAX_OUTLINE_DEPTH` levels
deep), folding ranges (every one, however deep, up to the client's `rangeLimit`), workspace
symbols."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from lsprotocol import types

from promptls.analysis.graph import FileAnalysis
from promptls.analysis.outline import (
    Fold,
    OutlineNode,
    describe,
    folds,
    limit_folds,
    outline,
    symbol_name,
)
from promptls.analysis.text import LineIndex, PositionEncoding, Range
from promptls.lsp.protocol import Encoded, PromptProtocol
from promptls.lsp.server import PromptLanguageServer

_KIND = {
    "heading": types.SymbolKind.Namespace,
    "element": types.SymbolKind.Object,
    "frontmatter": types.SymbolKind.Property,
}
_FILE_KIND = {
    "command": types.SymbolKind.Function,
    "agent": types.SymbolKind.Class,
    "skill": types.SymbolKind.Method,
    "module": types.SymbolKind.Module,
    "component": types.SymbolKind.Module,
    "memory": types.SymbolKind.File,
    "output-style": types.SymbolKind.Constant,
    "rule": types.SymbolKind.Constant,
    "project-config": types.SymbolKind.Struct,
}


def symbols_json(roots: list[OutlineNode], lines: LineIndex, enc: PositionEncoding) -> str:
    """The outline as a JSON array of LSP `DocumentSymbol`s, written straight from it (what
    pygls would write from lsprotocol objects, which cost four times as much to build: 13 ms
    for the 469 symbols of a 15,000-token module, where editors ask again after every change
    for their breadcrumbs, outline and sticky scroll), depth first without recursion."""
    out = ["["]
    levels = [iter(roots)]
    first = True
    while levels:
        node = next(levels[-1], None)
        if node is None:
            levels.pop()
            out.append("]}" if levels else "]")
            first = False
            continue
        if not first:
            out.append(",")
        r = _range_json(lines.range(node.start, node.end, enc))
        sel = _range_json(lines.range(node.selection_start, node.selection_end, enc))
        out.append(
            f'{{"name":{json.dumps(node.name)},"kind":{_KIND[node.kind].value},'
            f'"range":{r},"selectionRange":{sel}'
        )
        if node.detail:
            out.append(f',"detail":{json.dumps(node.detail)}')
        if node.children:
            out.append(',"children":[')
            levels.append(iter(node.children))
            first = True
        else:
            out.append("}")
            first = False
    return "".join(out)


def _range_json(r: Range) -> str:
    start, end = r.start, r.end
    return (
        f'{{"start":{{"line":{start.line},"character":{start.character}}},'
        f'"end":{{"line":{end.line},"character":{end.character}}}}}'
    )


def _remembered(
    ls: PromptLanguageServer, uri: str, fa: FileAnalysis, key: object, write: Callable[[], str]
) -> Encoded | list[Any]:
    """The answer `write` makes (JSON text) for the version of the document `fa` analysed: made
    once and kept (`PromptLanguageServer.answers`), sent as it is."""
    answers = ls.answers(uri, fa)
    known = answers.get(key)
    if known is None:
        encoded = write()
        if not isinstance(ls.protocol, PromptProtocol):  # (which alone sends JSON text as it is)
            return cast(list[Any], json.loads(encoded))
        known = answers[key] = Encoded(encoded)
    return known


async def document_symbol(
    ls: PromptLanguageServer, params: types.DocumentSymbolParams
) -> Encoded | list[Any]:
    """`textDocument/documentSymbol`, remembered encoded for the document's version."""
    uri = params.text_document.uri
    fa = ls.analysis(uri)
    if fa is None:
        return []
    enc = ls.position_encoding
    return _remembered(
        ls,
        uri,
        fa,
        ("symbols", enc),
        lambda: symbols_json(outline(fa.doc), ls.line_index(fa), enc),
    )


async def folding_range(
    ls: PromptLanguageServer, params: types.FoldingRangeParams
) -> Encoded | list[Any]:
    """`textDocument/foldingRange`: at most the client's `rangeLimit` (the longest ranges),
    remembered encoded for the document's version."""
    uri = params.text_document.uri
    fa = ls.analysis(uri)
    if fa is None:
        return []
    text_caps = ls.client_capabilities.text_document
    caps = text_caps.folding_range if text_caps is not None else None
    limit = caps.range_limit if caps is not None else None

    def write() -> str:
        found = limit_folds(folds(fa.doc, ls.line_index(fa)), limit)
        return "[" + ",".join(map(_fold_json, found)) + "]"

    return _remembered(ls, uri, fa, ("folding", limit), write)


def _fold_json(fold: Fold) -> str:
    kind = _FOLD_KIND.get(fold.kind)
    tail = f',"kind":"{kind}"' if kind else ""
    return f'{{"startLine":{fold.start_line},"endLine":{fold.end_line}{tail}}}'


_FOLD_KIND = {
    "comment": types.FoldingRangeKind.Comment.value,
    "region": types.FoldingRangeKind.Region.value,
}


def _matches(query: str, name: str) -> bool:
    """Case-insensitive subsequence match, as editors filter symbols."""
    it = iter(name.lower())
    return all(ch in it for ch in query.lower())


async def workspace_symbol(
    ls: PromptLanguageServer, params: types.WorkspaceSymbolParams
) -> list[types.WorkspaceSymbol]:
    """`workspace/symbol`: commands, modules, agents, skills (every prompt file) by name."""
    index = ls.index
    if index is None:
        return []
    with ls.lock:
        files = list(index.files.values())
    out: list[types.WorkspaceSymbol] = []
    for fa in files:
        if fa.kind == "other":
            continue
        name = symbol_name(fa.rel, fa.kind, fa.doc)
        if params.query and not _matches(params.query, name):
            continue
        out.append(
            types.WorkspaceSymbol(
                name=name,
                kind=_FILE_KIND.get(fa.kind, types.SymbolKind.File),
                location=types.Location(
                    uri=ls.uri_of(fa.path),
                    range=types.Range(
                        start=types.Position(line=0, character=0),
                        end=types.Position(line=0, character=0),
                    ),
                ),
                container_name=f"{fa.kind} · ≈{fa.tokens:,} tok · {describe(fa.doc)[:80]}".rstrip(
                    " ·"
                ),
            )
        )
    out.sort(key=lambda s: (len(s.name), s.name))
    return out[:500]


def register(server: PromptLanguageServer) -> None:
    """Register the symbol features."""
    server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)(document_symbol)
    server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)(folding_range)
    server.feature(types.WORKSPACE_SYMBOL)(workspace_symbol)
