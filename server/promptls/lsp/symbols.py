"""Document symbols (headings and XML elements as a tree, at most `MAX_OUTLINE_DEPTH` levels
deep), folding ranges (every one, however deep), workspace symbols."""

from __future__ import annotations

from lsprotocol import types

from promptls.analysis.outline import OutlineNode, describe, folds, outline, symbol_name
from promptls.analysis.text import LineIndex, PositionEncoding
from promptls.lsp.convert import to_range
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


def _symbols(
    roots: list[OutlineNode], lines: LineIndex, enc: PositionEncoding
) -> list[types.DocumentSymbol]:
    """The outline as LSP symbols, converted bottom-up without recursion."""
    order: list[OutlineNode] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    done: dict[int, types.DocumentSymbol] = {}
    for node in reversed(order):  # every node after its parent: children are converted first
        done[id(node)] = types.DocumentSymbol(
            name=node.name,
            detail=node.detail or None,
            kind=_KIND[node.kind],
            range=to_range(lines, node.start, node.end, enc),
            selection_range=to_range(lines, node.selection_start, node.selection_end, enc),
            children=[done.pop(id(c)) for c in node.children] or None,
        )
    return [done[id(r)] for r in roots]


async def document_symbol(
    ls: PromptLanguageServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol]:
    """`textDocument/documentSymbol`."""
    fa = ls.analysis(params.text_document.uri)
    if fa is None:
        return []
    lines = ls.line_index(fa)
    return _symbols(outline(fa.doc), lines, ls.position_encoding)


async def folding_range(
    ls: PromptLanguageServer, params: types.FoldingRangeParams
) -> list[types.FoldingRange]:
    """`textDocument/foldingRange`."""
    fa = ls.analysis(params.text_document.uri)
    if fa is None:
        return []
    kinds = {"comment": types.FoldingRangeKind.Comment, "region": types.FoldingRangeKind.Region}
    return [
        types.FoldingRange(start_line=f.start_line, end_line=f.end_line, kind=kinds.get(f.kind))
        for f in folds(fa.doc, ls.line_index(fa))
    ]


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
