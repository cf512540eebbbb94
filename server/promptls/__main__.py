"""`python -m promptls`: the CLI entry point (``serve`` when no command is given)."""

from __future__ import annotations

from promptls.cli import main

raise SystemExit(main())
