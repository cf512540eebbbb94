"""Inlay hints beside each reference (`≈1,234 tok`, optionally the load time, cold and cached) and
the code lens at the top of each command and memory file (`Loads 9 files · ≈23,412 tokens ·
47 % of 50,000`). Every figure comes from the core's load-cost cache."""

from __future__ import annotations

from lsprotocol import types

from promptls.analysis.graph import ENTRY_KINDS
from promptls.lsp.convert import to_offset, to_position
from promptls.lsp.protocol import Encoded, PromptProtocol
from promptls.lsp.server import PromptLanguageServer

LENS_KINDS = frozenset({"command", "memory"}) | ENTRY_KINDS
SHOW_LOAD_TREE = "promptls.showLoadTree"
_RANGES_KEPT = 8
"""Encoded answers kept per document version: one per range of hints asked for (the editor asks
for the visible lines, of each view), up to this many (then begun afresh)."""


def format_ms(ms: float) -> str:
    """`0.4 ms`, `12 ms`, `0.01 ms`."""
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 0.1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


async def inlay_hint(
    ls: PromptLanguageServer, params: types.InlayHintParams
) -> Encoded | list[types.InlayHint]:
    """`textDocument/inlayHint`: after each resolved reference in the range, what it costs.
    The hints of a document version are remembered, encoded, by range and what they say: the
    editor asks again on every scroll, and a referenced file that changed changes its cost."""
    settings = ls.settings.hints
    uri = params.text_document.uri
    fa = ls.analysis(uri)
    index = ls.index
    if fa is None or index is None or not (settings.tokens or settings.load_time):
        return []
    lines = ls.line_index(fa)
    enc = ls.position_encoding
    first = to_offset(lines, params.range.start, enc)
    last = to_offset(lines, params.range.end, enc)
    shown: list[tuple[int, str]] = []  # (where, what the hint says)
    for res in fa.resolutions:
        ref = res.ref
        if res.status != "resolved" or res.path is None or ref.end < first or ref.end > last:
            continue
        found = index.cost(res.path, "reference")
        if found is None:
            continue  # resolved, but not a file that is loaded (an image, a folder)
        cost, _, served_ms = found
        parts = []
        if settings.tokens:
            parts.append(f"≈{cost.tokens:,} tok")
        if settings.load_time:
            parts.append(f"{format_ms(cost.cold_ms)} (cached {format_ms(served_ms)})")
        shown.append((ref.end, " · ".join(parts)))
    if not shown:
        return []
    key = (enc, tuple(shown))
    answers = ls.answers(uri, fa)
    known = answers.get(key)
    if known is not None:
        return known
    hints = [
        types.InlayHint(position=to_position(lines, end, enc), label=label, padding_left=True)
        for end, label in shown
    ]
    if not isinstance(ls.protocol, PromptProtocol):
        return hints
    encoded = Encoded(ls.protocol.to_json(hints))
    if len(answers) >= _RANGES_KEPT:  # (the ranges of a few views of the document)
        answers.clear()
    answers[key] = encoded
    return encoded


def lens_title(ls: PromptLanguageServer, path: str) -> str | None:
    """`Loads 9 files · ≈23,412 tokens · 47 % of 50,000 · declared ~10,000`."""
    index = ls.index
    fa = index.get(path) if index is not None else None
    if index is None or fa is None:
        return None
    found = index.cost(path, "root")
    if found is None:
        return None
    cost = found[0]
    budget = ls.settings.load_budget
    files = len(cost.load_files)
    title = f"Loads {files} file{'s' if files != 1 else ''} · ≈{cost.load_tokens:,} tokens"
    if budget:
        title += f" · {cost.load_tokens * 100 / budget:.0f} % of {budget:,}"
    declared = fa.doc.context_budget()
    if declared is not None:
        title += f" · declared ~{declared[0]:,}"
    return title


async def code_lens(ls: PromptLanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    """`textDocument/codeLens`: the load cost at the top of each command and memory file."""
    uri = params.text_document.uri
    fa = ls.analysis(uri)
    if fa is None or fa.kind not in LENS_KINDS:
        return []
    title = lens_title(ls, fa.path)
    if title is None:
        return []
    top = types.Range(
        start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)
    )
    return [
        types.CodeLens(
            range=top, command=types.Command(title=title, command=SHOW_LOAD_TREE, arguments=[uri])
        )
    ]


def refresh(ls: PromptLanguageServer) -> None:
    """Ask the client to re-request hints and lenses (a file they show changed)."""
    ws = ls.client_capabilities.workspace
    if ws and ws.inlay_hint and ws.inlay_hint.refresh_support:
        ls.refresh_client(types.WORKSPACE_INLAY_HINT_REFRESH)
    if ws and ws.code_lens and ws.code_lens.refresh_support:
        ls.refresh_client(types.WORKSPACE_CODE_LENS_REFRESH)


def register(server: PromptLanguageServer) -> None:
    """Register inlay hints and code lenses."""
    server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))(
        inlay_hint
    )
    server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))(
        code_lens
    )
