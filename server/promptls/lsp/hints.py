"""Inlay hints beside each reference (`≈1,234 tok`, optionally the load time, cold and cached) and
the code lens at the top of each command and memory file (`Loads 9 files · ≈23,412 tokens ·
47 % of 50,000`). Every figure comes from the core's load-cost cache."""

from __future__ import annotations

from lsprotocol import types

from promptls.analysis.graph import ENTRY_KINDS
from promptls.lsp.convert import to_offset, to_position
from promptls.lsp.server import PromptLanguageServer

LENS_KINDS = frozenset({"command", "memory"}) | ENTRY_KINDS
SHOW_LOAD_TREE = "promptls.showLoadTree"


def format_ms(ms: float) -> str:
    """`0.4 ms`, `12 ms`, `0.01 ms`."""
    if ms >= 10:
        return f"{ms:.0f} ms"
    if ms >= 0.1:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


async def inlay_hint(
    ls: PromptLanguageServer, params: types.InlayHintParams
) -> list[types.InlayHint] | None:
    """`textDocument/inlayHint`: after each resolved reference in the range, what it costs.
    The hints of a document version are remembered with the costs they show: the editor asks
    again on every scroll, and a referenced file that changed changes its cost."""
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
    # (where, tokens, (cold ms, served ms) when load times are shown): what the hints say.
    shown: list[tuple[int, int, tuple[float, float] | None]] = []
    for res in fa.resolutions:
        ref = res.ref
        if res.status != "resolved" or res.path is None or ref.end < first or ref.end > last:
            continue
        found = index.cost(res.path, "reference")
        if found is None:
            continue  # resolved, but not a file that is loaded (an image, a folder)
        cost, _, served_ms = found
        times = (cost.cold_ms, served_ms) if settings.load_time else None
        shown.append((ref.end, cost.tokens, times))
    key = (enc, settings.tokens, settings.load_time, tuple(shown))
    remembered = ls.hint_cache.get(uri)
    if remembered is not None and remembered[0] is fa and remembered[1] == key:
        return remembered[2]
    hints: list[types.InlayHint] = []
    for end, tokens, times in shown:
        parts = []
        if settings.tokens:
            parts.append(f"≈{tokens:,} tok")
        if times is not None:
            parts.append(f"{format_ms(times[0])} (cached {format_ms(times[1])})")
        hints.append(
            types.InlayHint(
                position=to_position(lines, end, enc), label=" · ".join(parts), padding_left=True
            )
        )
    if len(ls.hint_cache) > 256:  # (documents never opened are asked about too)
        ls.hint_cache.clear()
    ls.hint_cache[uri] = (fa, key, hints)
    return hints


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
