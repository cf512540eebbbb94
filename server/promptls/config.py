"""One typed settings tree: defaults, `.promptls.toml` at the workspace root, and editor settings.

Keys may be written in camelCase (as editors send them) or snake_case. An invalid value is reported
in `Settings.problems` with a clear message and replaced by its default; it never stops analysis.
"""

from __future__ import annotations

import dataclasses
import os
import re
import reprlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

CONFIG_FILE = ".promptls.toml"

KINDS: tuple[str, ...] = (
    "memory",
    "command",
    "agent",
    "skill",
    "output-style",
    "rule",
    "project-config",
    "component",
    "module",
    "other",
)


def _default_kinds() -> dict[str, list[str]]:
    return {
        "memory": ["**/CLAUDE.md", "**/CLAUDE.local.md"],
        "command": ["**/.claude/commands/**/*.md"],
        "agent": ["**/.claude/agents/**/*.md"],
        "skill": ["**/.claude/skills/*/SKILL.md"],
        "output-style": ["**/.claude/output-styles/**/*.md"],
        "rule": ["**/.claude/rules/**/*.md"],
        "project-config": ["**/PROJECT_CONFIG.xml"],
        "component": ["**/components/**/*.md"],
        "module": ["**/.claude/modules/**/*.md", "**/.claude/system/**/*.md", "**/.claude/**/*.md"],
    }


@dataclass(slots=True)
class Budgets:
    """Token budget of one file of each kind (its own `tokens`, not its load cost)."""

    memory: int = 5_000
    """CLAUDE.md and friends are loaded into every session: keep them lean."""
    command: int = 8_000
    """A slash command's own text."""
    agent: int = 8_000
    """A subagent's system prompt."""
    skill: int = 5_000
    """SKILL.md body (Anthropic suggests staying under about 500 lines)."""
    output_style: int = 4_000
    """An output style."""
    rule: int = 2_000
    """A path-scoped rule."""
    module: int = 8_000
    """One framework module."""
    component: int = 4_000
    """One prompt component."""
    project_config: int = 4_000
    """PROJECT_CONFIG.xml."""

    def for_kind(self, kind: str) -> int | None:
        """The budget of `kind`, or None for kinds without one."""
        value = getattr(self, kind.replace("-", "_"), None)
        return value if isinstance(value, int) else None


@dataclass(slots=True)
class Hints:
    """Inlay hints beside references."""

    tokens: bool = True
    """Show `≈1,234 tok` after each resolved reference."""
    load_time: bool = False
    """Also show the measured load time, cold and from the cache."""


@dataclass(slots=True)
class Compression:
    """XML compression quick fixes."""

    level: str = "whitespace"
    """`whitespace` (the model reads the same words) or `lossless` (same canonical XML)."""
    remove_comments: bool = False
    """Also remove XML comments (they reach the model inside fences, so off by default)."""
    min_saving: int = 20
    """Smallest saving, in tokens, that gets an `xml-compressible` hint diagnostic."""


@dataclass(slots=True)
class Settings:
    """Every promptls setting, with its default."""

    encoding: str = "cl100k_base"
    """tiktoken encoding used for every count (only encodings installed with the package)."""
    calibration: float = 1.0
    """Factor applied to tiktoken counts to estimate Claude's tokenizer (1.0: plain tiktoken)."""
    budgets: Budgets = field(default_factory=Budgets)
    """Per-kind token budgets."""
    load_budget: int = 50_000
    """Budget for the load cost of a command, memory file, agent, skill or output style."""
    warn_ratio: float = 0.8
    """Share of a budget above which an information is shown (0.8: the 80 % warning)."""
    context_budget_tolerance: float = 0.25
    """How far a declared <context_budget> may be from the measured load cost."""
    import_depth: int = 5
    """Maximum @import hops followed from a file (Claude Code documents 5, sometimes 4)."""
    search_roots: list[str] = field(
        default_factory=lambda: [".claude", ".claude/modules", ".claude/system", "."]
    )
    """Folders, relative to the framework root, tried after the referencing file's own folder."""
    kinds: dict[str, list[str]] = field(default_factory=_default_kinds)
    """Path globs deciding each file's kind, tried in the order of KINDS; `**` matches any depth."""
    exclude: list[str] = field(
        default_factory=lambda: [
            "**/.git/**",
            "**/node_modules/**",
            "**/.venv/**",
            "**/venv/**",
            "**/__pycache__/**",
            "**/.tox/**",
        ]
    )
    """Path globs never indexed."""
    loadable_extensions: list[str] = field(
        default_factory=lambda: [
            ".md",
            ".markdown",
            ".xml",
            ".txt",
            ".yaml",
            ".yml",
            ".json",
            ".toml",
        ]
    )
    """A referenced file with one of these extensions is loaded (counted); others only resolve."""
    severity: dict[str, str] = field(default_factory=dict)
    """Per-code severity override: `error`, `warning`, `information`, `hint` or `off`."""
    max_file_bytes: int = 2_000_000
    """Files larger than this get a reduced analysis (counted, not parsed)."""
    hints: Hints = field(default_factory=Hints)
    """Inlay hints."""
    compression: Compression = field(default_factory=Compression)
    """XML compression."""
    duplicate_min_tokens: int = 50
    """Smallest paragraph or XML element reported when it appears twice in one load set."""
    max_problems: int = 1000
    """Most findings reported per file (the most severe first; 0: no limit). More than this
    in one file is noise, and each keystroke would publish them all again."""
    diagnostics_delay: int = 150
    """Milliseconds the editor waits after a keystroke before analysing (language server only)."""
    problems: list[str] = field(default_factory=list)
    """Messages about invalid settings (filled while loading, not a setting)."""


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel = 3
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = 8


def _shown(value: Any) -> str:
    """`value` as a problem message quotes it: its repr, cut short (a value may be a megabyte
    long, or nested thousands deep)."""
    return _SHOWN.repr(value)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).replace("-", "_").lower()


def _check(value: Any, hint: Any, where: str) -> Any:
    """Return `value` converted to the type `hint`, or raise ValueError with a readable message."""
    origin = get_origin(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {_shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {_shown(value)}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {_shown(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {_shown(value)}")
        return value
    if origin is list:
        (item,) = get_args(hint)
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {_shown(value)}")
        return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = get_args(hint)
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a table, got {_shown(value)}")
        return {str(k): _check(v, item, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(f"{where}: unsupported setting type")


def _merge_into(target: Any, data: Mapping[str, Any], prefix: str, problems: list[str]) -> None:
    hints = get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target) if f.name != "problems"}
    for raw_key, value in data.items():
        key = _snake(str(raw_key))
        where = f"{prefix}{raw_key}"
        if key not in names:
            problems.append(f"{where}: unknown setting (ignored)")
            continue
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                problems.append(
                    f"{where}: expected a table, got {_shown(value)}; using the defaults"
                )
                continue
            _merge_into(current, value, f"{where}.", problems)
            continue
        try:
            converted = _check(value, hints[key], where)
            _validate(key, converted, where)
        except ValueError as exc:
            problems.append(f"{exc}; using the default {_shown(current)}")
            continue
        if key == "kinds":
            merged = dict(current)
            merged.update(converted)
            converted = merged
        setattr(target, key, converted)


def _validate(key: str, value: Any, where: str) -> None:
    from promptls.analysis.findings import Severity

    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"{where}: must not be negative, got {_shown(value)}")
    if key == "level" and value not in ("whitespace", "lossless"):
        raise ValueError(f"{where}: expected whitespace or lossless, got {_shown(value)}")
    if key == "calibration" and not 0.1 <= value <= 10:
        raise ValueError(f"{where}: must be between 0.1 and 10, got {_shown(value)}")
    if key in {"warn_ratio", "context_budget_tolerance"} and not 0 < value <= 1:
        raise ValueError(f"{where}: must be between 0 and 1, got {_shown(value)}")
    if key == "encoding":
        from promptls.analysis.tokens import available_encodings

        if value not in available_encodings():
            raise ValueError(
                f"{where}: encoding {_shown(value)} is not installed "
                f"(available: {', '.join(available_encodings())})"
            )
    if key == "kinds":
        unknown = sorted(set(value) - set(KINDS) - {"other"})
        if unknown:
            raise ValueError(
                f"{where}: unknown kind(s) {', '.join(unknown)}; kinds: {', '.join(KINDS)}"
            )
    if key == "severity":
        for code, level in value.items():
            if level != "off":
                try:
                    Severity.parse(level)
                except ValueError:
                    raise ValueError(
                        f"{where}.{code}: expected error, warning, information, hint or off"
                    ) from None


def settings_from(*layers: Mapping[str, Any]) -> Settings:
    """Defaults, then each layer merged over the previous ones (project file, then editor)."""
    settings = Settings()
    for layer in layers:
        _merge_into(settings, layer, "", settings.problems)
    return settings


#: The largest `.promptls.toml` read: settings are a few lines; anything larger is refused.
MAX_PROJECT_FILE_BYTES = 1 << 20


def read_project_file(root: Path) -> tuple[dict[str, Any], list[str]]:
    """The `.promptls.toml` at `root` as a table, and any problem reading it. It is read as
    every workspace file is (`analysis.workspace`): only a regular file inside `root`, opened
    without blocking, at most `MAX_PROJECT_FILE_BYTES`; a symlink out of `root` or to a FIFO or
    a device, a symlink loop or a folder is reported and never opened."""
    # Imported here: `promptls.analysis` imports this module.
    from promptls.analysis.workspace import Status, Workspace

    folder = Workspace([root], {})
    path = os.path.join(folder.folders[0], CONFIG_FILE)
    status = folder.status(path)
    if status is Status.MISSING:
        return {}, []
    if status is not Status.FILE:
        why = {
            Status.OUTSIDE: "a symlink out of the workspace",
            Status.LOOP: "a symlink loop",
            Status.DIRECTORY: "a folder",
        }.get(status, "not a regular file")
        return {}, [f"{CONFIG_FILE}: {why}; not read, using the defaults"]
    try:
        data = folder.read_bytes(path, limit=MAX_PROJECT_FILE_BYTES)
        return tomllib.loads(data.decode("utf-8")), []
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{CONFIG_FILE}: {exc}; using the defaults"]
    except RecursionError:  # (tomllib reads nested tables and arrays by recursion)
        why = "tables or arrays nested too deeply to read"
        return {}, [f"{CONFIG_FILE}: {why}; using the defaults"]


def load_settings(root: Path, editor: Mapping[str, Any] | None = None) -> Settings:
    """Settings for the workspace at `root`: defaults < `.promptls.toml` < editor settings."""
    project, problems = read_project_file(root)
    settings = settings_from(project, editor or {})
    settings.problems[:0] = problems
    return settings
