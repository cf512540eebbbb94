"""Hover on a reference: what the target is for, its tokens and its load cost."""

from __future__ import annotations

from lsprotocol import types

from promptls.analysis.outline import describe
from promptls.lsp.convert import to_range
from promptls.lsp.links import resolution_at
from promptls.lsp.server import PromptLanguageServer


async def hover(ls: PromptLanguageServer, params: types.HoverParams) -> types.Hover | None:
    """`textDocument/hover`."""
    found = resolution_at(ls, params.text_document.uri, params.position)
    index = ls.index
    if found is None or index is None:
        return None
    fa, res = found
    lines = ls.line_index(fa)
    span = to_range(lines, res.ref.start, res.ref.end, ls.position_encoding)
    if res.status != "resolved" or res.path is None:
        text = f"**{res.ref.target}**: {res.status}"
        if res.tried:
            text += f" (tried {', '.join(res.tried)})"
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text), range=span
        )
    target = index.get(res.path)
    rel = index.workspace.relative(res.path)
    parts = [f"**{rel}** ({res.ref.form})"]
    if target is None:
        parts.append("not loaded (not a prompt file)")
    else:
        purpose = describe(target.doc)
        if purpose:
            parts.append(purpose)
        load = index.load_set(res.path)
        parts.append(
            f"≈{target.tokens:,} tokens · loads {len(load.files)} files, "
            f"≈{index.load_tokens(res.path):,} tokens"
        )
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n".join(parts)),
        range=span,
    )


def register(server: PromptLanguageServer) -> None:
    """Register hover."""
    server.feature(types.TEXT_DOCUMENT_HOVER)(hover)
