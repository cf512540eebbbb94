"""The budget report: what every command costs, where its tokens come from, and how that changed.

Pure: it is built from a `WorkspaceIndex` (through `output.build_reports`, so every number is the
one `promptls check --format json` prints) and imports neither pygls nor lsprotocol. It holds:

* each entry file's (command, memory file, agent, skill, output style) load cost against the load
  budget and its declared `<context_budget>`, stacked by the files it loads;
* every file's own tokens, the entry files whose load set holds it (`loadedBy`: a saving in that
  file pays once per each of them, so `tokens × loadedBy` summed over the files is the sum of the
  entry files' load costs) and the verified compression available in it;
* every finding, and their counts by code;
* with a baseline (`promptls baseline`), the change of each of those figures.

The baseline and the regression gate of `promptls check --baseline` live here too. Renderers:
`render_json` and `render_markdown` here, the HTML dashboard in `promptls.dashboard`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptls import __version__
from promptls.analysis.findings import CODES, Finding, Severity
from promptls.analysis.graph import ENTRY_KINDS, WorkspaceIndex
from promptls.analysis.rules import apply_overrides, file_range
from promptls.analysis.text import PositionEncoding
from promptls.output import FileReport, Located, build_reports, locate

REPORT_VERSION = 1
BASELINE_VERSION = 1
DEFAULT_BASELINE = os.path.join(".promptls", "baseline.json")
DEFAULT_MAX_GROWTH = 0.10
GREW_MOST = 3
"""How many files a regression message names."""

Display = Callable[[str], str]


class BaselineError(ValueError):
    """A baseline file that cannot be read as one."""


# -- changes -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Change:
    """One figure then (`before`, None: not in the baseline) and now (`after`, None: gone)."""

    before: int | None
    after: int | None

    @property
    def diff(self) -> int:
        """`after - before`, a missing side counting 0."""
        return (self.after or 0) - (self.before or 0)

    @property
    def ratio(self) -> float | None:
        """The change relative to `before` (None when there is nothing to compare with)."""
        if self.before is None or self.after is None:
            return None
        if self.before == 0:
            return None if self.after == 0 else math.inf
        return self.diff / self.before

    @property
    def direction(self) -> str:
        """`up`, `down`, `same`, `new` (no baseline figure) or `gone` (no current one)."""
        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        return "up" if self.diff > 0 else "down" if self.diff < 0 else "same"

    def text(self) -> str:
        """`▲ +1,234 (+5.2%)`, `▼ −56 (−1.0%)`, `=`, `new` or `gone`."""
        direction = self.direction
        if direction in ("new", "gone", "same"):
            return "=" if direction == "same" else direction
        arrow = "▲" if direction == "up" else "▼"
        ratio = self.ratio
        share = f" ({percent(ratio)})" if ratio is not None and math.isfinite(ratio) else ""
        return f"{arrow} {signed(self.diff)}{share}"

    def as_json(self) -> dict[str, Any]:
        """`{before, after, diff, percent}` (percent: null when it cannot be computed)."""
        ratio = self.ratio
        return {
            "before": self.before,
            "after": self.after,
            "diff": self.diff,
            "percent": (
                round(ratio * 100, 2) if ratio is not None and math.isfinite(ratio) else None
            ),
        }


def signed(value: int) -> str:
    """`+1,234`, `−56` (a real minus sign) or `0`."""
    if value > 0:
        return f"+{value:,}"
    if value < 0:
        return f"−{-value:,}"
    return "0"


def percent(ratio: float) -> str:
    """`+5.2%`, `−1.0%`, `+∞%`."""
    if math.isinf(ratio):
        return "+∞%" if ratio > 0 else "−∞%"
    value = round(ratio * 100, 1)
    if value == 0:
        return "0.0%"
    return f"+{value:.1f}%" if value > 0 else f"−{-value:.1f}%"


# -- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Segment:
    """One file of a load set, with its own tokens (the segment of a stacked bar)."""

    path: str
    kind: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Contribution:
    """How much one file added to (or took from) a load cost since the baseline."""

    path: str
    diff: int
    note: str = ""
    """`new in the load set`, `left the load set` or ``."""


@dataclass(frozen=True, slots=True)
class EntryCost:
    """An entry file's load cost: the bar of the dashboard."""

    path: str
    abspath: str
    kind: str
    tokens: int
    load_tokens: int
    segments: tuple[Segment, ...]
    """The load set in `loads` order (the file itself first), each with its own tokens."""
    budget: int | None
    declared: int | None
    """The `<context_budget>` estimate the file declares, if any."""
    warn_ratio: float = 0.8
    change: Change | None = None
    """The load cost's change since the baseline (None without one)."""
    grew_most: tuple[Contribution, ...] = ()
    """The files whose change moved the load cost most, largest first."""

    @property
    def loads(self) -> tuple[str, ...]:
        """The load set (display paths), the file itself first."""
        return tuple(s.path for s in self.segments)

    @property
    def share(self) -> float | None:
        """Load cost / budget."""
        return self.load_tokens / self.budget if self.budget else None

    @property
    def over(self) -> bool:
        """Over the load budget."""
        share = self.share
        return share is not None and share > 1

    @property
    def near(self) -> bool:
        """At or above `warnRatio` of the budget, not over it."""
        share = self.share
        return share is not None and self.warn_ratio <= share <= 1

    @property
    def declared_off(self) -> float | None:
        """(load − declared) / declared."""
        if not self.declared:
            return None
        return (self.load_tokens - self.declared) / self.declared


@dataclass(frozen=True, slots=True)
class FileRow:
    """One file: its tokens, who loads it, what compression would save in it."""

    path: str
    abspath: str
    kind: str
    tokens: int
    loaded_by: tuple[str, ...]
    """Entry files whose load set holds this file (an entry file counts itself)."""
    compressible: int
    """Tokens the verified compressions of its XML blocks would save."""
    blocks: int
    """How many blocks compress."""
    tokens_change: Change | None = None
    loaded_by_change: Change | None = None
    weighted_change: Change | None = None
    compressible_change: Change | None = None

    @property
    def weighted(self) -> int:
        """`tokens × loadedBy`: what this file costs across every entry file's load."""
        return self.tokens * len(self.loaded_by)

    @property
    def weighted_saving(self) -> int:
        """`compressible × loadedBy`: what compressing it saves across every entry file."""
        return self.compressible * len(self.loaded_by)


@dataclass(frozen=True, slots=True)
class FindingRow:
    """One finding, located (0-based, UTF-16 like `promptls check --format json`)."""

    path: str
    abspath: str
    code: str
    severity: Severity
    message: str
    line: int
    character: int
    end_line: int
    end_character: int


@dataclass(frozen=True, slots=True)
class CodeRow:
    """How many findings of one code, by severity."""

    code: str
    description: str
    count: int
    by_severity: tuple[tuple[str, int], ...]
    change: Change | None = None


@dataclass(frozen=True, slots=True)
class BaselineInfo:
    """Where the figures compared with come from."""

    created: str
    tool_version: str
    encoding: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class Totals:
    """Whole-workspace figures."""

    files: int
    tokens: int
    entries: int
    over_budget: int
    load_tokens: int
    """Sum of the entry files' load costs (= sum of `tokens × loadedBy`)."""
    compressible: int
    severities: tuple[tuple[str, int], ...]
    tokens_change: Change | None = None
    load_tokens_change: Change | None = None
    compressible_change: Change | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the dashboard shows."""

    tool_version: str
    encoding: str
    load_budget: int | None
    warn_ratio: float
    entries: tuple[EntryCost, ...]
    """Sorted by load cost, largest first."""
    files: tuple[FileRow, ...]
    """Sorted by path."""
    codes: tuple[CodeRow, ...]
    findings: tuple[FindingRow, ...]
    totals: Totals
    errors: tuple[tuple[str, str], ...] = ()
    top: int = 15
    baseline: BaselineInfo | None = None
    removed_entries: tuple[str, ...] = ()
    """Entry files of the baseline that are gone."""
    removed_files: tuple[str, ...] = ()

    def largest(self) -> list[FileRow]:
        """The `top` largest files by their own tokens."""
        return sorted(self.files, key=lambda r: (-r.tokens, r.path))[: self.top]

    def ranked_by_loads(self) -> list[FileRow]:
        """Every file some load set holds, by how many hold it (then by `tokens × loadedBy`)."""
        rows = [r for r in self.files if r.loaded_by]
        return sorted(rows, key=lambda r: (-len(r.loaded_by), -r.weighted, r.path))

    def most_loaded(self) -> list[FileRow]:
        """The `top` files held by the most load sets."""
        return self.ranked_by_loads()[: self.top]

    def compression(self) -> list[FileRow]:
        """Every file with a verified compression, largest saving across the load sets first."""
        rows = [r for r in self.files if r.compressible > 0]
        return sorted(rows, key=lambda r: (-r.weighted_saving, -r.compressible, r.path))

    def entry(self, path: str) -> EntryCost | None:
        """The entry file shown as `path`."""
        return next((e for e in self.entries if e.path == path), None)


# -- building -------------------------------------------------------------------------------------
def display_names(index: WorkspaceIndex) -> Display:
    """How paths are shown: relative to the folder, prefixed by its name in a multi-root
    workspace (as `promptls check` shows them)."""
    workspace = index.workspace
    if len(workspace.folders) == 1:
        return workspace.relative
    names = {f: os.path.basename(f) for f in workspace.folders}

    def show(path: str) -> str:
        folder = workspace.folder_of(path)
        rel = workspace.relative(path)
        return f"{names[folder]}/{rel}" if folder else rel

    return show


def build_report(
    index: WorkspaceIndex,
    *,
    baseline: Baseline | None = None,
    display: Display | None = None,
    top: int = 15,
    reports: Sequence[FileReport] | None = None,
    processes: int = 1,
) -> Report:
    """The report of every indexed file (`reports`: those of `build_reports`, if already built;
    `processes` as there)."""
    show = display or display_names(index)
    if reports is None:
        reports = build_reports(index, PositionEncoding.UTF16, None, show, processes)
    # Each file's compressible tokens (already made, unless `xml-compressible` is turned off).
    index.prepare_compressions([r.abspath for r in reports], processes=processes)
    by_path = {r.path: r for r in reports}
    settings = index.settings
    budget = settings.load_budget or None
    loaded_by: dict[str, list[str]] = {r.path: [] for r in reports}
    entries: list[EntryCost] = []
    for r in reports:
        if r.kind not in ENTRY_KINDS:
            continue
        for member in r.loads:
            loaded_by.setdefault(member, []).append(r.path)
        fa = index.get(r.abspath)
        declared = fa.doc.context_budget() if fa is not None else None
        segments = tuple(
            Segment(m, by_path[m].kind if m in by_path else "other", _tokens(by_path, m))
            for m in r.loads
        )
        change: Change | None = None
        grew: tuple[Contribution, ...] = ()
        if baseline is not None:
            before = baseline.entries.get(r.path)
            change = Change(before.load_tokens if before else None, r.load_tokens)
            if before is not None:
                grew = contributions({s.path: s.tokens for s in segments}, before, baseline)
        entries.append(
            EntryCost(
                path=r.path,
                abspath=r.abspath,
                kind=r.kind,
                tokens=r.tokens,
                load_tokens=r.load_tokens,
                segments=segments,
                budget=budget,
                declared=declared[0] if declared else None,
                warn_ratio=settings.warn_ratio,
                change=change,
                grew_most=grew,
            )
        )
    entries.sort(key=lambda e: (-e.load_tokens, e.path))

    before_loaded_by: Counter[str] = Counter()
    if baseline is not None:
        for entry in baseline.entries.values():
            before_loaded_by.update(entry.loads)
    files: list[FileRow] = []
    for r in reports:
        edits = index.compressions(r.abspath)
        saving = sum(max(0, e.compressed.saved) for e in edits)
        blocks = sum(1 for e in edits if e.compressed.saved > 0)
        row = FileRow(
            path=r.path,
            abspath=r.abspath,
            kind=r.kind,
            tokens=r.tokens,
            loaded_by=tuple(loaded_by.get(r.path, ())),
            compressible=saving,
            blocks=blocks,
        )
        if baseline is not None:
            old = baseline.files.get(r.path)
            if old is None:
                row = dataclasses.replace(
                    row,
                    tokens_change=Change(None, row.tokens),
                    loaded_by_change=Change(None, len(row.loaded_by)),
                    weighted_change=Change(None, row.weighted),
                    compressible_change=Change(None, row.compressible),
                )
            else:
                count = before_loaded_by[r.path]
                row = dataclasses.replace(
                    row,
                    tokens_change=Change(old.tokens, row.tokens),
                    loaded_by_change=Change(count, len(row.loaded_by)),
                    weighted_change=Change(old.tokens * count, row.weighted),
                    compressible_change=Change(old.compressible, row.compressible),
                )
        files.append(row)
    files.sort(key=lambda f: f.path)

    findings = tuple(
        FindingRow(
            r.path,
            r.abspath,
            d.finding.code,
            d.finding.severity,
            d.finding.message,
            d.line,
            d.character,
            d.end_line,
            d.end_character,
        )
        for r in reports
        for d in r.diagnostics
    )
    codes = _code_rows(findings, baseline)
    severities = Counter(f.severity for f in findings)
    totals = Totals(
        files=len(reports),
        tokens=sum(r.tokens for r in reports),
        entries=len(entries),
        over_budget=sum(1 for e in entries if e.over),
        load_tokens=sum(e.load_tokens for e in entries),
        compressible=sum(f.compressible for f in files),
        severities=tuple((s.label, severities[s]) for s in Severity),
    )
    removed_entries: tuple[str, ...] = ()
    removed_files: tuple[str, ...] = ()
    info: BaselineInfo | None = None
    if baseline is not None:
        totals = dataclasses.replace(
            totals,
            tokens_change=Change(sum(f.tokens for f in baseline.files.values()), totals.tokens),
            load_tokens_change=Change(
                sum(e.load_tokens for e in baseline.entries.values()), totals.load_tokens
            ),
            compressible_change=Change(
                sum(f.compressible for f in baseline.files.values()), totals.compressible
            ),
        )
        removed_entries = tuple(sorted(set(baseline.entries) - {e.path for e in entries}))
        removed_files = tuple(sorted(set(baseline.files) - set(by_path)))
        info = BaselineInfo(
            baseline.created, baseline.tool_version, baseline.encoding, baseline.source
        )
    errors = tuple(sorted((show(p), m) for p, m in index.errors.items()))
    return Report(
        tool_version=__version__,
        encoding=settings.encoding,
        load_budget=budget,
        warn_ratio=settings.warn_ratio,
        entries=tuple(entries),
        files=tuple(files),
        codes=codes,
        findings=findings,
        totals=totals,
        errors=errors,
        top=top,
        baseline=info,
        removed_entries=removed_entries,
        removed_files=removed_files,
    )


def _tokens(by_path: Mapping[str, FileReport], path: str) -> int:
    report = by_path.get(path)
    return report.tokens if report is not None else 0


def _code_rows(findings: Sequence[FindingRow], baseline: Baseline | None) -> tuple[CodeRow, ...]:
    per_code: dict[str, Counter[Severity]] = {}
    for f in findings:
        per_code.setdefault(f.code, Counter())[f.severity] += 1
    codes = set(per_code) | (set(baseline.findings) if baseline is not None else set())
    rows: list[CodeRow] = []
    for code in codes:
        counts = per_code.get(code, Counter())
        total = sum(counts.values())
        rows.append(
            CodeRow(
                code=code,
                description=CODES.get(code, ""),
                count=total,
                by_severity=tuple((s.label, counts[s]) for s in Severity if counts[s]),
                change=(
                    Change(baseline.findings.get(code), total) if baseline is not None else None
                ),
            )
        )
    rows.sort(key=lambda r: (-r.count, r.code))
    return tuple(rows)


def contributions(
    now: Mapping[str, int], before: BaselineEntry, baseline: Baseline
) -> tuple[Contribution, ...]:
    """What each file added to a load cost since the baseline (they sum to the change when the
    baseline is consistent), the largest changes first, unchanged files left out."""
    old = set(before.loads)
    out: list[Contribution] = []
    for path in dict.fromkeys([*now, *before.loads]):
        then = baseline.files[path].tokens if path in old and path in baseline.files else 0
        if path in now and path not in old:
            out.append(Contribution(path, now[path], "new in the load set"))
        elif path not in now:
            out.append(Contribution(path, -then, "left the load set"))
        elif now[path] != then:
            out.append(Contribution(path, now[path] - then))
    out.sort(key=lambda c: (-abs(c.diff), c.path))
    return tuple(out)


# -- the baseline ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BaselineFile:
    """A file's figures in the baseline."""

    kind: str
    tokens: int
    compressible: int = 0


@dataclass(frozen=True, slots=True)
class BaselineEntry:
    """An entry file's load in the baseline."""

    kind: str
    load_tokens: int
    loads: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The recorded figures a later run is compared with (`promptls baseline`)."""

    encoding: str
    tool_version: str
    created: str
    files: dict[str, BaselineFile]
    entries: dict[str, BaselineEntry]
    findings: dict[str, int]
    load_budget: int | None = None
    source: str = ""
    """The file it was read from (not stored)."""

    def to_json(self) -> dict[str, Any]:
        """The baseline file's content (keys sorted, so that a diff shows what changed)."""
        return {
            "version": BASELINE_VERSION,
            "tool": {"name": "promptls", "version": self.tool_version},
            "encoding": self.encoding,
            "created": self.created,
            "loadBudget": self.load_budget,
            "entries": {
                path: {"kind": e.kind, "loadTokens": e.load_tokens, "loads": list(e.loads)}
                for path, e in sorted(self.entries.items())
            },
            "files": {
                path: {"kind": f.kind, "tokens": f.tokens, "compressible": f.compressible}
                for path, f in sorted(self.files.items())
            },
            "findings": dict(sorted(self.findings.items())),
        }

    def dumps(self) -> str:
        """The baseline file's text."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: Any, source: str = "") -> Baseline:
        """Read a baseline, or the output of `promptls check --format json` (used as one)."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if isinstance(data.get("files"), list):
                return cls._from_check(data, source)
            version = data.get("version")
            if version != BASELINE_VERSION:
                raise ValueError(f"unsupported baseline version {version!r}")
            files = {
                str(p): BaselineFile(
                    str(f["kind"]), int(f["tokens"]), int(f.get("compressible", 0))
                )
                for p, f in dict(data["files"]).items()
            }
            entries = {
                str(p): BaselineEntry(
                    str(e["kind"]), int(e["loadTokens"]), tuple(str(x) for x in e["loads"])
                )
                for p, e in dict(data["entries"]).items()
            }
            findings = {str(c): int(n) for c, n in dict(data.get("findings", {})).items()}
            tool = data.get("tool") or {}
            budget = data.get("loadBudget")
            return cls(
                encoding=str(data["encoding"]),
                tool_version=str(tool.get("version", "")),
                created=str(data.get("created", "")),
                files=files,
                entries=entries,
                findings=findings,
                load_budget=int(budget) if budget is not None else None,
                source=source,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BaselineError(f"not a promptls baseline: {exc}") from None

    @classmethod
    def _from_check(cls, data: dict[str, Any], source: str) -> Baseline:
        files: dict[str, BaselineFile] = {}
        entries: dict[str, BaselineEntry] = {}
        findings: Counter[str] = Counter()
        for f in data["files"]:
            path = str(f["path"])
            kind = str(f["kind"])
            files[path] = BaselineFile(kind, int(f["tokens"]))
            if kind in ENTRY_KINDS:
                entries[path] = BaselineEntry(
                    kind, int(f["loadTokens"]), tuple(str(x) for x in f["loads"])
                )
            findings.update(str(d["code"]) for d in f.get("diagnostics", []))
        tool = data.get("tool") or {}
        return cls(
            encoding=str(data["encoding"]),
            tool_version=str(tool.get("version", "")),
            created="",
            files=files,
            entries=entries,
            findings=dict(findings),
            source=source,
        )


def loads_baseline(text: str, source: str = "") -> Baseline:
    """Parse a baseline file's text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"not JSON: {exc}") from None
    return Baseline.from_json(data, source)


def baseline_of(report: Report, created: str | None = None) -> Baseline:
    """What `promptls baseline` records of a report."""
    return Baseline(
        encoding=report.encoding,
        tool_version=report.tool_version,
        created=created or timestamp(),
        files={f.path: BaselineFile(f.kind, f.tokens, f.compressible) for f in report.files},
        entries={e.path: BaselineEntry(e.kind, e.load_tokens, e.loads) for e in report.entries},
        findings={c.code: c.count for c in report.codes if c.count},
        load_budget=report.load_budget,
    )


def timestamp(now: float | None = None) -> str:
    """UTC, ISO 8601 to the second (`SOURCE_DATE_EPOCH` wins, for reproducible files)."""
    if now is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
        now = float(epoch) if epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


# -- the regression gate --------------------------------------------------------------------------
_GROWTH = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$")


def parse_growth(value: str) -> float:
    """`10%`, `10` or `0.1` -> 0.1. A number without `%` above 1 is a percentage; up to 1 it is
    a fraction (write `1%` for one percent). Raises ValueError."""
    match = _GROWTH.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a growth like 10%, 10 or 0.1")
    number = float(match.group(1))
    if match.group(2) or number > 1:
        return number / 100
    return number


def _allowed(ratio: float) -> str:
    return f"{round(ratio * 100, 4):g}%"


def regression_findings(
    index: WorkspaceIndex,
    reports: Sequence[FileReport],
    baseline: Baseline,
    max_growth: float,
    display: Display | None = None,
) -> dict[str, list[Finding]]:
    """`load-regression` (warning) for each entry file whose load cost grew more than
    `max_growth` since the baseline, `load-improvement` (information) for each one whose load
    cost shrank; keyed by absolute path. Entry files the baseline does not know are skipped."""
    show = display or display_names(index)
    out: dict[str, list[Finding]] = {}
    for r in reports:
        before = baseline.entries.get(r.path)
        fa = index.get(r.abspath)
        if r.kind not in ENTRY_KINDS or before is None or fa is None:
            continue
        change = Change(before.load_tokens, r.load_tokens)
        ratio = change.ratio
        if ratio is None or change.diff == 0:
            continue
        now = {
            show(p): other.tokens
            for p in index.load_set(r.abspath).files
            if (other := index.get(p)) is not None
        }
        moved = contributions(now, before, baseline)
        head = (
            f"load ≈{r.load_tokens:,} tokens, {percent(ratio)} since the baseline "
            f"(≈{before.load_tokens:,})"
        )
        if change.diff > 0 and ratio > max_growth:
            grew = [c for c in moved if c.diff > 0][:GREW_MOST]
            message = f"{head}; budget growth allowed {_allowed(max_growth)}"
            if grew:
                message += "; grew most: " + ", ".join(_describe(c) for c in grew)
            code, severity = "load-regression", Severity.WARNING
        elif change.diff < 0:
            shrank = [c for c in moved if c.diff < 0][:GREW_MOST]
            message = head
            if shrank:
                message += "; shrank most: " + ", ".join(_describe(c) for c in shrank)
            code, severity = "load-improvement", Severity.INFORMATION
        else:
            continue
        start, end = file_range(fa.doc)
        found = apply_overrides(
            [Finding(code, severity, message, start, end)], index.settings.severity
        )
        if found:
            out.setdefault(r.abspath, []).extend(found)
    return out


def _describe(c: Contribution) -> str:
    note = f", {c.note}" if c.note else ""
    return f"{c.path} {signed(c.diff)}{note}"


def with_findings(
    reports: Sequence[FileReport],
    extra: Mapping[str, Sequence[Finding]],
    index: WorkspaceIndex,
    encoding: PositionEncoding,
) -> list[FileReport]:
    """The reports with `extra` findings (by absolute path) located and merged in order."""
    out: list[FileReport] = []
    for r in reports:
        added = extra.get(r.abspath)
        fa = index.get(r.abspath)
        if not added or fa is None:
            out.append(r)
            continue
        located: list[Located] = [*r.diagnostics, *locate(added, fa.doc.text, encoding)]
        located.sort(key=lambda d: (d.finding.start, d.finding.end, d.finding.code))
        out.append(dataclasses.replace(r, diagnostics=tuple(located)))
    return out


# -- JSON and markdown ----------------------------------------------------------------------------
def _change(change: Change | None) -> dict[str, Any] | None:
    return change.as_json() if change is not None else None


def _file_json(row: FileRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": row.path,
        "kind": row.kind,
        "tokens": row.tokens,
        "loadedBy": list(row.loaded_by),
        "loadedByCount": len(row.loaded_by),
        "weightedTokens": row.weighted,
        "compressible": row.compressible,
        "compressibleBlocks": row.blocks,
        "weightedSaving": row.weighted_saving,
    }
    if row.tokens_change is not None:
        out["change"] = {
            "tokens": _change(row.tokens_change),
            "loadedByCount": _change(row.loaded_by_change),
            "weightedTokens": _change(row.weighted_change),
            "compressible": _change(row.compressible_change),
        }
    return out


def report_json(report: Report) -> dict[str, Any]:
    """The report model as JSON data (`promptls report --format json`, `promptls/report`)."""
    totals = report.totals
    summary: dict[str, Any] = {
        "files": totals.files,
        "tokens": totals.tokens,
        "entries": totals.entries,
        "overBudget": totals.over_budget,
        "loadTokens": totals.load_tokens,
        "compressible": totals.compressible,
        **dict(totals.severities),
    }
    if report.baseline is not None:
        summary["change"] = {
            "tokens": _change(totals.tokens_change),
            "loadTokens": _change(totals.load_tokens_change),
            "compressible": _change(totals.compressible_change),
        }
    return {
        "version": REPORT_VERSION,
        "tool": {"name": "promptls", "version": report.tool_version},
        "encoding": report.encoding,
        "loadBudget": report.load_budget,
        "warnRatio": report.warn_ratio,
        "summary": summary,
        "entries": [
            {
                "path": e.path,
                "kind": e.kind,
                "tokens": e.tokens,
                "loadTokens": e.load_tokens,
                "loads": list(e.loads),
                "segments": [
                    {"path": s.path, "kind": s.kind, "tokens": s.tokens} for s in e.segments
                ],
                "budget": e.budget,
                "budgetShare": round(e.share, 4) if e.share is not None else None,
                "overBudget": e.over,
                "declared": e.declared,
                "change": _change(e.change),
                "grewMost": [{"path": c.path, "diff": c.diff, "note": c.note} for c in e.grew_most],
            }
            for e in report.entries
        ],
        "largest": [_file_json(r) for r in report.largest()],
        "mostLoaded": [_file_json(r) for r in report.most_loaded()],
        "compression": [_file_json(r) for r in report.compression()],
        "files": [_file_json(r) for r in report.files],
        "findings": {
            "byCode": [
                {
                    "code": c.code,
                    "description": c.description,
                    "count": c.count,
                    "bySeverity": dict(c.by_severity),
                    "change": _change(c.change),
                }
                for c in report.codes
            ],
            "list": [
                {
                    "path": f.path,
                    "code": f.code,
                    "severity": f.severity.label,
                    "message": f.message,
                    "range": {
                        "start": {"line": f.line, "character": f.character},
                        "end": {"line": f.end_line, "character": f.end_character},
                    },
                }
                for f in report.findings
            ],
        },
        "errors": [{"path": p, "message": m} for p, m in report.errors],
        "baseline": (
            {
                "created": report.baseline.created,
                "toolVersion": report.baseline.tool_version,
                "encoding": report.baseline.encoding,
                "removedEntries": list(report.removed_entries),
                "removedFiles": list(report.removed_files),
            }
            if report.baseline is not None
            else None
        ),
    }


def render_json(report: Report) -> str:
    """`promptls report --format json`."""
    return json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report) -> str:
    """A table to paste into a pull request: command, load, budget %, declared, change."""
    lines = ["### promptls: load cost per command", ""]
    lines.append("| command | load | budget % | declared | change vs baseline |")
    lines.append("|---|---:|---:|---:|---|")
    for e in report.entries:
        name = f"`{_md(e.path)}`" + ("" if e.kind == "command" else f" ({e.kind})")
        share = e.share
        budget = f"{share:.0%}" if share is not None else "—"
        if e.over:
            budget = f"**{budget}** ⚠️"
        declared = f"~{e.declared:,}" if e.declared else "—"
        if e.declared and e.declared_off is not None:
            declared += f" ({percent(e.declared_off)} off)"
        change = e.change.text() if e.change is not None else "—"
        lines.append(
            f"| {name} | ≈{e.load_tokens:,} ({_files(len(e.segments))}) | {budget} | {declared} | "
            f"{change} |"
        )
    for path in report.removed_entries:
        lines.append(f"| `{_md(path)}` | — | — | — | removed |")
    totals = report.totals
    counts = dict(totals.severities)
    lines.append("")
    budget = f"load budget {report.load_budget:,}" if report.load_budget else "no load budget"
    summary = (
        f"{totals.files} files, ≈{totals.tokens:,} tokens ({report.encoding}); {budget}; "
        f"{totals.over_budget} over it; compression available: −{totals.compressible:,} tokens; "
        f"{counts.get('error', 0)} errors, {counts.get('warning', 0)} warnings."
    )
    if report.baseline is not None and totals.tokens_change is not None:
        summary += (
            f" Since the baseline ({report.baseline.created or 'undated'}): "
            f"tokens {totals.tokens_change.text()}."
        )
    lines.append(summary)
    return "\n".join(lines) + "\n"


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"
