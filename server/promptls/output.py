"""What `promptls check` prints: the workspace's findings as text, JSON or SARIF 2.1.0.

The JSON shape is a contract (`version`, `files[].path/kind/rawTokens/tokens/loadTokens/loads/
diagnostics`, `summary`); fields are only ever added.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from promptls import __version__
from promptls.analysis.findings import CODES, Finding, Severity
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.text import LineIndex, PositionEncoding


@dataclass(frozen=True, slots=True)
class Located:
    """A finding with its range converted to lines and characters."""

    finding: Finding
    line: int
    character: int
    end_line: int
    end_character: int

    def range_json(self) -> dict[str, dict[str, int]]:
        """The LSP-style range object."""
        return {
            "start": {"line": self.line, "character": self.character},
            "end": {"line": self.end_line, "character": self.end_character},
        }


@dataclass(frozen=True, slots=True)
class FileReport:
    """Everything reported about one file."""

    path: str
    abspath: str
    kind: str
    raw_tokens: int
    tokens: int
    load_tokens: int
    loads: tuple[str, ...]
    diagnostics: tuple[Located, ...]


def locate(
    findings: Iterable[Finding], text: str, encoding: PositionEncoding
) -> tuple[Located, ...]:
    """Convert offsets to positions in `encoding` code units."""
    index = LineIndex(text)
    out: list[Located] = []
    for f in findings:
        r = index.range(f.start, f.end, encoding)
        out.append(Located(f, r.start.line, r.start.character, r.end.line, r.end.character))
    return tuple(out)


def build_reports(
    index: WorkspaceIndex,
    encoding: PositionEncoding = PositionEncoding.UTF16,
    only: set[str] | None = None,
    display: Any = None,
    processes: int = 1,
) -> list[FileReport]:
    """One report per indexed file (or those in `only`), sorted by path; the compressions
    behind `xml-compressible` (unless it is turned off) computed first, on `processes` worker
    processes (see `WorkspaceIndex.prepare_compressions`)."""
    show = display or index.workspace.relative
    paths = [p for p in index.files if only is None or p in only]
    index.prepare_duplicates(paths)  # (while worker processes still compress, if any)
    if index.compression_hints:
        index.prepare_compressions(paths, processes=processes)
    reports: list[FileReport] = []
    for path, fa in index.files.items():
        if only is not None and path not in only:
            continue
        load_set = index.load_set(path)
        reports.append(
            FileReport(
                path=show(path),
                abspath=path,
                kind=fa.kind,
                raw_tokens=fa.raw_tokens,
                tokens=fa.tokens,
                load_tokens=index.load_tokens(path),
                loads=tuple(show(p) for p in load_set.files),
                diagnostics=locate(index.findings(path), fa.doc.text, encoding),
            )
        )
    reports.sort(key=lambda r: r.path)
    return reports


def severity_counts(reports: Sequence[FileReport]) -> Counter[Severity]:
    """How many findings of each severity."""
    return Counter(d.finding.severity for r in reports for d in r.diagnostics)


def render_text(reports: Sequence[FileReport], errors: dict[str, str]) -> str:
    """`path:line:col: severity code message` (1-based), then a summary line."""
    lines: list[str] = []
    for r in reports:
        for d in r.diagnostics:
            f = d.finding
            lines.append(
                f"{r.path}:{d.line + 1}:{d.character + 1}: {f.severity.label} {f.code} {f.message}"
            )
    for path, message in sorted(errors.items()):
        lines.append(f"{path}:1:1: error unreadable-file {message}")
    counts = severity_counts(reports)
    total = sum(r.tokens for r in reports)
    parts = [
        f"{counts[s]} {s.label}{'s' if counts[s] != 1 and s is not Severity.INFORMATION else ''}"
        for s in Severity
    ]
    lines.append(f"{len(reports)} files, ≈{total:,} tokens: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def render_json(
    reports: Sequence[FileReport],
    encoding_name: str,
    position_encoding: PositionEncoding,
    errors: dict[str, str],
) -> str:
    """The JSON report (see the module docstring for the contract)."""
    counts = severity_counts(reports)
    by_code = Counter(d.finding.code for r in reports for d in r.diagnostics)
    payload: dict[str, Any] = {
        "version": 1,
        "tool": {"name": "promptls", "version": __version__},
        "encoding": encoding_name,
        "positionEncoding": position_encoding.value,
        "files": [
            {
                "path": r.path,
                "kind": r.kind,
                "rawTokens": r.raw_tokens,
                "tokens": r.tokens,
                "loadTokens": r.load_tokens,
                "loads": list(r.loads),
                "diagnostics": [
                    {
                        "code": d.finding.code,
                        "severity": d.finding.severity.label,
                        "message": d.finding.message,
                        "range": d.range_json(),
                    }
                    for d in r.diagnostics
                ],
            }
            for r in reports
        ],
        "errors": [{"path": p, "message": m} for p, m in sorted(errors.items())],
        "summary": {
            "files": len(reports),
            "tokens": sum(r.tokens for r in reports),
            "rawTokens": sum(r.raw_tokens for r in reports),
            **{s.label: counts[s] for s in Severity},
            "byCode": dict(sorted(by_code.items())),
        },
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


_SARIF_LEVEL = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFORMATION: "note",
    Severity.HINT: "note",
}


def render_sarif(reports: Sequence[FileReport], position_encoding: PositionEncoding) -> str:
    """SARIF 2.1.0, as GitHub code scanning accepts it (1-based lines and columns)."""
    rules = [
        {
            "id": code,
            "name": code,
            "shortDescription": {"text": text},
            "fullDescription": {"text": text},
        }
        for code, text in CODES.items()
    ]
    rule_index = {code: i for i, code in enumerate(CODES)}
    results: list[dict[str, Any]] = []
    for r in reports:
        for d in r.diagnostics:
            f = d.finding
            result: dict[str, Any] = {
                "ruleId": f.code,
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f.message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": r.path, "uriBaseId": "%SRCROOT%"},
                            "region": {
                                "startLine": d.line + 1,
                                "startColumn": d.character + 1,
                                "endLine": d.end_line + 1,
                                "endColumn": d.end_character + 1,
                            },
                        }
                    }
                ],
            }
            if f.code in rule_index:
                result["ruleIndex"] = rule_index[f.code]
            results.append(result)
    column_kind = (
        "utf16CodeUnits" if position_encoding is PositionEncoding.UTF16 else "unicodeCodePoints"
    )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "promptls",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "columnKind": column_kind,
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "workspace root"}}},
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, ensure_ascii=False) + "\n"
