"""Hover on a reference: what the target is for, its tokens, its load cost, what it loads, and
how long loading it takes, cold and from the cache."""

from __future__ import annotations

from lsprotocol import types

from promptls.analysis.outline import describe
from promptls.lsp.convert import to_range
from promptls.lsp.hints import format_ms
from promptls.lsp.links import resolution_at
from promptls.lsp.server import PromptLanguageServer

#: What a reference that leads to no prompt file is, by the status of its resolution.
_WHY_NOT = {
    "unresolved": "not found",
    "outside": "outside the workspace: not read",
    "loop": "a symlink loop: not read",
    "directory": "a folder, not a file",
    "special": "not a regular file: not read",
    "mention": "a mention, naming no file",
    "uninstalled": "in a folder this project does not have (installed elsewhere): not checked",
}


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
        text = f"**{res.ref.target}**: {_WHY_NOT.get(res.status, res.status)}"
        if res.tried:
            text += f" (tried {', '.join(res.tried)})"
        if res.suggestion:
            text += f"; did you mean `{res.suggestion}`?"
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text), range=span
        )
    rel = index.workspace.relative
    parts = [f"**{rel(res.path)}** ({res.ref.form})"]
    target = index.get(res.path)
    cost = index.cost(res.path, "hover")
    if target is None or cost is None:
        parts.append("not loaded (not a prompt file)")
    else:
        info, from_cache, served_ms = cost
        purpose = describe(target.doc)
        if purpose:
            parts.append(purpose)
        parts.append(
            f"≈{info.tokens:,} tokens · load cost ≈{info.load_tokens:,} tokens "
            f"({len(info.load_files)} files)"
        )
        if info.references:
            parts.append(
                "Loads:\n"
                + "\n".join(f"- `{rel(p)}` ≈{tokens:,} tok" for p, tokens in info.references[:12])
                + (f"\n- … {len(info.references) - 12} more" if len(info.references) > 12 else "")
            )
        parts.append(
            f"Load time {format_ms(info.cold_ms)} cold, {format_ms(served_ms)} "
            + ("from the cache" if from_cache else "computed now (cached from here on)")
        )
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n".join(parts)),
        range=span,
    )


def register(server: PromptLanguageServer) -> None:
    """Register hover."""
    server.feature(types.TEXT_DOCUMENT_HOVER)(hover)
