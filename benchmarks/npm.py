"""npm packages the benchmarks compare promptls with, installed once under `benchmarks/.cache/`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from make_workspace import CACHE


def install(name: str, version: str, npm: str) -> tuple[Path | None, str | None]:
    """The install folder of `name@version` under benchmarks/.cache/ (installed once), or the
    reason it is not there."""
    prefix = CACHE / name
    manifest = prefix / "node_modules" / name / "package.json"

    def installed() -> str | None:
        try:
            return str(json.loads(manifest.read_text(encoding="utf-8")).get("version"))
        except (OSError, ValueError):
            return None

    if installed() != version:
        CACHE.mkdir(parents=True, exist_ok=True)
        ignore = CACHE / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n", encoding="utf-8")
        print(f"npm install {name}@{version} under {prefix}", file=sys.stderr, flush=True)
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"{name}@{version}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or installed() != version:
            return None, f"npm install failed: {done.stderr.strip()[:300] or 'no message'}"
    return prefix, None
