"""Navigation along references: document links, go-to-definition, find references."""

from __future__ import annotations

from lsprotocol import types

from promptls.analysis.graph import FileAnalysis
from promptls.analysis.references import Resolution
from promptls.lsp.convert import to_offset, to_range
from promptls.lsp.server import PromptLanguageServer

_ORIGIN = types.Range(
    start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)
)


def resolution_at(
    ls: PromptLanguageServer, uri: str, position: types.Position
) -> tuple[FileAnalysis, Resolution] | None:
    """The reference under the cursor, if any."""
    fa = ls.analysis(uri)
    if fa is None:
        return None
    offset = to_offset(ls.line_index(fa), position, ls.position_encoding)
    for res in fa.resolutions:
        if res.ref.start <= offset <= res.ref.end:
            return fa, res
    return None


async def document_link(
    ls: PromptLanguageServer, params: types.DocumentLinkParams
) -> list[types.DocumentLink]:
    """`textDocument/documentLink`: every resolved reference."""
    fa = ls.analysis(params.text_document.uri)
    index = ls.index
    if fa is None or index is None:
        return []
    lines = ls.line_index(fa)
    caps = ls.client_capabilities.text_document
    tooltips = bool(caps and caps.document_link and caps.document_link.tooltip_support)
    links: list[types.DocumentLink] = []
    for res in fa.resolutions:
        if res.status != "resolved" or res.path is None:
            continue
        target = index.get(res.path)
        tip = f"{res.ref.form}: {index.workspace.relative(res.path)}"
        if target is not None:
            tip += f" (≈{target.tokens:,} tokens)"
        links.append(
            types.DocumentLink(
                range=to_range(lines, res.ref.start, res.ref.end, ls.position_encoding),
                target=ls.uri_of(res.path),
                tooltip=tip if tooltips else None,
            )
        )
    return links


async def definition(
    ls: PromptLanguageServer, params: types.DefinitionParams
) -> list[types.Location] | None:
    """`textDocument/definition` on a reference: the file it names."""
    found = resolution_at(ls, params.text_document.uri, params.position)
    if found is None or found[1].status != "resolved" or found[1].path is None:
        return None
    return [types.Location(uri=ls.uri_of(found[1].path), range=_ORIGIN)]


async def references(
    ls: PromptLanguageServer, params: types.ReferenceParams
) -> list[types.Location]:
    """`textDocument/references`: where other files reference this one (who loads it)."""
    index = ls.index
    fa = ls.analysis(params.text_document.uri)
    if fa is None or index is None:
        return []
    target = fa.path
    found = resolution_at(ls, params.text_document.uri, params.position)
    if found is not None and found[1].path is not None and found[1].status == "resolved":
        target = found[1].path  # on a reference: the references to what it names
    out: list[types.Location] = []
    with ls.lock:
        files = list(index.files.values())
    for other in files:
        lines = None
        for res in other.resolutions:
            if res.path != target or res.status != "resolved":
                continue
            lines = lines or ls.line_index(other)
            out.append(
                types.Location(
                    uri=ls.uri_of(other.path),
                    range=to_range(lines, res.ref.start, res.ref.end, ls.position_encoding),
                )
            )
    if params.context.include_declaration:
        out.insert(0, types.Location(uri=ls.uri_of(target), range=_ORIGIN))
    return out


def register(server: PromptLanguageServer) -> None:
    """Register the navigation features."""
    server.feature(
        types.TEXT_DOCUMENT_DOCUMENT_LINK, types.DocumentLinkOptions(resolve_provider=False)
    )(document_link)
    server.feature(types.TEXT_DOCUMENT_DEFINITION)(definition)
    server.feature(types.TEXT_DOCUMENT_REFERENCES)(references)
