"""The budget report, the baseline and the load-regression gate (`promptls report | baseline`,
`promptls check --baseline`)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from promptls.analysis.findings import CODES
from promptls.analysis.graph import ENTRY_KINDS, WorkspaceIndex
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.cli import main
from promptls.config import load_settings
from promptls.dashboard import render_html
from promptls.report import (
    Baseline,
    BaselineError,
    Change,
    Report,
    baseline_of,
    build_report,
    loads_baseline,
    parse_growth,
    percent,
    render_markdown,
    report_json,
)
from tests.conftest import WorkspaceMaker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GATE = ROOT / "tests" / "fixtures" / "gate"
SHARED = ".claude/modules/quality/review-rules.md"
SHARED_BY = {".claude/commands/review.md", ".claude/commands/ship.md", ".claude/commands/hotfix.md"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_json(capsys: pytest.CaptureFixture[str], root: Path, *extra: str) -> dict[str, Any]:
    _, out, _ = run(capsys, "check", str(root), "--format", "json", *extra)
    data: dict[str, Any] = json.loads(out)
    return data


def index_of(root: Path) -> WorkspaceIndex:
    settings = load_settings(root)
    index = WorkspaceIndex(Workspace([root], settings.kinds, settings.exclude), settings)
    index.index()
    return index


@pytest.fixture(scope="module")
def examples_report() -> Report:
    return build_report(index_of(EXAMPLES))


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    root = tmp_path / "gate"
    shutil.copytree(GATE, root)
    return root


def grow(path: Path, ratio: float) -> float:
    """Add rules to the module until its tokens grew by at least `ratio`; return the growth."""
    counter = TokenCounter()
    text = path.read_text(encoding="utf-8")
    before = counter.count_exact(text)
    n = 100
    while counter.count_exact(text) < before * (1 + ratio):
        rule = f'    <rule id="{n}">A new rule number {n}, added after the baseline.</rule>\n'
        text = text.replace("  </rules>", rule + "  </rules>")
        n += 1
    path.write_text(text, encoding="utf-8")
    return counter.count_exact(text) / before - 1


# -- figures --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("before", "after", "diff", "ratio", "text", "direction"),
    [
        (100, 120, 20, 0.2, "▲ +20 (+20.0%)", "up"),
        (1000, 990, -10, -0.01, "▼ −10 (−1.0%)", "down"),
        (50, 50, 0, 0.0, "=", "same"),
        (None, 40, 40, None, "new", "new"),
        (40, None, -40, None, "gone", "gone"),
        (0, 5, 5, math.inf, "▲ +5", "up"),
        (0, 0, 0, None, "=", "same"),
        (3, 4, 1, 1 / 3, "▲ +1 (+33.3%)", "up"),
    ],
)
def test_change(
    before: int | None,
    after: int | None,
    diff: int,
    ratio: float | None,
    text: str,
    direction: str,
) -> None:
    change = Change(before, after)
    assert change.diff == diff
    assert change.ratio == (pytest.approx(ratio) if ratio is not None else None)
    assert change.text() == text
    assert change.direction == direction
    data = change.as_json()
    assert data["diff"] == diff
    if ratio is not None and math.isfinite(ratio):
        assert data["percent"] == pytest.approx(round(ratio * 100, 2))
    else:
        assert data["percent"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10%", 0.1), ("10", 0.1), ("0.1", 0.1), ("12.5%", 0.125), ("0", 0.0), ("1%", 0.01),
     (" 25 % ", 0.25), ("1", 1.0), ("150", 1.5), (".05", 0.05)],
)  # fmt: skip
def test_parse_growth(value: str, expected: float) -> None:
    assert parse_growth(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["", "ten", "-5%", "10%%", "1e3", "5 percent"])
def test_parse_growth_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="growth"):
        parse_growth(value)


@pytest.mark.parametrize(
    ("ratio", "text"), [(0.2, "+20.0%"), (-0.0104, "−1.0%"), (0.0001, "0.0%"), (math.inf, "+∞%")]
)
def test_percent(ratio: float, text: str) -> None:
    assert percent(ratio) == text


# -- the model against `promptls check --format json` ---------------------------------------------
def test_report_numbers_are_those_of_check(
    examples_report: Report, capsys: pytest.CaptureFixture[str]
) -> None:
    data = check_json(capsys, EXAMPLES)
    files = {f["path"]: f for f in data["files"]}
    report = examples_report
    assert {r.path for r in report.files} == set(files)
    for row in report.files:
        assert row.tokens == files[row.path]["tokens"], row.path
        assert row.kind == files[row.path]["kind"]
    entries = {p: f for p, f in files.items() if f["kind"] in ENTRY_KINDS}
    assert {e.path for e in report.entries} == set(entries)
    for entry in report.entries:
        expected = entries[entry.path]
        assert entry.load_tokens == expected["loadTokens"], entry.path
        assert list(entry.loads) == expected["loads"]
        assert entry.tokens == expected["tokens"]
        # The stack: each member's own tokens, summing to the load cost.
        assert [s.tokens for s in entry.segments] == [files[p]["tokens"] for p in entry.loads]
        assert sum(s.tokens for s in entry.segments) == entry.load_tokens
    loads = [e.load_tokens for e in report.entries]
    assert loads == sorted(loads, reverse=True)
    assert report.totals.tokens == data["summary"]["tokens"]
    assert report.totals.files == data["summary"]["files"]
    for severity in ("error", "warning", "information", "hint"):
        assert dict(report.totals.severities)[severity] == data["summary"][severity]
    assert {c.code: c.count for c in report.codes} == data["summary"]["byCode"]
    assert len(report.findings) == sum(len(f["diagnostics"]) for f in data["files"])


def test_loaded_by_and_weighted_tokens(examples_report: Report) -> None:
    report = examples_report
    for row in report.files:
        holders = {e.path for e in report.entries if row.path in e.loads}
        assert set(row.loaded_by) == holders, row.path
        assert row.weighted == row.tokens * len(holders)
    # tokens × loadedBy over the files is every entry file's load, added up.
    assert sum(r.weighted for r in report.files) == sum(e.load_tokens for e in report.entries)
    assert report.totals.load_tokens == sum(e.load_tokens for e in report.entries)
    ranked = report.most_loaded()
    assert len(ranked) == report.top
    counts = [len(r.loaded_by) for r in ranked]
    assert counts == sorted(counts, reverse=True)
    largest = report.largest()
    assert [r.tokens for r in largest] == sorted((r.tokens for r in report.files), reverse=True)[
        : report.top
    ]


def test_budget_and_declared(examples_report: Report) -> None:
    index = index_of(EXAMPLES)
    budget = index.settings.load_budget
    for entry in examples_report.entries:
        fa = index.get(entry.abspath)
        assert fa is not None
        declared = fa.doc.context_budget()
        assert entry.declared == (declared[0] if declared else None)
        assert entry.budget == budget
        assert entry.over == (entry.load_tokens > budget)
    over = [e.path for e in examples_report.entries if e.over]
    assert over == [".claude/commands/full-review.md"]
    assert examples_report.totals.over_budget == 1


def test_compression_is_the_sum_of_verified_savings(examples_report: Report) -> None:
    index = index_of(EXAMPLES)
    for row in examples_report.files:
        edits = index.compressions(row.abspath)
        assert row.compressible == sum(max(0, e.compressed.saved) for e in edits), row.path
    rows = examples_report.compression()
    assert rows and all(r.compressible > 0 for r in rows)
    assert examples_report.totals.compressible == sum(r.compressible for r in rows)


@pytest.mark.parametrize(
    ("files", "entries", "loaded_by"),
    [
        ({"CLAUDE.md": "just notes\n"}, {"CLAUDE.md": ["CLAUDE.md"]}, {"CLAUDE.md": 1}),
        (
            {
                "CLAUDE.md": "@docs/a.md\n",
                "docs/a.md": "shared text\n",
                ".claude/commands/x.md": "Use @docs/a.md and @docs/b.md\n",
                "docs/b.md": "only x\n",
            },
            {
                "CLAUDE.md": ["CLAUDE.md", "docs/a.md"],
                ".claude/commands/x.md": [".claude/commands/x.md", "docs/a.md", "docs/b.md"],
            },
            {"docs/a.md": 2, "docs/b.md": 1, "CLAUDE.md": 1},
        ),
        (
            {".claude/modules/m.md": "a module nobody loads\n"},
            {},
            {".claude/modules/m.md": 0},
        ),
    ],
    ids=["memory-alone", "shared-import", "orphan-module"],
)
def test_small_workspaces(
    make_workspace: WorkspaceMaker,
    files: dict[str, str],
    entries: dict[str, list[str]],
    loaded_by: dict[str, int],
) -> None:
    report = build_report(index_of(make_workspace(files)))
    assert {e.path: list(e.loads) for e in report.entries} == entries
    rows = {r.path: r for r in report.files}
    for path, count in loaded_by.items():
        assert len(rows[path].loaded_by) == count


# -- baseline -------------------------------------------------------------------------------------
def test_baseline_round_trip(
    gate: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    code, _, err = run(capsys, "baseline", str(gate))
    assert code == 0
    path = gate / ".promptls" / "baseline.json"
    assert f"wrote {path}" in err
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 1 and data["encoding"] == "cl100k_base"
    assert data["created"] == "2023-11-14T22:13:20Z"
    assert data["tool"]["name"] == "promptls" and data["tool"]["version"]
    check = {f["path"]: f for f in check_json(capsys, gate)["files"]}
    assert {p: f["tokens"] for p, f in data["files"].items()} == {
        p: f["tokens"] for p, f in check.items()
    }
    assert data["entries"] == {
        p: {"kind": f["kind"], "loadTokens": f["loadTokens"], "loads": f["loads"]}
        for p, f in check.items()
        if f["kind"] in ENTRY_KINDS
    }
    # Read back, written again: the same bytes.
    baseline = loads_baseline(path.read_text(encoding="utf-8"))
    assert baseline.dumps() == path.read_text(encoding="utf-8")
    # `-o` anywhere, folders created.
    other = gate / "deep" / "er" / "b.json"
    assert run(capsys, "baseline", str(gate), "-o", str(other))[0] == 0
    assert json.loads(other.read_text(encoding="utf-8")) == data


def test_check_json_works_as_a_baseline(gate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = check_json(capsys, gate)
    baseline = Baseline.from_json(data)
    report = build_report(index_of(gate))
    mine = baseline_of(report, created="x")
    assert baseline.entries == mine.entries
    assert {p: f.tokens for p, f in baseline.files.items()} == {
        p: f.tokens for p, f in mine.files.items()
    }
    assert baseline.findings == mine.findings


@pytest.mark.parametrize(
    "text",
    ["[]", "{}", '{"version": 99}', "not json", '{"version": 1, "encoding": "x", "files": {}}'],
)
def test_bad_baselines(text: str) -> None:
    with pytest.raises(BaselineError):
        loads_baseline(text)


def test_report_with_baseline_shows_every_change(gate: Path) -> None:
    before = baseline_of(build_report(index_of(gate)), created="then")
    grow(gate / SHARED, 0.2)
    (gate / ".claude/commands/notes.md").unlink()
    report = build_report(index_of(gate), baseline=before)
    assert report.baseline is not None and report.baseline.created == "then"
    assert report.removed_entries == (".claude/commands/notes.md",)
    assert report.removed_files == (".claude/commands/notes.md",)
    for entry in report.entries:
        assert entry.change is not None
        old = before.entries[entry.path].load_tokens
        assert (entry.change.before, entry.change.after) == (old, entry.load_tokens)
        if entry.path in SHARED_BY:
            assert entry.change.diff > 0
            assert entry.grew_most[0].path == SHARED
            assert sum(c.diff for c in entry.grew_most) == entry.change.diff
        else:
            assert entry.change.diff == 0 and not entry.grew_most
    rows = {r.path: r for r in report.files}
    shared = rows[SHARED]
    assert shared.tokens_change is not None and shared.tokens_change.diff > 0
    assert shared.loaded_by_change == Change(3, 3)
    assert rows[".claude/modules/quality/release-notes.md"].loaded_by_change == Change(1, 0)
    assert report.totals.tokens_change is not None
    assert report.totals.tokens_change.after == report.totals.tokens
    data = report_json(report)
    assert data["baseline"]["removedEntries"] == [".claude/commands/notes.md"]
    review = next(e for e in data["entries"] if e["path"] == ".claude/commands/review.md")
    assert review["change"]["diff"] > 0 and review["grewMost"][0]["path"] == SHARED
    markdown = render_markdown(report)
    assert "| `.claude/commands/notes.md` | — | — | — | removed |" in markdown
    assert re.search(
        r"review\.md` \| ≈[\d,]+ \(2 files\) \| \d+% \| — \| ▲ \+[\d,]+ \(\+", markdown
    )


# -- the gate -------------------------------------------------------------------------------------
def test_gate_names_the_three_commands(gate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "baseline", str(gate))[0] == 0
    baseline = str(gate / ".promptls" / "baseline.json")
    args = ["check", str(gate), "--baseline", baseline, "--max-growth", "10%", "--fail-on"]
    # Nothing changed: passes, and prints exactly what plain `check` prints.
    code, same, _ = run(capsys, *args, "warning")
    assert code == 0
    assert same == run(capsys, "check", str(gate))[1]
    before = {f["path"]: f for f in check_json(capsys, gate)["files"]}

    growth = grow(gate / SHARED, 0.2)
    assert 0.2 <= growth < 0.25
    after = {f["path"]: f for f in check_json(capsys, gate)["files"]}
    assert after[SHARED]["tokens"] / before[SHARED]["tokens"] - 1 == pytest.approx(growth)
    loaders = {p for p, f in after.items() if SHARED in f["loads"] and p != SHARED}
    assert loaders == SHARED_BY  # the fixture: a module exactly three commands load

    code, out, _ = run(capsys, *args, "warning")
    assert code == 1
    flagged = re.findall(r"^(\S+):(\d+):1: warning load-regression (.*)$", out, re.M)
    assert {p for p, _, _ in flagged} == SHARED_BY
    for path, line, message in flagged:
        load, old = after[path]["loadTokens"], before[path]["loadTokens"]
        assert message.startswith(
            f"load ≈{load:,} tokens, {percent(load / old - 1)} since the baseline (≈{old:,}); "
            "budget growth allowed 10%; grew most: "
            f"{SHARED} +{after[SHARED]['tokens'] - before[SHARED]['tokens']:,}"
        ), message
        assert line == "4"  # the first line after the frontmatter, as load-budget's
    # Without --fail-on warning the warnings do not fail the build.
    assert run(capsys, "check", str(gate), "--baseline", baseline)[0] == 0
    # A larger allowance passes; every spelling of it is accepted.
    for spelling in ("25%", "25", "0.25"):
        code, out, _ = run(capsys, *args[:-1], "--max-growth", spelling, "--fail-on", "warning")
        assert code == 0, spelling
        assert "load-regression" not in out


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_gate_findings_in_every_format(
    gate: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    assert run(capsys, "baseline", str(gate))[0] == 0
    grow(gate / SHARED, 0.2)
    baseline = str(gate / ".promptls" / "baseline.json")
    code, out, _ = run(
        capsys, "check", str(gate), "--baseline", baseline, "--format", fmt, "--fail-on", "warning"
    )
    assert code == 1
    data = json.loads(out)
    if fmt == "json":
        found = {
            f["path"]: d
            for f in data["files"]
            for d in f["diagnostics"]
            if d["code"] == "load-regression"
        }
        assert set(found) == SHARED_BY
        assert all(d["severity"] == "warning" for d in found.values())
        assert data["summary"]["byCode"]["load-regression"] == 3
        # The range is the file's first line, like load-budget's.
        for path, d in found.items():
            assert d["range"]["start"]["character"] == 0
            assert d["range"]["start"]["line"] == d["range"]["end"]["line"]
            assert path
    else:
        run_ = data["runs"][0]
        results = [r for r in run_["results"] if r["ruleId"] == "load-regression"]
        uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
        assert uris == SHARED_BY
        assert {r["level"] for r in results} == {"warning"}
        assert "load-regression" in {rule["id"] for rule in run_["tool"]["driver"]["rules"]}


def test_improvements_are_information(gate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "baseline", str(gate))[0] == 0
    path = gate / SHARED
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r'    <rule id="1[0-5]">.*\n', "", text), encoding="utf-8")
    baseline = str(gate / ".promptls" / "baseline.json")
    code, out, _ = run(capsys, "check", str(gate), "--baseline", baseline, "--fail-on", "warning")
    assert code == 0
    improved = re.findall(r"^(\S+):\d+:1: information load-improvement (.*)$", out, re.M)
    assert {p for p, _ in improved} == SHARED_BY
    assert all("since the baseline" in m and f"shrank most: {SHARED} −" in m for _, m in improved)
    # `[severity]` applies to the new codes too.
    (gate / ".promptls.toml").write_text('[severity]\n"load-improvement" = "off"\n')
    _, out, _ = run(capsys, "check", str(gate), "--baseline", baseline)
    assert "load-improvement" not in out


def test_codes_are_documented() -> None:
    assert "load-regression" in CODES and "load-improvement" in CODES
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`load-regression`" in readme and "`load-improvement`" in readme


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--max-growth", "10%"], "--max-growth needs --baseline"),
        (["check", "--baseline", "{missing}"], "--baseline"),
        (["check", "--baseline", "{bad}"], "not JSON"),
        (["check", "--baseline", "{good}", "--max-growth", "lots"], "--max-growth"),
        (["report", "--baseline", "{bad}"], "not JSON"),
        (["report", "--top", "0"], "--top"),
    ],
)
def test_usage_errors(
    gate: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (gate / "bad.json").write_text("{", encoding="utf-8")
    assert run(capsys, "baseline", str(gate), "-o", str(gate / "good.json"))[0] == 0
    names = {
        "{missing}": str(gate / "nope.json"),
        "{bad}": str(gate / "bad.json"),
        "{good}": str(gate / "good.json"),
    }
    code, out, err = run(capsys, *[names.get(a, a) for a in argv], str(gate))
    assert code == 2
    assert message in err and err.count("\n") == 1 and not out


# -- the outputs ----------------------------------------------------------------------------------
_NETWORK = re.compile(r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""")


def test_html_is_self_contained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], examples_report: Report
) -> None:
    out = tmp_path / "site" / "dash.html"
    code, stdout, _ = run(capsys, "report", str(EXAMPLES), "--html", str(out))
    assert code == 0 and stdout == ""
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not _NETWORK.search(page)
    assert "http://" not in page and "https://" not in page
    styles = "".join(re.findall(r"<style[^>]*>(.*?)</style>", page, re.S))
    assert styles and "@import" not in styles and "url(" not in styles
    assert "@font-face" not in styles
    assert "<link" not in page and "<img" not in page and "<iframe" not in page
    assert re.search(r"<script[^>]*\ssrc=", page) is None
    assert "default-src 'none'" in page  # the CSP forbids any fetch
    assert "acquireVsCodeApi" in page
    # Every entry file and every segment carries its relative path; links are relative.
    for entry in examples_report.entries:
        assert f'data-path="{entry.path}"' in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(not h.startswith("/") and ":" not in h for h in hrefs)
    target = (out.parent / hrefs[0]).resolve()
    assert target.is_file() and EXAMPLES in target.parents


def test_html_nonce_and_baseline(gate: Path) -> None:
    before = baseline_of(build_report(index_of(gate)), created="2020-01-01T00:00:00Z")
    grow(gate / SHARED, 0.2)
    page = render_html(build_report(index_of(gate), baseline=before), nonce="abc123")
    assert "script-src 'nonce-abc123'" in page and "'unsafe-inline'" not in page
    assert '<script nonce="abc123">' in page and '<style nonce="abc123">' in page
    assert " style=" not in page  # inline style attributes would break a nonce-only policy
    assert "baseline of 2020-01-01T00:00:00Z" in page
    assert page.count('class="delta up"') >= 3 and "▲" in page


def test_markdown_and_json_formats(
    capsys: pytest.CaptureFixture[str], examples_report: Report
) -> None:
    code, out, _ = run(capsys, "report", str(EXAMPLES))
    assert code == 0
    lines = out.splitlines()
    assert "| command | load | budget % | declared | change vs baseline |" in lines
    for entry in examples_report.entries:
        row = next(line for line in lines if line.startswith(f"| `{entry.path}`"))
        assert f"≈{entry.load_tokens:,} (" in row
        assert ("**" in row) == entry.over
    code, out, _ = run(capsys, "report", str(EXAMPLES), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data == json.loads(json.dumps(report_json(examples_report)))
    assert data["version"] == 1 and data["baseline"] is None
    assert [e["path"] for e in data["entries"]] == [e.path for e in examples_report.entries]
    assert len(data["largest"]) == examples_report.top


def test_check_with_compression_hints_off_compresses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` with `xml-compressible` off neither reports nor computes compressions (most of
    what it spends); `report` still counts the compressible tokens."""
    from promptls.analysis import compress

    root = tmp_path / "fw"
    shutil.copytree(EXAMPLES, root)
    (root / ".promptls.toml").write_text('[severity]\n"xml-compressible" = "off"\n')
    made: list[object] = []
    real = compress.compress_document
    monkeypatch.setattr(
        compress, "compress_document", lambda *a, **k: made.append(a) or real(*a, **k)
    )
    code, out, _ = run(capsys, "check", str(root), "--jobs", "1")
    assert code == 1 and "error" in out.splitlines()[-1]
    assert "xml-compressible" not in out and not made
    code, out, _ = run(capsys, "report", str(root), "--format", "json", "--jobs", "1")
    assert code == 0 and made and json.loads(out)["summary"]["compressible"] > 0
