"""Conversions between the core's findings and offsets and lsprotocol types; URIs and paths."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.uris import from_fs_path

from promptls.analysis.findings import Finding
from promptls.analysis.text import LineIndex, Position, PositionEncoding, Range, TextChange

SOURCE = "promptls"


def encoding_of(kind: object) -> PositionEncoding:
    """The core's encoding for a negotiated `PositionEncodingKind` (UTF-16 when unknown)."""
    value = getattr(kind, "value", kind)
    try:
        return PositionEncoding(str(value))
    except ValueError:
        return PositionEncoding.UTF16


def uri_to_path(uri: str) -> str | None:
    """The normalised absolute path of a `file:` URI (None for other schemes)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if os.name == "nt" and path.startswith("/") and len(path) > 2 and path[2] == ":":
        path = path[1:]
    return os.path.realpath(path)


def path_to_uri(path: str) -> str:
    """The `file:` URI of a path."""
    uri = from_fs_path(path)
    return uri if uri is not None else "file://" + path


def to_range(index: LineIndex, start: int, end: int, encoding: PositionEncoding) -> types.Range:
    """An LSP range for two offsets."""
    return lsp_range(index.range(start, end, encoding))


def lsp_range(r: Range) -> types.Range:
    """The LSP form of a range of `analysis.text`."""
    return types.Range(
        start=types.Position(line=r.start.line, character=r.start.character),
        end=types.Position(line=r.end.line, character=r.end.character),
    )


def to_position(index: LineIndex, offset: int, encoding: PositionEncoding) -> types.Position:
    """An LSP position for an offset."""
    p = index.position(offset, encoding)
    return types.Position(line=p.line, character=p.character)


def to_offset(index: LineIndex, position: types.Position, encoding: PositionEncoding) -> int:
    """The offset of an LSP position."""
    return index.offset(Position(position.line, position.character), encoding)


def to_change(change: types.TextDocumentContentChangeEvent) -> TextChange:
    """The core's text change for an LSP content change (a range, or the whole document)."""
    if isinstance(change, types.TextDocumentContentChangePartial):
        r = change.range
        return TextChange(
            Range(Position(r.start.line, r.start.character), Position(r.end.line, r.end.character)),
            change.text,
        )
    return TextChange(None, change.text)


def to_diagnostic(
    finding: Finding,
    index: LineIndex,
    encoding: PositionEncoding,
    related_text: dict[str, LineIndex] | None = None,
    at: Range | None = None,
) -> types.Diagnostic:
    """An LSP diagnostic for a finding (with related locations when their files are known);
    `at` is the finding's range when the caller has it already."""
    related: list[types.DiagnosticRelatedInformation] = []
    for rel in finding.related:
        other = (related_text or {}).get(rel.path)
        if other is None:
            continue
        related.append(
            types.DiagnosticRelatedInformation(
                location=types.Location(
                    uri=path_to_uri(rel.path), range=to_range(other, rel.start, rel.end, encoding)
                ),
                message=rel.message,
            )
        )
    data = dict(finding.data) if finding.data else None
    return types.Diagnostic(
        range=lsp_range(at or index.range(finding.start, finding.end, encoding)),
        message=finding.message,
        severity=types.DiagnosticSeverity(int(finding.severity)),
        code=finding.code,
        source=SOURCE,
        related_information=related or None,
        data=data,
    )
