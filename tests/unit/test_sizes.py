"""Sizes and encodings: files of 10 MB and more, a single 1 MB line, binary files, invalid
UTF-8, a byte order mark, NUL bytes, CRLF and CR line endings, and positions in UTF-16, UTF-8
and UTF-32 with emoji and CJK: analysed in bounded time, a `file-too-large` information where
the analysis is reduced (over `maxFileBytes`), every count exact, every position right.

And in the server: a huge document opened does not keep a small one from being answered.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from promptls.analysis.document import parse_document
from promptls.analysis.findings import Finding, Severity
from promptls.analysis.graph import WorkspaceIndex
from promptls.analysis.rules import frontmatter_findings, xml_findings
from promptls.analysis.text import LineIndex, PositionEncoding
from promptls.analysis.tokens import TokenCounter
from promptls.analysis.workspace import Workspace
from promptls.cli import main
from promptls.config import Settings
from tests.e2e.conftest import SERVER, open_doc, record, start
from tests.fuzzing import assert_in_range, time_bound

COUNTER = TokenCounter()
WORDS = "alpha beta gamma delta <x> `tick` & [l](y.md) @z.md 😀 中文 ledger posting".split()


def _index(root: Path, settings: Settings | None = None) -> WorkspaceIndex:
    settings = settings or Settings()
    index = WorkspaceIndex(Workspace([root], settings.kinds, settings.exclude), settings, COUNTER)
    index.index(threads=2)
    return index


def _big_text(size: int, seed: int = 1) -> str:
    """`size` characters of lines (a block of a few hundred distinct lines, repeated: the size
    is what matters here, and repeated chunks keep the count quick)."""
    words = " ".join(WORDS)
    block = "".join(
        f"{i} {words[i % 40 :]} {i * 7919 % 100_003}\n" for i in range(seed, seed + 500)
    )
    return (block * (size // len(block) + 1))[:size]


# ---------------------------------------------------------------------------------------------
# Large files
# ---------------------------------------------------------------------------------------------


def test_a_10mb_file_is_counted_not_parsed(tmp_path: Path) -> None:
    big = tmp_path / ".claude" / "modules" / "big.md"
    big.parent.mkdir(parents=True)
    text = "<module>\n" + _big_text(10_500_000)
    big.write_text(text, encoding="utf-8")
    (tmp_path / "CLAUDE.md").write_text("# Memory\n@.claude/modules/big.md\n")
    started = time.perf_counter()
    index = _index(tmp_path)
    fa = index.get(str(big.resolve()))
    assert fa is not None
    findings = index.findings(fa.path)
    elapsed = time.perf_counter() - started
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert fa.doc.reduced
    too_large = [f for f in findings if f.code == "file-too-large"]
    assert len(too_large) == 1 and too_large[0].severity == Severity.INFORMATION
    assert (too_large[0].start, too_large[0].end) == (0, 1)
    assert not [f for f in findings if f.code == "xml-syntax"], "a reduced file is not parsed"
    assert fa.raw_tokens == COUNTER.count(text)  # count == count_exact: see test_tokens.py
    memory = index.get(str((tmp_path / "CLAUDE.md").resolve()))
    assert memory is not None
    assert index.load_tokens(memory.path) == memory.tokens + fa.tokens


@pytest.mark.parametrize(("size", "reduced"), [(1000, False), (1001, True)])
def test_the_limit_is_max_file_bytes(tmp_path: Path, size: int, reduced: bool) -> None:
    path = tmp_path / ".claude" / "modules" / "m.md"
    path.parent.mkdir(parents=True)
    text = ("<a>\n" + "x" * size)[:size]
    path.write_text(text)
    index = _index(tmp_path, Settings(max_file_bytes=1000))
    fa = index.get(str(path.resolve()))
    assert fa is not None and fa.doc.reduced is reduced
    assert any(f.code == "file-too-large" for f in index.findings(fa.path)) is reduced
    assert fa.raw_tokens == COUNTER.count_exact(text)


def test_the_limit_counts_bytes_not_characters(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "modules" / "cjk.md"
    path.parent.mkdir(parents=True)
    path.write_text("中" * 600, encoding="utf-8")  # 1,800 bytes
    index = _index(tmp_path, Settings(max_file_bytes=1000))
    fa = index.get(str(path.resolve()))
    assert fa is not None and fa.doc.reduced


def test_a_single_1mb_line(tmp_path: Path) -> None:
    words = " ".join(WORDS[:7] + WORDS[9:])  # a reference now and then, not in every phrase
    line = ("<steps>" + f" {words} [l](y.md) @z.md " + f" {words}" * 9) * 1500
    line = line[:1_000_000]
    path = tmp_path / ".claude" / "modules" / "line.md"
    path.parent.mkdir(parents=True)
    path.write_text(line, encoding="utf-8")
    started = time.perf_counter()
    index = _index(tmp_path)
    fa = index.get(str(path.resolve()))
    assert fa is not None
    findings = index.findings(fa.path)
    elapsed = time.perf_counter() - started
    assert elapsed < time_bound(len(line)) / 2, f"{elapsed:.1f} s for one 1 MB line"
    assert not fa.doc.reduced and fa.doc.regions
    assert_in_range(findings, line, "1 MB line")
    assert fa.raw_tokens == COUNTER.count_exact(line)
    lines = LineIndex(line)
    last = max(findings, key=lambda f: f.end)
    assert lines.position(last.end).line == 0


# ---------------------------------------------------------------------------------------------
# Bytes that are not clean UTF-8 text
# ---------------------------------------------------------------------------------------------


def test_binary_files(tmp_path: Path) -> None:
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(300_000))
    path = tmp_path / ".claude" / "modules" / "blob.md"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    (tmp_path / "CLAUDE.md").write_text("@.claude/modules/blob.md\n")
    index = _index(tmp_path)
    fa = index.get(str(path.resolve()))
    assert fa is not None
    text = data.decode("utf-8", errors="replace")
    assert fa.doc.text == text
    assert fa.raw_tokens == COUNTER.count_exact(text)
    assert_in_range(index.findings(fa.path), text, "binary")


def _check_json(root: Path, encoding: str) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["check", str(root), "--format", "json", "--position-encoding", encoding])
    assert code in (0, 1)
    return {f["path"]: f for f in json.loads(out.getvalue())["files"]}


def _units(prefix: str, encoding: str) -> int:
    """Code units of `prefix` in `encoding`, by Python's codecs (independent of LineIndex)."""
    if encoding == "utf-16":
        return len(prefix.encode("utf-16-le", "surrogatepass")) // 2
    if encoding == "utf-8":
        return len(prefix.encode("utf-8", "surrogatepass"))
    return len(prefix)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
def test_positions_with_emoji_cjk_and_invalid_bytes(tmp_path: Path, encoding: str) -> None:
    files: dict[str, bytes] = {
        ".claude/modules/wide.md": (
            "# Wide 😀\n\n```xml\n<a>😀中文 &nbsp; 👩‍👩‍👧 <b></a>\n```\n".encode()
        ),
        ".claude/modules/invalid.md": b"# \xff\xfe\n\n```xml\n\xff\xc3<a>\xe2\x82 &x;</a>\n```\n",
        ".claude/modules/nul.md": b"# N\x00L\n\n```xml\n<a>\x00\x00 &y;</a>\n```\n",
        ".claude/commands/bom.md": "\ufeff---\ndescription: d\ntools: Read\n---\n# B\n".encode(),
        ".claude/agents/bom.md": "\ufeff---\ndescription: d\n---\n# Agent\n".encode(),
    }
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    report = _check_json(tmp_path, encoding)
    for rel, data in files.items():
        text = data.decode("utf-8", errors="replace")
        entry = report[rel]
        assert entry["rawTokens"] == COUNTER.count_exact(text), rel
        assert "\r" not in text and entry["diagnostics"], rel
        for d in entry["diagnostics"]:
            for end in ("start", "end"):
                pos = d["range"][end]
                line = text.split("\n")[pos["line"]]
                assert 0 <= pos["character"] <= _units(line, encoding), (rel, d)
    # The exact spots, counted with Python's codecs.
    wide = files[".claude/modules/wide.md"].decode()
    xml_line = wide.split("\n")[3]
    entity = next(
        d for d in report[".claude/modules/wide.md"]["diagnostics"] if "nbsp" in d["message"]
    )
    assert entity["range"]["start"] == {
        "line": 3,
        "character": _units(xml_line[: xml_line.index("&nbsp;")], encoding),
    }
    assert entity["range"]["end"]["character"] == _units(
        xml_line[: xml_line.index("&nbsp;") + 6], encoding
    )
    invalid = files[".claude/modules/invalid.md"].decode("utf-8", errors="replace")
    bad_line = invalid.split("\n")[3]
    undefined = next(
        d for d in report[".claude/modules/invalid.md"]["diagnostics"] if "&x;" in d["message"]
    )
    assert undefined["range"]["start"]["character"] == _units(
        bad_line[: bad_line.index("&x;")], encoding
    )
    nul = files[".claude/modules/nul.md"].decode()
    control = next(
        d
        for d in report[".claude/modules/nul.md"]["diagnostics"]
        if "control character" in d["message"]
    )
    assert control["range"]["start"] == {"line": 3, "character": 3}
    assert control["range"]["end"] == {"line": 3, "character": 5}
    assert nul.count("\x00") == 3
    # A byte order mark is a character of line 0: the `---` after it starts at character 1.
    agent = report[".claude/agents/bom.md"]["diagnostics"]
    needs_name = next(d for d in agent if "`name`" in d["message"])
    bom_units = _units("\ufeff", encoding)
    assert needs_name["range"]["start"] == {"line": 0, "character": bom_units}
    command = report[".claude/commands/bom.md"]["diagnostics"]
    assert any(
        d["code"] == "frontmatter-unknown-key" and d["range"]["start"]["line"] == 2 for d in command
    )


# ---------------------------------------------------------------------------------------------
# Line endings
# ---------------------------------------------------------------------------------------------

SAMPLE = """---
description: plan
tools: Read
---
# Title ✓

<rules>
  <rule>one</rule>
  <rule>a < b & c 😀</rule>
  <rule>unclosed
</rules>

```xml
<a><b></a>
```

See @missing/file.md and [link](nope.md).

<depends_on>
  quality/missing-dep.md
</depends_on>
"""


def _positions(text: str, kind: str) -> list[tuple[str, int, int, int, int]]:
    doc = parse_document(text, kind)
    found: list[Finding] = [*xml_findings(doc), *frontmatter_findings(doc, "/ws/x.md")]
    assert_in_range(found, text)
    lines = LineIndex(text)
    out = []
    for f in found:
        r = lines.range(f.start, f.end, PositionEncoding.UTF16)
        out.append((f.code, r.start.line, r.start.character, r.end.line, r.end.character))
    return sorted(out)


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
def test_crlf_and_cr_give_the_same_positions(ending: str) -> None:
    expected = _positions(SAMPLE, "command")
    assert len(expected) >= 4
    assert _positions(SAMPLE.replace("\n", ending), "command") == expected


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_crlf_and_cr_in_the_index(tmp_path: Path, ending: str) -> None:
    path = tmp_path / ".claude" / "commands" / "plan.md"
    path.parent.mkdir(parents=True)
    text = SAMPLE.replace("\n", ending)
    path.write_bytes(text.encode())
    index = _index(tmp_path)
    fa = index.get(str(path.resolve()))
    assert fa is not None and fa.doc.text == text
    assert fa.raw_tokens == COUNTER.count_exact(text)
    found = index.findings(fa.path)
    assert_in_range(found, text, repr(ending))
    lines = LineIndex(text)
    whole_file = [f for f in found if f.code in ("token-budget", "load-budget")]
    for f in whole_file:
        assert lines.position(f.start).line == lines.position(f.end).line


def test_compressible_hint_ends_before_the_crlf(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "modules" / "m.md"
    path.parent.mkdir(parents=True)
    body = "".join(f"    <rule>  rule number {i}  </rule>\r\n" for i in range(40))
    text = f"# M\r\n\r\n<rules>\r\n{body}</rules>\r\n"
    path.write_bytes(text.encode())
    index = _index(tmp_path)
    fa = index.get(str(path.resolve()))
    assert fa is not None
    hints = [f for f in index.findings(fa.path) if f.code == "xml-compressible"]
    assert hints
    for f in hints:
        assert not text.startswith("\r\n", f.end - 1), "the range splits a CRLF"


# ---------------------------------------------------------------------------------------------
# The server with a huge document open
# ---------------------------------------------------------------------------------------------


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def lsp(
    lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LanguageClient]:
    record(lsp_client)
    root = (tmp_path_factory.mktemp("sizes") / "ws").resolve()
    (root / ".claude" / "modules").mkdir(parents=True)
    (root / ".claude" / "modules" / "small.md").write_text("# Small\nA small module.\n")
    (root / "CLAUDE.md").write_text("# Memory\n\n@.claude/modules/small.md\n")
    lsp_client.__dict__["root"] = root
    await start(lsp_client, "visual-studio-code", [root])
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest.mark.asyncio(loop_scope="function")
async def test_a_huge_document_does_not_block_a_small_one(lsp: LanguageClient) -> None:
    root: Path = lsp.__dict__["root"]
    huge = root / ".claude" / "modules" / "huge.md"
    text = "<module>\n" + _big_text(10_500_000, seed=3)
    open_doc(lsp, huge, text=text)
    memory = open_doc(lsp, root / "CLAUDE.md")
    started = time.perf_counter()
    hover = await asyncio.wait_for(
        lsp.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=memory),
                position=types.Position(line=2, character=5),
            )
        ),
        timeout=60,
    )
    waited = time.perf_counter() - started
    assert hover is not None and "small.md" in str(hover.contents)
    counted = await lsp.protocol.send_request_async(
        "promptls/countTokens",
        {
            "uri": huge.as_uri(),
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 10**9, "character": 0}},
        },
    )
    assert counted.characters == len(text)
    print(f"hover on a small file answered {waited:.2f} s after a 10 MB file was opened")
