"""The budget dashboard of `examples/` in headless Chromium: a screenshot for the README
(`tests/output/dashboard.png`; `make dashboard` copies it to `docs/dashboard.png`) and the rendered
DOM, whose figures must be those of `promptls check --format json`."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from promptls.analysis.graph import ENTRY_KINDS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OUTPUT = ROOT / "tests" / "output"
WINDOW = (1400, 2000)


def chromium() -> str | None:
    """Debian's `chromium` (`make browser-deps` installs it), or $CHROMIUM."""
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


pytestmark = pytest.mark.skipif(
    chromium() is None, reason="chromium not installed (make browser-deps)"
)


def promptls(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptls", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def browse(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a file: URL, offline, with a throwaway profile."""
    binary = chromium()
    assert binary is not None
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *mode,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def text(element: Any) -> str:
    return " ".join(element.text_content().split())


def find(element: Any, tag: str, cls: str) -> list[Any]:
    """Descendants `<tag class="... cls ...">` (XPath: no cssselect needed)."""
    found: list[Any] = element.xpath(
        f".//{tag}[contains(concat(' ', normalize-space(@class), ' '), ' {cls} ')]"
    )
    return found


def one(element: Any, tag: str, cls: str) -> Any:
    found = find(element, tag, cls)
    assert len(found) == 1, (tag, cls, len(found))
    return found[0]


def test_dashboard_screenshot_and_numbers(tmp_path: Path) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = OUTPUT / "dashboard.html"
    made = promptls("report", str(EXAMPLES), "--html", str(page))
    assert made.returncode == 0, made.stderr
    checked = promptls("check", str(EXAMPLES), "--format", "json")
    assert checked.returncode in (0, 1), checked.stderr
    files = {f["path"]: f for f in json.loads(checked.stdout)["files"]}
    commands = [p for p, f in files.items() if f["kind"] == "command"]
    assert len(commands) >= 5

    shot = OUTPUT / "dashboard.png"
    shot.unlink(missing_ok=True)
    taken = browse(page, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.is_file(), taken.stderr[-2000:]
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one

    dumped = browse(page, tmp_path / "profile-dom", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = lxml.html.fromstring(dumped.stdout)
    loads = dom.get_element_by_id("loads")
    rows = {r.get("data-path"): r for r in find(loads, "div", "entry")}
    entries = {p for p, f in files.items() if f["kind"] in ENTRY_KINDS}
    assert set(commands) <= set(rows)
    assert set(rows) == entries
    for path, row in rows.items():
        expected = files[path]
        # What the reader sees: the path, the load cost, how many files, the share of the budget.
        assert text(one(row, "span", "name")) == path
        assert text(one(row, "b", "load")) == f"{expected['loadTokens']:,}", path
        assert text(one(row, "span", "nfiles")) == str(len(expected["loads"])), path
        share = expected["loadTokens"] / 50_000
        assert text(one(row, "span", "pct")) == f"{share:.0%}", path
        assert ("over" in row.get("class", "").split()) == (expected["loadTokens"] > 50_000)
        # The stack: one segment per loaded file, in order, its tooltip giving its tokens.
        segments = find(row, "rect", "seg")
        assert [s.get("data-path") for s in segments] == expected["loads"], path
        for segment in segments:
            member = files[segment.get("data-path")]
            tooltip = text(segment.find("title"))
            assert tooltip.startswith(
                f"{member['path']} ({member['kind']}): ≈{member['tokens']:,} "
            )
        # A clickable, relative link to the file.
        href = one(row, "span", "name").find("a").get("href")
        assert (page.parent / href).resolve() == (EXAMPLES / path).resolve()

    # The tables show the same numbers.
    for table in ("largest", "most-loaded"):
        shown = [tr for tr in one(dom, "table", table).xpath(".//tbody/tr") if tr.get("data-path")]
        assert shown
        for tr in shown:
            cells = [text(td) for td in tr.findall("td")]
            assert cells[0] == tr.get("data-path")
            tokens = files[tr.get("data-path")]["tokens"]
            assert f"{tokens:,}" in cells
    by_code = {
        text(tr.findall("td")[0]): text(tr.findall("td")[5])
        for tr in one(dom, "table", "codes").xpath(".//tbody/tr")
    }
    summary = json.loads(checked.stdout)["summary"]["byCode"]
    assert {c: int(n) for c, n in by_code.items()} == summary
