"""Process hygiene: the server ends within a second or two when its parent dies (it watches the
`processId` of `initialize`) and when its input closes, leaves no child process behind, and
writes nothing but framed JSON-RPC messages on stdout."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: With worker processes whatever the cores here: none of them may outlive the server.
SERVER = [sys.executable, "-m", "promptls", "serve", "--workers", "2"]

#: Starts the server with the given stdin and stdout, tells its pid, then waits to be killed.
SPAWN = textwrap.dedent(
    """
    import os, subprocess, sys, time
    stdin, stdout = int(sys.argv[1]), int(sys.argv[2])
    server = subprocess.Popen(
        [sys.executable, "-m", "promptls", "serve", "--workers", "2"], stdin=stdin, stdout=stdout,
        stderr=subprocess.DEVNULL, pass_fds=(), close_fds=True,
    )
    os.close(stdin)
    os.close(stdout)
    print(server.pid, flush=True)
    time.sleep(3600)
    """
)


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


class Reader:
    """Reads framed messages from a file descriptor, strictly: anything else fails."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.closed = False

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            return False
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    def message(self, timeout: float = 20) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if not self._fill(deadline):
                return None

    def _parse(self) -> dict[str, Any] | None:
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            assert self.buffer.startswith(b"Content-Length"[: len(self.buffer)]) or (
                self.buffer.startswith(b"Content-")
            ), f"not a JSON-RPC header: {self.buffer[:80]!r}"
            return None
        length = None
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            assert colon, f"not a header line: {line!r}"
            assert name.strip().lower() in (b"content-length", b"content-type"), line
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        assert length is not None, head
        if len(rest) < length:
            return None
        body, self.buffer = rest[:length], rest[length:]
        message = json.loads(body)
        assert message.get("jsonrpc") == "2.0", message
        return message  # type: ignore[no-any-return]

    def until_eof(self, timeout: float) -> bool:
        """Read (strictly) until the peer closes; False on timeout."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            while self._parse() is not None:
                pass
            if not self._fill(deadline) and not self.closed:
                return False
        while self._parse() is not None:
            pass
        assert self.buffer == b"", f"bytes after the last message: {self.buffer[:80]!r}"
        return True


class Peer:
    def __init__(self, write_fd: int, reader: Reader) -> None:
        self.write_fd = write_fd
        self.reader = reader
        self.next_id = 0
        self.seen: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        os.write(self.write_fd, frame(message))

    def request(self, method: str, params: Any, timeout: float = 30) -> dict[str, Any]:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.reader.message(deadline - time.monotonic())
            assert message is not None, f"no answer to {method}"
            self.seen.append(message)
            if message.get("id") == self.next_id and "method" not in message:
                return message
            if "method" in message and "id" in message:  # the server asks: answer
                self.send({"id": message["id"], "result": None})
        raise AssertionError(f"no answer to {method}")

    def initialize(self, root: Path, process_id: int | None) -> None:
        reply = self.request(
            "initialize",
            {"processId": process_id, "rootUri": root.as_uri(), "capabilities": {}},
        )
        assert "result" in reply, reply
        self.send({"method": "initialized", "params": {}})


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return out


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status or "\nState:\tX" in status


def _assert_gone_soon(children: list[int]) -> None:
    """The server's children (its worker processes) exist and end within 5 s of it: each
    reads end-of-file on its job pipe once the server is gone, however it ended."""
    assert children, "the server runs worker processes"
    deadline = time.monotonic() + 5
    while not all(_gone(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(child) for child in children), "a child process outlived the server"


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / ".claude" / "commands").mkdir(parents=True)
    (root / "CLAUDE.md").write_text("# Memory\n\n@.claude/commands/a.md\n@missing.md\n")
    (root / ".claude" / "commands" / "a.md").write_text("---\ntools: x\n---\n<a><b></a>\n")
    return root


@contextlib.contextmanager
def _session(root: Path, process_id: int | None) -> Iterator[tuple[subprocess.Popen[bytes], Peer]]:
    """A server on pipes, initialized for `root`; killed when the block ends."""
    proc = subprocess.Popen(
        SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        peer = Peer(proc.stdin.fileno(), Reader(proc.stdout.fileno()))
        peer.initialize(root, process_id)
        yield proc, peer
    finally:
        proc.kill()
        proc.wait()


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@needs_proc
def test_exits_soon_after_its_parent_dies(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    to_server_r, to_server_w = os.pipe()
    from_server_r, from_server_w = os.pipe()
    parent = subprocess.Popen(
        [sys.executable, "-c", SPAWN, str(to_server_r), str(from_server_w)],
        pass_fds=(to_server_r, from_server_w),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        os.close(to_server_r)
        os.close(from_server_w)
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        peer = Peer(to_server_w, Reader(from_server_r))
        peer.initialize(root, parent.pid)
        stats = peer.request("promptls/stats", None)
        assert "result" in stats
        children = _children(server_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        killed = time.monotonic()
        # Our end of its input stays open: only the parent watch can end it.
        assert peer.reader.until_eof(timeout=5), "the server outlived its parent by 5 s"
        waited = time.monotonic() - killed
        deadline = time.monotonic() + 5
        while not _gone(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(server_pid)
        assert waited < 2.5, f"the server took {waited:.2f} s to notice its parent died"
        _assert_gone_soon(children)
    finally:
        parent.kill()
        os.close(to_server_w)
        os.close(from_server_r)


@needs_proc
def test_exits_soon_after_its_input_closes(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    with _session(root, os.getpid()) as (proc, peer):
        assert proc.stdin is not None
        peer.send(
            {
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": (root / "CLAUDE.md").as_uri(),
                        "languageId": "markdown",
                        "version": 1,
                        "text": (root / "CLAUDE.md").read_text(),
                    }
                },
            }
        )
        assert "result" in peer.request("promptls/stats", None)
        children = _children(proc.pid)
        started = time.monotonic()
        proc.stdin.close()
        assert peer.reader.until_eof(timeout=5)
        code = proc.wait(timeout=5)
        waited = time.monotonic() - started
        assert waited < 2.5, f"{waited:.2f} s to exit after its input closed"
        assert code == 0, proc.stderr.read() if proc.stderr else code
        _assert_gone_soon(children)


def test_stdout_is_only_framed_json_rpc(tmp_path: Path) -> None:
    """A busy session, with settings problems, bad requests, hostile text and an exception-prone
    document: every byte on stdout belongs to a well-formed message."""
    root = _workspace(tmp_path)
    (root / ".promptls.toml").write_text('loadBudget = "lots"\n[severity]\nnope = "loud"\n')
    with _session(root, None) as (proc, peer):
        uri = (root / ".claude" / "commands" / "a.md").as_uri()
        text = "---\n: : :\n---\n<a>\x00&nbsp;<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;\n"
        peer.send(
            {
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": uri,
                        "languageId": "markdown",
                        "version": 1,
                        "text": text,
                    }
                },
            }
        )
        peer.send(
            {
                "method": "textDocument/didChange",
                "params": {
                    "textDocument": {"uri": uri, "version": 2},
                    "contentChanges": [
                        {
                            "range": {
                                "start": {"line": 99, "character": 99},
                                "end": {"line": 0, "character": 0},
                            },
                            "text": "\u2028😀\r",
                        }
                    ],
                },
            }
        )
        for method, params in [
            (
                "textDocument/hover",
                {"textDocument": {"uri": uri}, "position": {"line": 3, "character": 1}},
            ),
            ("textDocument/hover", {"textDocument": {"uri": 42}}),
            ("textDocument/documentSymbol", {"textDocument": {"uri": uri}}),
            ("textDocument/diagnostic", {"textDocument": {"uri": uri}}),
            ("textDocument/codeLens", {"textDocument": {"uri": "file:///nowhere/x.md"}}),
            ("promptls/loadTree", {"uri": uri}),
            ("promptls/countTokens", {"text": "x" * 1000}),
            ("promptls/noSuchMethod", {}),
            ("workspace/symbol", {"query": ""}),
        ]:
            reply = peer.request(method, params)
            assert "result" in reply or "error" in reply
        peer.send({"method": "$/cancelRequest", "params": {"id": 12345}})
        peer.send({"method": "promptls/unknownNotification", "params": {}})
        assert peer.request("shutdown", None).get("result", "missing") is None
        peer.send({"method": "exit"})
        assert peer.reader.until_eof(timeout=10)
        assert proc.wait(timeout=10) == 0
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        # Logs go to stderr; the one error is pygls reporting the malformed hover.
        records = [line for line in stderr.splitlines() if line.startswith("promptls: ")]
        errors = [r for r in records if "ERROR" in r or "CRITICAL" in r]
        assert errors == ["promptls: ERROR Unable to deserialize message"], stderr


def _blocks(word: str, n: int) -> str:
    return "# Memory\n\n" + "".join(
        f"```xml\n<r{i}>\n  <a>  {word} word {i}  </a>\n"
        f"  <b>  more   text {i} </b>\n</r{i}>\n```\n\n"
        for i in range(n)
    )


def test_exits_at_once_while_a_worker_is_busy(tmp_path: Path) -> None:
    """After a change the slow findings (compressing every block) run on a worker thread; the
    interpreter would wait for it at exit. `exit` ends the process anyway."""
    root = tmp_path / "ws"
    root.mkdir()
    memory = root / "CLAUDE.md"
    memory.write_text(_blocks("alpha", 3000))
    uri = memory.as_uri()
    with _session(root, os.getpid()) as (proc, peer):
        doc = {"uri": uri, "languageId": "markdown", "version": 1, "text": memory.read_text()}
        peer.send({"method": "textDocument/didOpen", "params": {"textDocument": doc}})
        assert "result" in peer.request("promptls/stats", None, timeout=120)
        changed = {"uri": uri, "version": 2}
        text = _blocks("beta", 3000)
        peer.send(
            {
                "method": "textDocument/didChange",
                "params": {"textDocument": changed, "contentChanges": [{"text": text}]},
            }
        )
        time.sleep(1.0)  # the debounce, the fast findings, and the worker has started
        assert "result" in peer.request("shutdown", None, timeout=30)
        started = time.monotonic()
        peer.send({"method": "exit"})
        assert peer.reader.until_eof(timeout=30)  # what it still writes, then the end
        code = proc.wait(timeout=30)
        waited = time.monotonic() - started
        assert waited < 2.5, f"{waited:.2f} s to exit while a worker was busy"
        assert code == 0
