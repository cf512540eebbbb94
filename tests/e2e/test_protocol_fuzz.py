"""Protocol-level fuzz: seeded random sequences of opens, incremental edits (ranges past the end
of a line or of the document, reversed ranges, huge insertions, every line break there is),
full changes, closes, requests (hover, symbols, folding, links, hints, lenses, code actions,
pull diagnostics, load trees) and `$/cancelRequest`, against the real server over stdio.

Checked all along: the server never dies and never reports an error out of band, a request
gets a result (or `RequestCancelled` when it was cancelled), a diagnostic push or status never
carries a version the client has not reached (nor goes back in time), a pulled report's
`resultId` names the current version, and the server's text of every open document is the
client's (its `promptls/countTokens` of the whole document equals tiktoken's count of the
client's text, with the same number of characters).

The client's text follows LSP: lines end at `\\n`, `\\r\\n` or `\\r` only; a character past the
end of a line means the end of the line; a line past the end, the end of the document; a
reversed range is read with its ends swapped (as `vscode-languageserver-textdocument` does).

pygls, under the server, would get these wrong: it splits lines with `str.splitlines()` (also
at `\\x0b \\x0c \\x1c-\\x1e \\x85 \\u2028 \\u2029`), clamps a character past the end of a line
wrongly (exactly one past the end of a line lands after its line break, between the CR and LF of
a CRLF; past the end of the last line lands one character short), and drops the text of a
reversed range. The server applies changes itself (`promptls.lsp.protocol`); the minimal
reproductions at the end pin each case. `test_protocol_fuzz` sends every input,
`test_protocol_fuzz_lsp_valid` only what a well-behaved client sends (no reversed ranges, no
line breaks `str.splitlines()` would see).

`make fuzz` runs more seeds and longer sequences (`HYPOTHESIS_PROFILE=fuzz`).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from promptls.analysis.outline import MAX_OUTLINE_DEPTH
from promptls.analysis.tokens import TokenCounter
from tests.e2e.conftest import SERVER, pushes, record, statuses
from tests.e2e.conftest import start as start_session
from tests.fuzzing import (
    EXAMPLES,
    NASTY,
    apply_lsp,
    line_bounds,
    scaled,
    to_position,
    utf16_units,
)

#: One server for the module (the tests use distinct documents).
pytestmark = pytest.mark.asyncio(loop_scope="module")

COUNTER = TokenCounter()
#: Line breaks for `str.splitlines()` that are no line breaks for LSP.
SPLITLINES_ONLY = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


# ---------------------------------------------------------------------------------------------
# The fuzzer
# ---------------------------------------------------------------------------------------------


@dataclass
class Doc:
    uri: str
    text: str
    version: int


@dataclass
class Session:
    client: LanguageClient
    root: Path
    rng: random.Random
    lsp_valid: bool
    docs: dict[str, Doc] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    """The highest version the client ever sent for each URI (versions only go up)."""
    seen_push: dict[str, int] = field(default_factory=dict)
    checked_pushes: int = 0
    checked_statuses: int = 0
    log: list[str] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Notifications from before this session (another test, another seed) are not its own.
        self.checked_pushes = len(pushes(self.client))
        self.checked_statuses = len(statuses(self.client))

    # -- inputs ---------------------------------------------------------------------------------
    def piece(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            choice = rng.choice(NASTY)
        elif roll < 0.7:
            choice = rng.choice(("\n", "\r\n", "\r", " ", "a", "word ", "😀", "é", "中"))
        elif roll < 0.95:
            choice = "".join(rng.choice("abc <>/&`-\n\t😀") for _ in range(rng.randint(1, 30)))
        else:
            choice = rng.choice(SPLITLINES_ONLY)
        if self.lsp_valid:
            for ch in SPLITLINES_ONLY:
                choice = choice.replace(ch, " ")
        return choice

    def insertion(self) -> str:
        if self.rng.random() < 0.03:
            return "".join(self.piece() for _ in range(50)) * self.rng.randint(100, 600)
        return "".join(self.piece() for _ in range(self.rng.randint(0, 6)))

    def initial_text(self) -> str:
        examples = sorted(p for p in EXAMPLES.rglob("*.md"))
        text = self.rng.choice(examples).read_text(encoding="utf-8")
        if self.rng.random() < 0.5:
            text = text.replace("\n", self.rng.choice(("\r\n", "\r", "\n")))
        if not self.lsp_valid and self.rng.random() < 0.3:
            text = text.replace(" the ", f" the{self.rng.choice(SPLITLINES_ONLY)}")
        return text

    def boundary(self, text: str) -> int:
        """A random code point offset that is not inside a line break."""
        for _ in range(20):
            at = self.rng.randint(0, len(text))
            if not (0 < at < len(text) and text[at - 1] == "\r" and text[at] == "\n"):
                return at
        return 0

    def edit_range(self, text: str) -> types.Range:
        """A range over `text`: mostly valid, sometimes past the end of a line or of the
        document, sometimes (when not `lsp_valid`) reversed or past the end of the last line."""
        rng = self.rng
        a, b = sorted((self.boundary(text), self.boundary(text)))
        if rng.random() < 0.6:
            b = min(len(text), a + rng.randint(0, 8))
            if 0 < b < len(text) and text[b - 1] == "\r" and text[b] == "\n":
                b -= 1
        (la, ca), (lb, cb) = to_position(text, a), to_position(text, b)
        bounds = line_bounds(text)
        last = len(bounds) - 1
        roll = rng.random()
        if roll < 0.08 and lb < last:  # a character past the end of its line
            cb = utf16_units(text[bounds[lb][0] : bounds[lb][1]]) + rng.randint(1, 50)
        elif roll < 0.14:  # a line past the end of the document
            lb, cb = last + rng.randint(1, 5), rng.randint(0, 5)
        elif roll < 0.18 and not self.lsp_valid:  # reversed
            (la, ca), (lb, cb) = (lb, cb), (la, ca)
        elif roll < 0.22 and not self.lsp_valid:  # past the end of the last line
            la = lb = last
            ca = cb = utf16_units(text[bounds[last][0] :]) + rng.randint(1, 9)
        return types.Range(
            start=types.Position(line=la, character=ca), end=types.Position(line=lb, character=cb)
        )

    # -- operations -----------------------------------------------------------------------------
    def next_version(self, uri: str) -> int:
        self.versions[uri] = self.versions.get(uri, 0) + 1
        return self.versions[uri]

    def open(self) -> None:
        rng = self.rng
        folder = rng.choice(
            (".claude/commands", ".claude/modules/fuzz", ".claude/agents", "docs", "")
        )
        name = rng.choice(("a.md", "b.md", "CLAUDE.md", "c.md", "PROJECT_CONFIG.xml"))
        uri = (self.root / folder / name).as_uri()
        if uri in self.docs:
            return
        doc = Doc(uri, self.initial_text(), self.next_version(uri))
        self.docs[uri] = doc
        self.log.append(f"open {uri} v{doc.version} ({len(doc.text)} chars)")
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="markdown", version=doc.version, text=doc.text
                )
            )
        )

    def change(self) -> None:
        if not self.docs:
            return self.open()
        doc = self.docs[self.rng.choice(sorted(self.docs))]
        changes: list[types.TextDocumentContentChangeEvent] = []
        text = doc.text
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            if self.rng.random() < 0.04:
                new = self.initial_text()
                changes.append(types.TextDocumentContentChangeWholeDocument(text=new))
                text = new
                continue
            rng_ = self.edit_range(text)
            new = self.insertion()
            changes.append(types.TextDocumentContentChangePartial(range=rng_, text=new))
            text = apply_lsp(text, rng_, new)
        doc.text = text
        doc.version = self.next_version(doc.uri)
        self.log.append(
            f"change {doc.uri} v{doc.version}: "
            + "; ".join(
                f"{c.range.start.line}:{c.range.start.character}-"
                f"{c.range.end.line}:{c.range.end.character} {c.text[:40]!r}"
                if isinstance(c, types.TextDocumentContentChangePartial)
                else "whole document"
                for c in changes
            )
        )
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=doc.uri, version=doc.version
                ),
                content_changes=changes,
            )
        )

    def close(self) -> None:
        if not self.docs:
            return
        uri = self.rng.choice(sorted(self.docs))
        del self.docs[uri]
        self.log.append(f"close {uri}")
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    async def request(self) -> None:
        if not self.docs:
            return self.open()
        doc = self.docs[self.rng.choice(sorted(self.docs))]
        ident = types.TextDocumentIdentifier(uri=doc.uri)
        at = types.Position(*to_position(doc.text, self.boundary(doc.text)))
        whole = types.Range(
            start=types.Position(line=0, character=0),
            end=types.Position(line=10**6, character=0),
        )
        method, params = self.rng.choice(
            (
                ("textDocument/hover", types.HoverParams(text_document=ident, position=at)),
                ("textDocument/documentSymbol", types.DocumentSymbolParams(text_document=ident)),
                ("textDocument/foldingRange", types.FoldingRangeParams(text_document=ident)),
                ("textDocument/documentLink", types.DocumentLinkParams(text_document=ident)),
                (
                    "textDocument/definition",
                    types.DefinitionParams(text_document=ident, position=at),
                ),
                (
                    "textDocument/inlayHint",
                    types.InlayHintParams(text_document=ident, range=whole),
                ),
                ("textDocument/codeLens", types.CodeLensParams(text_document=ident)),
                (
                    "textDocument/codeAction",
                    types.CodeActionParams(
                        text_document=ident,
                        range=types.Range(start=at, end=at),
                        context=types.CodeActionContext(diagnostics=[]),
                    ),
                ),
                ("textDocument/diagnostic", types.DocumentDiagnosticParams(text_document=ident)),
                ("promptls/loadTree", {"uri": doc.uri}),
            )
        )
        cancel = self.rng.random() < 0.25
        msg_id = f"fuzz-{time.monotonic_ns()}"
        self.log.append(f"request {method} {doc.uri}{' (cancelled)' if cancel else ''}")
        future = self.client.protocol.send_request(method, params, msg_id=msg_id)
        if cancel:
            self.client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout=30)
        except TimeoutError:
            raise AssertionError(f"no answer to {method} in 30 s\n" + self.tail()) from None
        except Exception as exc:
            if cancel and "cancel" in str(exc).lower():
                return
            raise AssertionError(f"{method} failed: {exc}\n" + self.tail()) from exc
        if method == "textDocument/diagnostic" and doc.uri in self.docs:
            report = result
            result_id = getattr(report, "result_id", None)
            current = self.docs[doc.uri].version
            assert result_id == f"{doc.uri}@{current}", (result_id, current, self.tail())

    # -- checks ---------------------------------------------------------------------------------
    def tail(self) -> str:
        return "\n".join(self.log[-25:])

    def check_notifications(self) -> None:
        """No out-of-band error; no push or status ahead of the client or back in time."""
        errors = [m for m in self.client.messages if m.type == types.MessageType.Error]
        assert not errors, f"{errors[0].message}\n{self.tail()}"
        for push in pushes(self.client)[self.checked_pushes :]:
            if push.version is None:
                continue
            assert push.version <= self.versions.get(push.uri, 0), (push.uri, push.version)
            assert push.version >= self.seen_push.get(push.uri, 0), "a push went back in time"
            self.seen_push[push.uri] = push.version
        self.checked_pushes = len(pushes(self.client))
        for status in statuses(self.client)[self.checked_statuses :]:
            version = status.get("version")
            if version is not None:
                assert version <= self.versions.get(status["uri"], 0), status
        self.checked_statuses = len(statuses(self.client))

    async def check_texts(self) -> None:
        """The server's text of every open document is the client's: the same count and
        length for the whole document and for a few of its lines."""
        for doc in list(self.docs.values()):
            count = len(line_bounds(doc.text))
            lines = sorted(self.rng.sample(range(count), k=min(3, count)))
            problem = await compare_text(self.client, doc.uri, doc.text, lines)
            if problem is not None:
                self.divergences.append(f"{doc.uri} v{doc.version}: {problem}\n{self.tail()}")
                raise AssertionError(self.divergences[-1])


async def count_range(
    client: LanguageClient, uri: str, a: tuple[int, int], b: tuple[int, int]
) -> tuple[int | None, int]:
    """The server's (characters, tokens) of a range of a document."""
    result = await asyncio.wait_for(
        client.protocol.send_request_async(
            "promptls/countTokens",
            {
                "uri": uri,
                "range": {
                    "start": {"line": a[0], "character": a[1]},
                    "end": {"line": b[0], "character": b[1]},
                },
            },
        ),
        timeout=60,
    )
    return getattr(result, "characters", None), result.tokens


async def compare_text(client: LanguageClient, uri: str, text: str, lines: list[int]) -> str | None:
    """None when the server's text of `uri` is `text` (as far as counts of the whole
    document and of `lines` tell), else what differs."""
    got = await count_range(client, uri, (0, 0), (10**9, 0))
    want = (len(text), COUNTER.count_exact(text))
    if got != want:
        return f"the server has {got} (characters, tokens), the client {want}"
    bounds = line_bounds(text)
    for line in lines:
        start, end = bounds[line]
        got = await count_range(client, uri, (line, 0), (line, 10**6))
        want = (end - start, COUNTER.count_exact(text[start:end]))
        if got != want:
            return f"line {line}: the server has {got}, the client {want} ({text[start:end]!r})"
    return None


async def run_session(session: Session, steps: int) -> None:
    rng = session.rng
    for step in range(steps):
        roll = rng.random()
        if roll < 0.12:
            session.open()
        elif roll < 0.6:
            session.change()
        elif roll < 0.66:
            session.close()
        else:
            await session.request()
        if rng.random() < 0.15:
            await asyncio.sleep(rng.choice((0.0, 0.01, 0.06, 0.2)))
        session.check_notifications()
        if step % 10 == 9:
            await session.check_texts()
    await asyncio.sleep(0.3)
    await session.check_texts()
    session.check_notifications()
    stats = await session.client.protocol.send_request_async("promptls/stats", None)
    assert stats is not None


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), scope="module")
async def lsp(
    lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LanguageClient]:
    record(lsp_client)
    root = (tmp_path_factory.mktemp("protocol") / "examples").resolve()
    shutil.copytree(EXAMPLES, root)
    lsp_client.__dict__["root"] = root
    await start_session(lsp_client, "visual-studio-code", [root])
    yield lsp_client
    await lsp_client.shutdown_session()


STEPS = scaled(60, 1500)
SEEDS = list(range(scaled(2, 12)))


async def test_protocol_fuzz_lsp_valid(lsp: LanguageClient) -> None:
    """Every seed in one server, one after the other (each closes what it opened)."""
    for text, change, expected in ORDINARY_EDITS:
        assert apply_lsp(text, change.range, change.text) == expected
        problem = await _server_text_after(lsp, lsp.__dict__["root"], text, change, expected)
        assert problem is None, (text, expected, problem)
    versions: dict[str, int] = {}
    for seed in SEEDS:
        session = Session(lsp, lsp.__dict__["root"], random.Random(seed), lsp_valid=True)
        session.versions = versions  # across sessions, a URI's versions only go up
        await run_session(session, STEPS)
        for uri in list(session.docs):
            session.docs.pop(uri)
            lsp.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=uri)
                )
            )


async def test_protocol_fuzz(lsp: LanguageClient) -> None:
    versions: dict[str, int] = {}
    for seed in [1000 + s for s in SEEDS]:
        session = Session(lsp, lsp.__dict__["root"], random.Random(seed), lsp_valid=False)
        session.versions = versions
        await run_session(session, STEPS)


# ---------------------------------------------------------------------------------------------
# Minimal reproductions of the divergences
# ---------------------------------------------------------------------------------------------


async def _server_text_after(
    client: LanguageClient,
    root: Path,
    text: str,
    change: types.TextDocumentContentChangePartial,
    expected: str,
) -> str | None:
    uri = (root / "docs" / f"repro-{time.monotonic_ns()}.md").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="markdown", version=1, text=text
            )
        )
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[change],
        )
    )
    return await compare_text(client, uri, expected, list(range(len(line_bounds(expected)))))


def _edit(
    line_a: int, char_a: int, line_b: int, char_b: int, text: str
) -> types.TextDocumentContentChangePartial:
    return types.TextDocumentContentChangePartial(
        range=types.Range(
            start=types.Position(line=line_a, character=char_a),
            end=types.Position(line=line_b, character=char_b),
        ),
        text=text,
    )


REPRODUCTIONS = {
    # "a\u2028bbb\nc" has two LSP lines; pygls sees three, so its line 1 is "bbb", not "c".
    "u2028-is-no-line-break": ("a\u2028bbb\nc", _edit(1, 0, 1, 3, "X"), "a\u2028bbb\nX"),
    "form-feed-is-no-line-break": ("a\x0cbbb\nc", _edit(1, 0, 1, 3, "X"), "a\x0cbbb\nX"),
    "nel-is-no-line-break": ("a\x85bbb\nc", _edit(1, 0, 1, 3, "X"), "a\x85bbb\nX"),
    "vertical-tab-is-no-line-break": ("a\x0bbbb\nc", _edit(1, 0, 1, 3, "X"), "a\x0bbbb\nX"),
    # A character past the end of the last line means its end: "abc" + "X".
    "past-the-end-of-the-last-line": ("abc", _edit(0, 9, 0, 9, "X"), "abcX"),
    # One past the end of a line means its end too, not the start of the next line.
    "one-past-the-end-of-a-line": ("abc\ndef", _edit(0, 4, 0, 4, "X"), "abcX\ndef"),
    "one-past-the-end-of-a-crlf-line": ("abc\r\ndef", _edit(0, 1, 0, 4, ""), "a\r\ndef"),
    # A reversed range is read with its ends swapped.
    "reversed-range-on-one-line": ("abcdef", _edit(0, 4, 0, 1, "X"), "aXef"),
    "reversed-range-over-lines": ("ab\ncd\nef", _edit(2, 1, 0, 1, "X"), "aXf"),
}


async def test_minimal_reproductions(lsp: LanguageClient) -> None:
    """Each case: a document, one change, and the text LSP says results."""
    failures = []
    for name, (text, change, expected) in REPRODUCTIONS.items():
        assert apply_lsp(text, change.range, change.text) == expected  # the client's reading
        problem = await _server_text_after(lsp, lsp.__dict__["root"], text, change, expected)
        if problem is not None:
            failures.append(f"{name}: {text!r} + {change.range} {change.text!r}: {problem}")
    assert not failures, "\n".join(failures)


#: The same kind of edits with ordinary line breaks: no divergence.
ORDINARY_EDITS: list[tuple[str, Any, str]] = [
    ("a\nb\r\nc\rd", _edit(2, 0, 3, 1, "X"), "a\nb\r\nX"),
    ("abc\n", _edit(1, 0, 1, 0, "X"), "abc\nX"),
    ("abc\ndef", _edit(0, 9, 1, 1, "X"), "abcXef"),
    ("ab", _edit(5, 0, 5, 0, "X"), "abX"),
    ("😀x", _edit(0, 2, 0, 3, "y"), "😀y"),
]


@pytest.mark.parametrize("depth", [300, 2000])
async def test_requests_on_deeply_nested_xml(lsp: LanguageClient, depth: int) -> None:
    """Unclosed tags nest: n of them make a tree n deep. Every request still answers; the
    symbols are at most `MAX_OUTLINE_DEPTH` levels deep (deeper ones listed at that level), and
    every element still has its symbol and its folding range."""
    root: Path = lsp.__dict__["root"]
    uri = (root / "docs" / f"deep-{depth}.md").as_uri()
    text = "# Deep\n\n" + "<item>\n" * depth
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="markdown", version=1, text=text
            )
        )
    )
    ident = types.TextDocumentIdentifier(uri=uri)
    at = types.Position(line=depth // 2, character=2)
    failures = []
    results: dict[str, Any] = {}
    for method, params in (
        ("textDocument/documentSymbol", types.DocumentSymbolParams(text_document=ident)),
        ("textDocument/foldingRange", types.FoldingRangeParams(text_document=ident)),
        ("textDocument/hover", types.HoverParams(text_document=ident, position=at)),
        ("textDocument/diagnostic", types.DocumentDiagnosticParams(text_document=ident)),
        ("textDocument/codeLens", types.CodeLensParams(text_document=ident)),
        ("promptls/loadTree", {"uri": uri}),
    ):
        try:
            results[method] = await asyncio.wait_for(
                lsp.protocol.send_request_async(method, params), timeout=3
            )
        except TimeoutError:
            failures.append(f"{method}: no answer in 3 s")
        except Exception as exc:
            failures.append(f"{method}: {type(exc).__name__}: {str(exc)[:80]}")
    assert not failures, failures
    levels, count, layer = 0, 0, list(results["textDocument/documentSymbol"])
    while layer:
        levels += 1
        count += len(layer)
        layer = [child for symbol in layer for child in symbol.children or ()]
    assert levels == min(MAX_OUTLINE_DEPTH, depth + 1)
    assert count == depth + 1  # the heading and every element
    assert len(results["textDocument/foldingRange"]) >= depth
