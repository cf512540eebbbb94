"""Findings: what the analysis reports, with a stable code, a severity and a span of the text."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    """Severity of a finding; the numbers are LSP's DiagnosticSeverity values."""

    ERROR = 1
    WARNING = 2
    INFORMATION = 3
    HINT = 4

    @property
    def label(self) -> str:
        """The lower-case name used by the CLI and the JSON output."""
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Severity:
        """`"warning"` -> `Severity.WARNING`; raises ValueError for an unknown name."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {name!r}") from None


@dataclass(frozen=True, slots=True)
class Related:
    """Another place that explains a finding (the other end of a cycle, another copy)."""

    path: str
    start: int
    end: int
    message: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnostic. `start`/`end` are offsets (code points) into the file's decoded text."""

    code: str
    severity: Severity
    message: str
    start: int
    end: int
    related: tuple[Related, ...] = field(default=())
    data: tuple[tuple[str, str], ...] = field(default=())


CODES: dict[str, str] = {
    "xml-syntax": "Malformed XML in an XML region (structural: error; lexical: warning).",
    "unresolved-reference": "A reference to a file that exists under none of the search roots.",
    "outside-workspace": "A reference pointing outside the workspace folders; never opened.",
    "import-cycle": "Files that load each other in a cycle.",
    "import-depth": "An @import chain deeper than the import depth limit; the rest is not loaded.",
    "token-budget": "A file's own tokens over (or near) the budget of its kind.",
    "load-budget": "A file's load cost over (or near) the load budget.",
    "load-regression": "A load cost that grew more than --max-growth since the baseline.",
    "load-improvement": "A load cost that shrank since the baseline.",
    "context-budget-mismatch": (
        "A declared <context_budget> estimate off by more than 25 % from the load cost."
    ),
    "frontmatter-invalid": "YAML frontmatter that does not parse, or misses or misuses a key.",
    "frontmatter-unknown-key": "A frontmatter key Claude Code does not read for this kind of file.",
    "duplicate-content": "A paragraph or XML element loaded more than once by one file.",
    "xml-compressible": "An XML block that compresses (verified, same meaning) by a few tokens.",
    "file-too-large": "A file over the size limit: counted, not parsed.",
    "too-many-problems": "More findings in a file than maxProblems; the most severe are shown.",
}
