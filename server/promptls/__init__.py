"""promptls: a language server and CLI for Claude Code prompt frameworks."""

from __future__ import annotations

__version__ = "0.1.0"
