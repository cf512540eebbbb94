"""Per-file rules: XML syntax, frontmatter by kind, reference problems and token budgets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping

from promptls.analysis.document import Document
from promptls.analysis.findings import Finding, Severity
from promptls.analysis.references import Resolution
from promptls.analysis.xml import XmlProblem

#: Frontmatter keys Claude Code reads, by kind (mid-2025 documentation).
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "command": frozenset(
        {"description", "allowed-tools", "argument-hint", "model", "disable-model-invocation"}
    ),
    "agent": frozenset({"name", "description", "tools", "model", "color"}),
    "skill": frozenset({"name", "description", "allowed-tools", "license", "metadata"}),
    "output-style": frozenset({"name", "description", "keep-coding-instructions"}),
    "rule": frozenset({"paths"}),
}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "agent": ("name", "description"),
    "skill": ("name", "description"),
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
    end = doc.text.find("\n", start)
    end = len(doc.text) if end < 0 else end
    if end > start and doc.text[end - 1] == "\r":
        end -= 1
    return (start, end) if start < len(doc.text) else (0, 0)


def file_range(doc: Document) -> tuple[int, int]:
    """Where a whole-file finding is shown: the first line of the body."""
    return _first_line(doc)


def xml_findings(doc: Document) -> Iterator[Finding]:
    """`xml-syntax` for every problem of every XML region, and an unclosed block comment."""
    for region in doc.regions:
        for p in _merge_runs(region.check.problems):
            data = (("fix", p.fix), ("kind", p.kind)) if p.fix is not None else (("kind", p.kind),)
            yield Finding(
                "xml-syntax",
                p.severity,
                p.message,
                region.start + p.start,
                region.start + p.end,
                data=data,
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


def _merge_runs(problems: Iterable[XmlProblem]) -> list[XmlProblem]:
    """Adjacent lexical problems of one kind (the two `&` of `&&`) become one finding."""
    out: list[XmlProblem] = []
    for p in problems:
        last = out[-1] if out else None
        if (
            last is not None
            and last.kind == p.kind
            and last.end == p.start
            and p.severity is Severity.WARNING
            and last.fix is not None
            and p.fix is not None
        ):
            out[-1] = XmlProblem(
                last.start, p.end, last.severity, last.message, last.kind, last.fix + p.fix
            )
        else:
            out.append(p)
    return out


def frontmatter_findings(doc: Document, path: str) -> Iterator[Finding]:
    """`frontmatter-invalid` and `frontmatter-unknown-key` by the rules of the file's kind."""
    fm = doc.frontmatter
    kind = doc.kind
    if fm is None:
        required = REQUIRED_KEYS.get(kind)
        if required:
            start, end = file_range(doc)
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                f"{_a(kind)} needs YAML frontmatter with {' and '.join(required)}",
                0,
                end if start == 0 else 0,
            )
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
                advice or f"`{key.name}` is not a {kind} frontmatter key Claude Code reads",
                key.start,
                key.end,
            )
    for name in REQUIRED_KEYS.get(kind, ()):
        if name not in names:
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                f"{_a(kind)} needs `{name}` in its frontmatter",
                fm.start,
                fm.start + 3,
            )
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
            and kind in REQUIRED_KEYS
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
        if key.name in ("tools", "allowed-tools") and not isinstance(value, str | list):
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                f"`{key.name}` must be a comma-separated list of tools",
                *span,
            )
        if kind == "rule" and key.name == "paths" and not isinstance(value, str | list):
            yield Finding(
                "frontmatter-invalid",
                Severity.ERROR,
                "`paths` must be a glob or a list of globs",
                *span,
            )


def reference_findings(resolutions: Iterable[Resolution]) -> Iterator[Finding]:
    """`unresolved-reference` and `outside-workspace` for references that do not resolve."""
    for res in resolutions:
        ref = res.ref
        if res.status == "resolved":
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
