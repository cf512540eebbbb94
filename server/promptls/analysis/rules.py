"""Per-file rules: XML syntax, frontmatter by kind, reference problems and token budgets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping

from promptls.analysis.document import Document
from promptls.analysis.findings import Finding, Severity
from promptls.analysis.references import Resolution
from promptls.analysis.xml import XmlProblem

#: What a command or a skill may say about how it runs (Claude Code merged custom commands into
#: skills: `.claude/commands/x.md` and `.claude/skills/x/SKILL.md` read the same keys).
_INVOCATION_KEYS = frozenset(
    {
        "description",
        "when_to_use",
        "argument-hint",
        "arguments",
        "allowed-tools",
        "model",
        "effort",
        "context",
        "agent",
        "paths",
        "disable-model-invocation",
        "user-invocable",
        "hooks",
        "shell",
    }
)
#: Frontmatter keys Claude Code reads, by kind (its documentation as of late 2026; the seed's
#: mid-2025 sets grew, and a key not listed is only a hint).
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "command": _INVOCATION_KEYS,
    "agent": frozenset(
        {
            "name",
            "description",
            "tools",
            "disallowedTools",
            "model",
            "permissionMode",
            "maxTurns",
            "skills",
            "mcpServers",
            "hooks",
            "memory",
            "background",
            "effort",
            "isolation",
            "color",
            "initialPrompt",
        }
    ),
    # (`license`, `compatibility`, `metadata`: the Agent Skills standard's own)
    "skill": _INVOCATION_KEYS | {"name", "license", "compatibility", "metadata"},
    "output-style": frozenset({"name", "description", "keep-coding-instructions"}),
    "rule": frozenset({"paths"}),
}
#: Keys a kind cannot do without (Claude Code does not load the file as one without them).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "agent": ("name", "description"),
}
#: Keys a kind does without, at a cost worth a warning: a skill without `description` is
#: described by its first paragraph, which decides when Claude loads it (its `name` defaults to
#: its folder's: no finding).
RECOMMENDED_KEYS: dict[str, tuple[str, str]] = {
    "skill": (
        "description",
        "Claude Code decides when to use a skill by its `description`; without one it takes the "
        "first paragraph",
    ),
}
#: Keys seen in framework files that Claude Code ignores, with what to say about them.
IGNORED_KEY_ADVICE: dict[tuple[str, str], str] = {
    ("command", "tools"): "Claude Code ignores `tools` on commands; did you mean `allowed-tools`?",
    (
        "command",
        "name",
    ): "Claude Code ignores `name` on commands: the file name is the command name",
    (
        "command",
        "usage",
    ): "Claude Code ignores `usage` on commands; `argument-hint` is shown instead",
    ("agent", "allowed-tools"): "agents read `tools`, not `allowed-tools`",
}
AGENT_MODELS = frozenset({"sonnet", "opus", "haiku", "inherit"})
SKILL_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
LOADING_SEVERITY = Severity.ERROR


def _a(kind: str) -> str:
    """`an agent`, `a skill`."""
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _first_line(doc: Document) -> tuple[int, int]:
    start = doc.frontmatter.end if doc.frontmatter else 0
    brk = _LINE_BREAK.search(doc.text, start)
    end = brk.start() if brk is not None else len(doc.text)
    return (start, end) if start < len(doc.text) else (0, 0)


_LINE_BREAK = re.compile(r"[\r\n]")


def _bom(doc: Document) -> int:
    """1 when the text starts with a byte order mark (the `---` is after it), else 0."""
    return 1 if doc.text.startswith("\ufeff") else 0


def file_range(doc: Document) -> tuple[int, int]:
    """Where a whole-file finding is shown: the first line of the body."""
    return _first_line(doc)


#: At most this many `xml-syntax` findings per XML region, and per file; one more finding says
#: how many were left out (a file of garbage must not flood the editor).
MAX_XML_FINDINGS = 200
MAX_XML_FINDINGS_PER_FILE = 1000


def xml_findings(doc: Document) -> Iterator[Finding]:
    """`xml-syntax` for every problem of every XML region (at most `MAX_XML_FINDINGS` per region
    and `MAX_XML_FINDINGS_PER_FILE` in all, then one finding counting the rest), and an unclosed
    block comment."""
    room = MAX_XML_FINDINGS_PER_FILE
    left_out: list[tuple[int, XmlProblem]] = []  # (region start, first problem left out)
    left_count = 0
    left_severity = Severity.HINT
    for region in doc.regions:
        found = region.check.problems
        if not found:
            continue
        memo = _region_memo(found)
        problems = memo.merged
        if room <= 0:
            left_out.append((region.start, problems[0]))
            left_count += len(problems)
            left_severity = min(left_severity, *(p.severity for p in problems))
            continue
        count = min(MAX_XML_FINDINGS, room, len(problems))
        room -= count
        yield from memo.findings(region.start, count)
        rest = problems[count:]
        if rest and count == MAX_XML_FINDINGS:
            yield _more(region.start, rest, "block")
        elif rest:
            left_out.append((region.start, rest[0]))
            left_count += len(rest)
            left_severity = min(left_severity, *(p.severity for p in rest))
    if left_out:
        base, first = left_out[0]
        yield Finding(
            "xml-syntax",
            left_severity,
            f"… and {left_count:,} more XML problems in this file (not shown)",
            base + first.start,
            base + first.end,
            data=(("kind", "more"),),
        )
    if doc.unclosed_comment is not None:
        start = doc.unclosed_comment.start
        yield Finding(
            "xml-syntax",
            Severity.ERROR,
            "comment is never closed: everything after `<!--` is hidden from the model",
            start,
            start + 4,
            data=(("kind", "unclosed-comment"),),
        )


class _RegionMemo:
    """A region's problems merged into findings, and the findings last made of them at one
    offset: after a keystroke, the regions it did not touch keep their problems (the same
    tuple, moved with the region), so their findings are taken again or only moved."""

    __slots__ = ("merged", "problems", "shown")

    def __init__(self, problems: tuple[XmlProblem, ...]) -> None:
        self.problems = problems
        self.merged = _merge_runs(problems)
        self.shown: tuple[int, int, tuple[Finding, ...]] = (-1, 0, ())
        """(offset of the region, how many, the findings): replaced whole (threads read it)."""

    def findings(self, base: int, count: int) -> tuple[Finding, ...]:
        """The `xml-syntax` findings of the first `count` merged problems, for a region at
        `base`."""
        shown = self.shown
        if shown[0] == base and shown[1] == count:
            return shown[2]
        made = tuple(_xml_finding(p, base) for p in self.merged[:count])
        self.shown = (base, count, made)
        return made


_MEMOS: dict[int, _RegionMemo] = {}
_MEMOS_MAX = 4096


def _region_memo(problems: tuple[XmlProblem, ...]) -> _RegionMemo:
    """The memo of a region's problems (by identity: the memo holds the tuple, so its id is
    not reused while the entry stands)."""
    memo = _MEMOS.get(id(problems))
    if memo is None or memo.problems is not problems:
        if len(_MEMOS) >= _MEMOS_MAX:
            _MEMOS.clear()
        memo = _MEMOS[id(problems)] = _RegionMemo(problems)
    return memo


def _xml_finding(p: XmlProblem, base: int) -> Finding:
    data = (("fix", p.fix), ("kind", p.kind)) if p.fix is not None else (("kind", p.kind),)
    return Finding("xml-syntax", p.severity, p.message, base + p.start, base + p.end, data=data)


def _more(base: int, rest: list[XmlProblem], where: str) -> Finding:
    """The finding that stands for the problems of a region not shown."""
    first = rest[0]
    return Finding(
        "xml-syntax",
        min(p.severity for p in rest),
        f"… and {len(rest):,} more XML problems in this {where} (not shown)",
        base + first.start,
        base + first.end,
        data=(("kind", "more"),),
    )


def _merge_runs(problems: Iterable[XmlProblem]) -> list[XmlProblem]:
    """Adjacent lexical problems of one kind (the two `&` of `&&`) become one finding."""
    runs: list[list[XmlProblem]] = []
    for p in problems:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and last.kind == p.kind
            and last.end == p.start
            and p.severity is Severity.WARNING
            and last.fix is not None
            and p.fix is not None
        ):
            runs[-1].append(p)
        else:
            runs.append([p])
    out: list[XmlProblem] = []
    for run in runs:
        head = run[0]
        if len(run) == 1:
            out.append(head)
            continue
        fix = "".join(p.fix or "" for p in run)
        out.append(XmlProblem(head.start, run[-1].end, head.severity, head.message, head.kind, fix))
    return out


def frontmatter_findings(doc: Document, path: str) -> Iterator[Finding]:
    """`frontmatter-invalid` and `frontmatter-unknown-key` by the rules of the file's kind."""
    fm = doc.frontmatter
    kind = doc.kind
    if fm is None:
        required = REQUIRED_KEYS.get(kind)
        recommended = RECOMMENDED_KEYS.get(kind)
        if required:
            severity = Severity.ERROR
            message = f"{_a(kind)} needs YAML frontmatter with {' and '.join(required)}"
        elif recommended:
            severity = Severity.WARNING
            message = f"{_a(kind)} has no YAML frontmatter: {recommended[1]}"
        else:
            return
        start, end = file_range(doc)
        yield Finding("frontmatter-invalid", severity, message, 0, end if start == 0 else 0)
        return
    if fm.error is not None:
        message, start, end = fm.error
        yield Finding("frontmatter-invalid", Severity.ERROR, message, start, end)
        return
    known = KNOWN_KEYS.get(kind)
    if known is None:
        return
    names = {k.name for k in fm.keys}
    for key in fm.keys:
        if key.name not in known:
            advice = IGNORED_KEY_ADVICE.get((kind, key.name))
            yield Finding(
                "frontmatter-unknown-key",
                Severity.INFORMATION if advice else Severity.HINT,
                advice or f"`{key.name}` is not {_a(kind)} frontmatter key Claude Code reads",
                key.start,
                key.end,
            )
    missing = [
        (Severity.ERROR, f"{_a(kind)} needs `{name}` in its frontmatter")
        for name in REQUIRED_KEYS.get(kind, ())
        if name not in names
    ]
    recommended = RECOMMENDED_KEYS.get(kind)
    if recommended is not None and recommended[0] not in names:
        missing.append(
            (Severity.WARNING, f"{_a(kind)} has no `{recommended[0]}`: {recommended[1]}")
        )
    for severity, message in missing:
        start = fm.start + _bom(doc)
        yield Finding("frontmatter-invalid", severity, message, start, start + 3)
    yield from _value_rules(doc, path)


def _value_rules(doc: Document, path: str) -> Iterator[Finding]:
    assert doc.frontmatter is not None
    kind = doc.kind
    for key in doc.frontmatter.keys:
        value = key.value
        span = (
            (key.value_start, key.value_end)
            if key.value_end > key.value_start
            else (key.start, key.end)
        )
        if (
            key.name in ("name", "description")
            and (kind in REQUIRED_KEYS or kind in RECOMMENDED_KEYS)
            and not isinstance(value, str)
        ):
            yield Finding(
                "frontmatter-invalid", Severity.ERROR, f"`{key.name}` must be text", *span
            )
            continue
        if kind == "skill" and key.name == "name" and isinstance(value, str):
            folder = os.path.basename(os.path.dirname(path))
            if len(value) > 64:
                yield Finding(
                    "frontmatter-invalid",
                    Severity.ERROR,
                    f"skill name is {len(value)} characters; at most 64",
                    *span,
                )
            if not SKILL_NAME.match(value):
                yield Finding(
                    "frontmatter-invalid",
                    Severity.ERROR,
                    "skill name may use only lowercase letters, digits and hyphens",
                    *span,
                )
            if value != folder:
                yield Finding(
                    "frontmatter-invalid",
                    Severity.ERROR,
                    f"skill name `{value}` must match its folder `{folder}`",
                    *span,
                )
        if (
            kind == "skill"
            and key.name == "description"
            and isinstance(value, str)
            and len(value) > 1024
        ):
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                f"skill description is {len(value)} characters; at most 1024",
                *span,
            )
        if (
            kind == "agent"
            and key.name == "model"
            and isinstance(value, str)
            and value not in AGENT_MODELS
            and not value.startswith("claude-")
        ):
            yield Finding(
                "frontmatter-invalid",
                Severity.WARNING,
                f"unknown agent model `{value}`: use sonnet, opus, haiku or inherit",
                *span,
            )
        if key.name in ("tools", "allowed-tools") and not _text_or_texts(value):
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                f"`{key.name}` must be a comma-separated list of tools (or a list of them)",
                *span,
            )
        if kind == "rule" and key.name == "paths" and not _text_or_texts(value):
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                "`paths` must be a glob or a list of globs",
                *span,
            )


def _text_or_texts(value: object) -> bool:
    """A string, or a list of strings (not of numbers, mappings or lists)."""
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )


def reference_findings(resolutions: Iterable[Resolution]) -> Iterator[Finding]:
    """`unresolved-reference` and `outside-workspace` for references that do not resolve."""
    for res in resolutions:
        ref = res.ref
        if res.status in ("resolved", "mention", "uninstalled"):
            continue
        if res.status == "unresolved":
            tried = ", ".join(res.tried) if res.tried else "its own folder"
            message = f"cannot find `{ref.target}` (tried {tried})"
            if res.suggestion:
                message += f"; did you mean `{res.suggestion}`?"
            severity = LOADING_SEVERITY if ref.loads and ref.form != "link" else Severity.WARNING
            yield Finding("unresolved-reference", severity, message, ref.start, ref.end)
        elif res.status == "directory":
            if ref.loads and ref.form != "link":
                yield Finding(
                    "unresolved-reference",
                    Severity.WARNING,
                    f"`{ref.target}` is a folder, not a file",
                    ref.start,
                    ref.end,
                )
        elif res.status == "outside":
            home = ref.target.startswith("~")
            yield Finding(
                "outside-workspace",
                Severity.INFORMATION if home else Severity.WARNING,
                f"`{ref.target}` is outside the workspace"
                + (" (your home folder)" if home else "")
                + ": promptls does not read it, and it is not counted",
                ref.start,
                ref.end,
            )
        elif res.status == "loop":
            yield Finding(
                "outside-workspace",
                Severity.WARNING,
                f"`{ref.target}` is a symlink loop: not read",
                ref.start,
                ref.end,
            )
        else:
            yield Finding(
                "outside-workspace",
                Severity.WARNING,
                f"`{ref.target}` is not a regular file (device, FIFO or socket): not read",
                ref.start,
                ref.end,
            )


def budget_finding(
    code: str, what: str, amount: int, budget: int | None, warn_ratio: float, span: tuple[int, int]
) -> Finding | None:
    """A budget finding: warning over the budget, information over `warn_ratio` of it."""
    if not budget:
        return None
    share = amount / budget
    if share > 1:
        severity, verb = Severity.WARNING, "over"
    elif share >= warn_ratio:
        severity, verb = Severity.INFORMATION, "near"
    else:
        return None
    return Finding(
        code,
        severity,
        f"{what} ≈{amount:,} tokens, {verb} the budget of {budget:,} ({share:.0%})",
        *span,
    )


def apply_overrides(findings: Iterable[Finding], overrides: Mapping[str, str]) -> list[Finding]:
    """Apply the `severity` setting: change a code's severity, or drop it with `off`."""
    if not overrides:
        return list(findings)
    out: list[Finding] = []
    for f in findings:
        level = overrides.get(f.code)
        if level is None:
            out.append(f)
        elif level != "off":
            out.append(
                Finding(f.code, Severity.parse(level), f.message, f.start, f.end, f.related, f.data)
            )
    return out


def cap_findings(findings: list[Finding], limit: int) -> list[Finding]:
    """At most `limit` of `findings` (0: all), the most severe first, in document order, and
    one `too-many-problems` information saying how many more there are."""
    if limit <= 0 or len(findings) <= limit:
        return findings
    ranked = sorted(findings, key=lambda f: (f.severity, f.start, f.end, f.code))
    kept, left = ranked[:limit], ranked[limit:]
    first = min(left, key=lambda f: (f.start, f.end))
    kept.append(
        Finding(
            "too-many-problems",
            Severity.INFORMATION,
            f"{len(left):,} more problems in this file are not shown "
            f"(maxProblems = {limit:,}; the most severe are)",
            first.start,
            first.end,
        )
    )
    return sorted(kept, key=lambda f: (f.start, f.end, f.code))
