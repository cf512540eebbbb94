"""Code actions: XML compression (quick fix per block with the exact saving in its title, a whole-
file source action, fix-all) and the escape fixes of lexical XML problems. Edits are computed when
an action is chosen (`codeAction/resolve`), as the smallest edits inside the XML region (see
`smallest_edits`), versioned."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from promptls.analysis.graph import FileAnalysis
from promptls.analysis.text import smallest_edits
from promptls.lsp.convert import to_offset, to_range
from promptls.lsp.server import PromptLanguageServer

if TYPE_CHECKING:  # imported by the index when first needed (slow to import)
    from promptls.analysis.compress import RegionEdit

COMPRESS_FILE = "source.compressXml.promptls"
FIX_ALL = "source.fixAll.promptls"
#: XML problems whose fix is one reading among others: offered, never preferred.
_GUESSED_FIXES = frozenset({"unclosed-element"})
KINDS = [types.CodeActionKind.QuickFix, COMPRESS_FILE, FIX_ALL]


def title_for(edit: RegionEdit) -> str:
    """`Compress <module> block: -312 tokens (-18%)`."""
    name = f"<{edit.element}>" if edit.element else "XML"
    c = edit.compressed
    return f"Compress {name} block: -{c.saved:,} tokens (-{c.percent:.0f}%)"


def _wanted(only: list[str] | None, kind: str) -> bool:
    return not only or any(kind == k or kind.startswith(k + ".") for k in only)


def _resolve_supported(ls: PromptLanguageServer) -> bool:
    td = ls.client_capabilities.text_document
    ca = td.code_action if td else None
    props = ca.resolve_support.properties if ca and ca.resolve_support else []
    return "edit" in props


def _workspace_edit(
    ls: PromptLanguageServer, uri: str, fa: FileAnalysis, spans: list[tuple[int, int, str]]
) -> types.WorkspaceEdit:
    lines = ls.line_index(fa)
    enc = ls.position_encoding
    edits = [
        types.TextEdit(range=to_range(lines, start, end, enc), new_text=text)
        for start, end, text in sorted(spans)
    ]
    ws = ls.client_capabilities.workspace
    doc = ls.workspace.text_documents.get(uri)
    if ws and ws.workspace_edit and ws.workspace_edit.document_changes and doc is not None:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=doc.version
                    ),
                    edits=list(edits),
                )
            ]
        )
    return types.WorkspaceEdit(changes={uri: edits})


def _escape_fixes(fa: FileAnalysis) -> list[tuple[int, int, str]]:
    """Every lexical XML problem with an obvious fix (a bare `<` or `&`, an entity)."""
    index_fixes: list[tuple[int, int, str]] = []
    for f in fa.findings:
        data = dict(f.data)
        if f.code == "xml-syntax" and f.severity.label == "warning" and data.get("fix") is not None:
            index_fixes.append((f.start, f.end, data["fix"]))
    return index_fixes


def _spans(
    ls: PromptLanguageServer, fa: FileAnalysis, what: str, start: int = -1
) -> list[tuple[int, int, str]]:
    index = ls.index
    if index is None:
        return []
    # (the compressions of the index's analysis: edits of another version's text make none here)
    edits = index.compressions(fa.path) if index.get(fa.path) is fa else []
    if what == "region":
        edits = [e for e in edits if e.start == start]
    # (fix all: escapes first; a region that has one is compressed on the next run)
    escapes = _escape_fixes(fa) if what == "all" else []
    spans = list(escapes)
    for e in edits:
        if not any(e.start <= s < e.end for s, _, _ in escapes):
            spans.extend(_region_spans(fa.doc.text, e))
    return spans


def _region_spans(text: str, edit: RegionEdit) -> list[tuple[int, int, str]]:
    """A region's compression as the smallest edits that make it (the white space removed
    line by line, each tag rewritten), not the region replaced whole."""
    return [
        (edit.start + s, edit.start + e, t)
        for s, e, t in _smallest(text[edit.start : edit.end], edit.new_text)
    ]


@functools.lru_cache(maxsize=32)
def _smallest(old: str, new: str) -> tuple[tuple[int, int, str], ...]:
    """`smallest_edits`, remembered: a client that cannot resolve actions gets every action's
    edits with each request (20 to 30 ms for a 50 KB block), and asks again as the cursor moves."""
    return tuple(smallest_edits(old, new))


async def code_action(
    ls: PromptLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    """`textDocument/codeAction`."""
    uri = params.text_document.uri
    fa = ls.analysis(uri)
    index = ls.index
    if fa is None or index is None:
        return None
    only = [str(k.value if hasattr(k, "value") else k) for k in params.context.only or []]
    lines = ls.line_index(fa)
    enc = ls.position_encoding
    first = to_offset(lines, params.range.start, enc)
    last = to_offset(lines, params.range.end, enc)
    doc = ls.workspace.text_documents.get(uri)
    version = doc.version if doc is not None else None
    lazy = _resolve_supported(ls)
    actions: list[types.CodeAction] = []

    def action(title: str, kind: str, data: dict[str, Any], diags: list[types.Diagnostic]) -> None:
        payload = {"uri": uri, "version": version, **data}
        act = types.CodeAction(title=title, kind=kind, diagnostics=diags or None, data=payload)
        if not lazy:
            act.edit = _workspace_edit(
                ls, uri, fa, _spans(ls, fa, data["what"], data.get("start", -1))
            )
        actions.append(act)

    if _wanted(only, types.CodeActionKind.QuickFix):
        for diag in params.context.diagnostics:
            data = diag.data if isinstance(diag.data, dict) else {}
            if diag.code == "xml-syntax" and data.get("fix") is not None:
                start = to_offset(lines, diag.range.start, enc)
                end = to_offset(lines, diag.range.end, enc)
                fix = str(data["fix"])
                culprit = fa.doc.text[start:end]
                act = types.CodeAction(
                    title=f"Replace `{culprit}` with `{fix}`" if fix else f"Delete `{culprit}`",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    # (escaping an unclosed element as a placeholder is a guess: not preferred)
                    is_preferred=data.get("kind") not in _GUESSED_FIXES,
                    edit=_workspace_edit(ls, uri, fa, [(start, end, fix)]),
                )
                actions.append(act)
        for edit in index.compressions(fa.path):
            if edit.end < first or edit.start > last:
                continue
            diags = [
                d
                for d in params.context.diagnostics
                if d.code == "xml-compressible"
                and to_offset(lines, d.range.start, enc) == edit.start
            ]
            action(
                title_for(edit),
                types.CodeActionKind.QuickFix,
                {"what": "region", "start": edit.start},
                diags,
            )
    edits = index.compressions(fa.path)
    if edits and _wanted(only, COMPRESS_FILE):
        saved = sum(e.compressed.saved for e in edits)
        before = sum(e.compressed.tokens_before for e in edits)
        action(
            f"Compress all XML blocks: -{saved:,} tokens (-{saved * 100 / max(1, before):.0f}%)",
            COMPRESS_FILE,
            {"what": "file"},
            [],
        )
    if (edits or _escape_fixes(fa)) and _wanted(only, FIX_ALL) and only:
        action(
            "Fix all promptls issues (compress XML, escape < and &)", FIX_ALL, {"what": "all"}, []
        )
    return actions


async def resolve_code_action(
    ls: PromptLanguageServer, action: types.CodeAction
) -> types.CodeAction:
    """`codeAction/resolve`: compute the edit now, on the document's current version."""
    data = action.data if isinstance(action.data, dict) else {}
    uri = data.get("uri")
    if not isinstance(uri, str):
        return action
    fa = ls.analysis(uri)
    if fa is None:
        return action
    spans = _spans(ls, fa, str(data.get("what", "")), int(data.get("start", -1)))
    if data.get("what") == "region" and not spans:
        return action  # the block changed since the action was offered: nothing verified to apply
    action.edit = _workspace_edit(ls, uri, fa, spans)
    return action


def register(server: PromptLanguageServer) -> None:
    """Register code actions and their resolution."""
    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=KINDS, resolve_provider=True),
    )(code_action)
    server.feature(types.CODE_ACTION_RESOLVE)(resolve_code_action)
