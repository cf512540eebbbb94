"""Edit safety: every `promptls compress --write` result and every code action, applied and
analysed again, is the verified result (same markdown, same shape, canonical forms equal, and
nothing left to compress); a write keeps the file's mode and line endings, and refuses a file
that changed since it was read (`promptls/fileio.py`)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import stat
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from promptls import fileio
from promptls.analysis.compress import compress_document
from promptls.analysis.document import parse_document
from promptls.analysis.findings import Severity
from promptls.analysis.kinds import kind_of
from promptls.analysis.tokens import TokenCounter
from promptls.cli import main
from promptls.config import Settings
from tests.e2e.conftest import SERVER, record, start
from tests.fuzzing import EXAMPLES, FUZZING, apply_lsp, line_break_kinds, verify_rewrite

COUNTER = TokenCounter()
KINDS = Settings().kinds

#: Files that stress the writer: other line endings, modes, lexical problems, invalid UTF-8.
EXTRA: dict[str, bytes] = {
    ".claude/modules/crlf.md": (
        b"# CRLF\r\n\r\n<rules>\r\n    <rule>  one  </rule>\r\n\r\n    <rule>two</rule>\r\n"
        b"</rules>\r\n\r\n```xml\r\n<a>\r\n  <b>  x  </b>\r\n</a>\r\n```\r\n"
    ),
    ".claude/modules/cr.md": (
        b"# CR\r\r<rules>\r    <rule>  one  </rule>\r    <rule>two</rule>\r</rules>\r"
    ),
    ".claude/modules/lexical.md": (
        b"# Lexical\n\n<rules>\n    <rule>p95 <200ms for R&D</rule>\n"
        b"    <rule>  use &nbsp; here  </rule>\n    <rule>`a  <b>`</rule>\n</rules>\n"
    ),
    ".claude/modules/broken.md": (
        b"# Broken\n\n```xml\n<a>\n    <b>   unclosed   \n</a>   \n```\n"
    ),
    ".claude/modules/latin1.md": b"# Latin-1 \xe9\n\n```xml\n<a>\n    <b>x</b>\n</a>\n```\n",
}
MODES = {".claude/modules/crlf.md": 0o640, ".claude/modules/lexical.md": 0o751}


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "examples"
    shutil.copytree(EXAMPLES, root)
    for rel, data in EXTRA.items():
        (root / rel).write_bytes(data)
    for rel, mode in MODES.items():
        os.chmod(root / rel, mode)
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# promptls compress --write
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "remove_comments"),
    [("whitespace", False), ("lossless", True), *([("whitespace", True)] if FUZZING else [])],
)
def test_compress_write_is_verified_and_final(
    tmp_path: Path, level: str, remove_comments: bool
) -> None:
    root = _workspace(tmp_path)
    before = _snapshot(root)
    extra = ["--remove-comments"] if remove_comments else []
    code, out, err = _cli("compress", str(root), "--level", level, "--write", *extra)
    # The one problem: a file that is not UTF-8 is left alone (and reported: exit code 2).
    assert code == 2 and err.strip().endswith("latin1.md: not valid UTF-8; left untouched"), err
    after = _snapshot(root)
    assert set(after) == set(before), "files appeared or vanished (a temporary file left?)"
    changed = [rel for rel in before if before[rel] != after[rel]]
    assert len(changed) >= 5, out
    for rel in changed:
        old, new = before[rel].decode(), after[rel].decode()
        kind = kind_of(rel, KINDS)
        verify_rewrite(old, new, kind, level, remove_comments)
        assert line_break_kinds(new) <= line_break_kinds(old), rel
    for rel, mode in MODES.items():
        assert stat.S_IMODE((root / rel).stat().st_mode) == mode, rel
    assert after[".claude/modules/latin1.md"] == before[".claude/modules/latin1.md"]
    # Nothing left to compress: --check finds nothing, and neither does the core.
    code, out, _ = _cli("compress", str(root), "--level", level, "--check", *extra)
    assert code == 0 and out.startswith("0 file(s)"), out
    for rel in changed:
        doc = parse_document(after[rel].decode(), kind_of(rel, KINDS))
        assert not compress_document(doc, COUNTER, level=level, remove_comments=remove_comments), (
            rel
        )


def test_compress_write_refuses_a_file_changed_since_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    target = root / ".claude" / "modules" / "crlf.md"
    concurrent = b"# Someone else's edit\n\n<rules>\n    <rule>  mine  </rule>\n</rules>\n"
    real = fileio.read_snapshot

    def racing(path: str) -> tuple[bytes, fileio.Snapshot]:
        data, snapshot = real(path)
        if path == str(target.resolve()):
            target.write_bytes(concurrent)  # an editor saves between the read and the write
        return data, snapshot

    monkeypatch.setattr(fileio, "read_snapshot", racing)
    before = _snapshot(root)
    code, _, err = _cli("compress", str(root), "--write")
    assert code == 2
    assert "changed since it was read" in err
    assert target.read_bytes() == concurrent, "the concurrent edit was overwritten"
    after = _snapshot(root)
    others = [r for r in before if r != ".claude/modules/crlf.md" and before[r] != after[r]]
    assert others, "the other files were still written"
    assert not list(root.rglob(".promptls-*.tmp"))


@pytest.mark.parametrize("change", ["content", "same-size", "touch", "deleted"])
def test_atomic_write_refuses_a_stale_snapshot(tmp_path: Path, change: str) -> None:
    path = tmp_path / "f.md"
    path.write_bytes(b"original\r\n")
    os.chmod(path, 0o604)
    _, snapshot = fileio.read_snapshot(str(path))
    if change == "content":
        path.write_bytes(b"changed by someone else\n")
    elif change == "same-size":
        path.write_bytes(b"ORIGINAL\r\n")
    elif change == "touch":
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    else:
        path.unlink()
    current = path.read_bytes() if path.exists() else None
    with pytest.raises((fileio.ChangedOnDisk, FileNotFoundError)):
        fileio.atomic_write(snapshot, b"new\r\n")
    assert (path.read_bytes() if path.exists() else None) == current
    assert not list(tmp_path.glob(".promptls-*.tmp")), "a temporary file was left behind"


def test_atomic_write_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "f.md"
    path.write_bytes(b"a\r\nb\r\n")
    os.chmod(path, 0o751)
    _, snapshot = fileio.read_snapshot(str(path))
    fileio.atomic_write(snapshot, b"a\r\n")
    assert path.read_bytes() == b"a\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert not list(tmp_path.glob(".promptls-*.tmp"))


def test_atomic_write_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target.md"
    target.write_bytes(b"a\r\nb\r\n")
    os.chmod(target, 0o640)
    link = tmp_path / "link.md"
    os.symlink("target.md", link)
    _, snapshot = fileio.read_snapshot(str(link))
    fileio.atomic_write(snapshot, b"a\r\n")
    assert link.is_symlink() and os.readlink(link) == "target.md"
    assert target.read_bytes() == b"a\r\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".promptls-*.tmp"))


def test_compress_write_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    target = root / ".claude" / "modules" / "crlf.md"
    link = root / ".claude" / "modules" / "alias.md"
    os.symlink("crlf.md", link)
    before = target.read_bytes()
    code, out, err = _cli("compress", str(root), "--write")
    assert code == 2, err
    assert link.is_symlink(), "the symlink became a regular file"
    assert os.path.samefile(link, target)
    after = target.read_bytes()
    assert after != before, "the target was not compressed"
    verify_rewrite(before.decode(), after.decode(), "module", "whitespace", False)
    assert line_break_kinds(after.decode()) <= line_break_kinds(before.decode())
    assert stat.S_IMODE(target.stat().st_mode) == MODES[".claude/modules/crlf.md"]
    assert out.count("crlf.md") + out.count("alias.md") == 1, "compressed twice"


def test_compress_write_never_writes_through_a_link_out_of_the_workspace(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    outside = tmp_path / "outside.md"
    outside.write_bytes(EXTRA[".claude/modules/crlf.md"])
    link = root / ".claude" / "modules" / "out.md"
    os.symlink(outside, link)
    _cli("compress", str(root), "--write")
    assert link.is_symlink()
    assert outside.read_bytes() == EXTRA[".claude/modules/crlf.md"]


# ---------------------------------------------------------------------------------------------
# Code actions in the editor
# ---------------------------------------------------------------------------------------------


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def lsp(
    lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LanguageClient]:
    record(lsp_client)
    root = _workspace(tmp_path_factory.mktemp("actions")).resolve()
    lsp_client.__dict__["root"] = root
    await start(lsp_client, "visual-studio-code", [root])
    yield lsp_client
    await lsp_client.shutdown_session()


def _apply(edit: types.WorkspaceEdit, uri: str, text: str, version: int) -> str:
    """A workspace edit applied to the client's text (edits of one document refer to the text
    before any of them, and never overlap)."""
    edits: list[types.TextEdit] = []
    for change in edit.document_changes or []:
        assert isinstance(change, types.TextDocumentEdit)
        assert change.text_document.uri == uri
        assert change.text_document.version == version, "an edit for another version"
        edits.extend(e for e in change.edits if isinstance(e, types.TextEdit))
    for target, more in (edit.changes or {}).items():
        assert target == uri
        edits.extend(more)
    for e in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        text = apply_lsp(text, e.range, e.new_text)
    return text


async def _actions(
    client: LanguageClient, uri: str, diags: list[types.Diagnostic], only: list[str] | None
) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0),
                end=types.Position(line=10**6, character=0),
            ),
            context=types.CodeActionContext(diagnostics=diags, only=only),
        )
    )
    out = []
    for offered in result or []:
        assert isinstance(offered, types.CodeAction)
        resolved = offered
        if offered.edit is None:
            resolved = await client.code_action_resolve_async(offered)
        out.append(resolved)
    return out


async def _pull(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The diagnostics of the document's current version (pulled: no waiting for a push)."""
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    return list(report.items)


def _fixed(text: str, diags: list[types.Diagnostic], *, lexical_only: bool = False) -> str:
    """`text` with the fixes of its XML problems applied (of the lexical ones only: the escapes
    that fix-all applies)."""
    warning = types.DiagnosticSeverity(int(Severity.WARNING))
    for d in sorted(
        diags, key=lambda d: (d.range.start.line, d.range.start.character), reverse=True
    ):
        data: Any = d.data
        if lexical_only and d.severity != warning:
            continue
        if d.code == "xml-syntax" and isinstance(data, dict) and data.get("fix") is not None:
            text = apply_lsp(text, d.range, data["fix"])
    return text


async def test_every_code_action_yields_the_verified_result(lsp: LanguageClient) -> None:
    root: Path = lsp.__dict__["root"]
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".md", ".xml") and b"<" in p.read_bytes()
    ]
    version = 0
    checked = {"region": 0, "file": 0, "escape": 0, "all": 0}
    for path in files:
        rel = path.relative_to(root).as_posix()
        kind = kind_of(rel, KINDS)
        text = path.read_bytes().decode("utf-8", errors="replace")
        if "\ufffd" in text:
            continue
        uri = path.as_uri()
        version += 1
        lsp.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="markdown", version=version, text=text
                )
            )
        )
        opened = version
        diags = await _pull(lsp, uri)
        actions = await _actions(lsp, uri, diags, None)
        actions += await _actions(lsp, uri, diags, ["source.fixAll.promptls"])
        for action in actions:
            assert action.edit is not None, action.title
            new = _apply(action.edit, uri, text, opened)
            data: Any = action.data
            what = data.get("what") if isinstance(data, dict) else "escape"
            if what in ("region", "file"):
                verify_rewrite(text, new, kind, "whitespace", False)
                assert line_break_kinds(new) <= line_break_kinds(text)
            elif what == "all":
                verify_rewrite(
                    _fixed(text, diags, lexical_only=True), new, kind, "whitespace", False
                )
            else:
                assert action.kind == types.CodeActionKind.QuickFix
                assert new == _fixed(text, action.diagnostics or [])
            checked[what if what in checked else "escape"] += 1
            if what == "region":
                # Analysed again: that block offers nothing more.
                again = compress_document(parse_document(new, kind), COUNTER)
                assert not [e for e in again if e.start == data["start"]], (rel, action.title)
            if what not in ("file", "all"):
                continue
            # Analysed again by the server: nothing is left to compress (or to escape).
            version += 1
            lsp.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=new)],
                )
            )
            after = await _pull(lsp, uri)
            if what == "file":
                assert not [d for d in after if d.code == "xml-compressible"], rel
                assert not compress_document(parse_document(new, kind), COUNTER), rel
            else:
                lexical = [
                    d
                    for d in after
                    if d.code == "xml-syntax"
                    and d.severity == types.DiagnosticSeverity(int(Severity.WARNING))
                    and isinstance(d.data, dict)
                    and d.data.get("fix") is not None
                ]
                assert not lexical, (rel, lexical)
            version += 1
            lsp.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
                )
            )
        lsp.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        await asyncio.sleep(0)
    assert checked["file"] >= 5 and checked["region"] >= 5, checked
    assert checked["escape"] >= 1 and checked["all"] >= 1, checked
