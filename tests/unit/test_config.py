"""Settings: defaults, camelCase keys, invalid values reported and replaced by defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from promptls.config import Settings, load_settings, settings_from

VALID = [
    ("camel-case", {"loadBudget": 60000}, "load_budget", 60000),
    ("snake-case", {"load_budget": 60000}, "load_budget", 60000),
    ("int-as-float", {"calibration": 2}, "calibration", 2.0),
    ("search-roots", {"searchRoots": ["prompts"]}, "search_roots", ["prompts"]),
    ("severity", {"severity": {"import-cycle": "off"}}, "severity", {"import-cycle": "off"}),
]


@pytest.mark.parametrize(
    ("layer", "attr", "expected"), [v[1:] for v in VALID], ids=[v[0] for v in VALID]
)
def test_valid(layer: dict[str, Any], attr: str, expected: object) -> None:
    settings = settings_from(layer)
    assert getattr(settings, attr) == expected
    assert settings.problems == []


INVALID = [
    ("wrong-type", {"loadBudget": "lots"}, "loadBudget: expected an integer"),
    ("negative", {"importDepth": -1}, "importDepth: must not be negative"),
    ("bool-is-not-int", {"importDepth": True}, "expected an integer"),
    ("unknown-key", {"colour": "red"}, "colour: unknown setting"),
    ("unknown-encoding", {"encoding": "o200k_base"}, "not installed"),
    ("bad-severity", {"severity": {"xml-syntax": "loud"}}, "expected error, warning"),
    ("unknown-kind", {"kinds": {"poem": ["*.txt"]}}, "unknown kind"),
    ("calibration-range", {"calibration": 50}, "between 0.1 and 10"),
    ("nested-not-table", {"budgets": 5}, "budgets: expected a table"),
]


@pytest.mark.parametrize(
    ("layer", "message"), [v[1:] for v in INVALID], ids=[v[0] for v in INVALID]
)
def test_invalid_reported_and_default_kept(layer: dict[str, Any], message: str) -> None:
    settings = settings_from(layer)
    assert any(message in p for p in settings.problems), settings.problems
    defaults = Settings()
    for key in ("load_budget", "import_depth", "encoding", "calibration", "severity"):
        assert getattr(settings, key) == getattr(defaults, key)


def test_nested_budget_and_kind_merge() -> None:
    settings = settings_from({"budgets": {"command": 100}, "kinds": {"module": ["m/**"]}})
    assert settings.budgets.command == 100
    assert settings.budgets.module == Settings().budgets.module
    assert settings.kinds["module"] == ["m/**"]
    assert settings.kinds["command"] == Settings().kinds["command"]


def test_layers_editor_wins(tmp_path: Path) -> None:
    (tmp_path / ".promptls.toml").write_text("loadBudget = 1000\nimportDepth = 4\n")
    settings = load_settings(tmp_path, {"loadBudget": 2000})
    assert (settings.load_budget, settings.import_depth) == (2000, 4)


def test_broken_project_file(tmp_path: Path) -> None:
    (tmp_path / ".promptls.toml").write_text("loadBudget = = 3\n")
    settings = load_settings(tmp_path)
    assert settings.load_budget == 50_000
    assert settings.problems and ".promptls.toml" in settings.problems[0]


def test_project_file_nested_too_deeply(tmp_path: Path) -> None:
    """tomllib reads nested tables by recursion: the file is refused with a message, not a
    crash."""
    n = 3000
    (tmp_path / ".promptls.toml").write_text(f"x = {'{a = ' * n}1{'}' * n}\nloadBudget = 7\n")
    settings = load_settings(tmp_path)
    assert settings.load_budget == 50_000
    assert settings.problems == [
        ".promptls.toml: tables or arrays nested too deeply to read; using the defaults"
    ]


@pytest.mark.parametrize(
    "value",
    [
        "y" * 1_000_000,
        ["x"] * 100_000,
        {"a": {"a": {"a": {"a": {"a": 1}}}}},
    ],
    ids=["long string", "long list", "nested tables"],
)
def test_problem_messages_quote_values_briefly(value: object) -> None:
    """An invalid value is quoted cut short: a problem is a line, whatever the value."""
    settings = settings_from({"loadBudget": value}, {})
    (problem,) = settings.problems
    assert problem.startswith("loadBudget: expected an integer, got ")
    assert len(problem) < 300
    assert settings.load_budget == 50_000


def test_editor_settings_nested_deeper_than_the_recursion_limit() -> None:
    value: object = 1
    for _ in range(5000):
        value = {"a": value}
    settings = settings_from({}, {"loadBudget": value, "severity": value})
    assert settings.load_budget == 50_000
    assert len(settings.problems) == 2
    assert all(len(p) < 300 for p in settings.problems)
