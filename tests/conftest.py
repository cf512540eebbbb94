"""Shared test helpers: small workspaces written to a temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

WorkspaceMaker = Callable[[Mapping[str, str | bytes]], Path]


@pytest.fixture
def make_workspace(tmp_path: Path) -> WorkspaceMaker:
    """Write `{relative path: content}` under a fresh folder and return the folder."""

    def make(files: Mapping[str, str | bytes]) -> Path:
        root = tmp_path / "ws"
        root.mkdir(exist_ok=True)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_bytes(content.encode("utf-8"))
        return root

    return make


def first_arguments(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[Any]:
    """Wrap `owner.name` (for the test) so that each call notes its first argument, and still
    does what it did; the list of those arguments, in call order."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def spy(first: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls
