"""The server process at the protocol level: bad requests get error responses, it survives them,
and it exits cleanly on `exit` or when its input closes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVER = [sys.executable, "-m", "promptls"]


class Raw:
    """A minimal LSP peer over the server's stdio."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.root = root
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("server closed its output")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def request(self, method: str, params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.read()
            if message.get("id") == self.next_id and "method" not in message:
                return message
            if "method" in message and "id" in message:  # a request from the server: answer it
                self.send({"id": message["id"], "result": None})

    def initialize(self) -> None:
        self.request(
            "initialize",
            {"processId": None, "rootUri": self.root.as_uri(), "capabilities": {}},
        )
        self.send({"method": "initialized", "params": {}})


def test_bad_request_gets_an_error_and_the_server_survives(tmp_path: Path) -> None:
    (tmp_path / "CLAUDE.md").write_text("# hi\n")
    peer = Raw(tmp_path)
    try:
        peer.initialize()
        bad = peer.request("textDocument/hover", {"textDocument": {"uri": 42}})
        assert "error" in bad
        unknown = peer.request("promptls/noSuchMethod", {})
        assert "error" in unknown
        stats = peer.request("promptls/stats", None)
        assert "result" in stats and stats["result"]["documentsAnalysed"] >= 0
        assert peer.request("shutdown", None).get("result", "missing") is None
        peer.send({"method": "exit"})
        assert peer.proc.wait(timeout=10) == 0
    finally:
        peer.proc.kill()


def test_exits_when_its_input_closes(tmp_path: Path) -> None:
    peer = Raw(tmp_path)
    try:
        peer.initialize()
        assert peer.proc.stdin is not None
        started = time.monotonic()
        peer.proc.stdin.close()
        peer.proc.wait(timeout=10)
        assert time.monotonic() - started < 10
    finally:
        peer.proc.kill()


def test_logs_never_reach_stdout(tmp_path: Path) -> None:
    """Everything on stdout is a framed JSON-RPC message."""
    peer = Raw(tmp_path)
    try:
        peer.initialize()
        peer.request("shutdown", None)
        peer.send({"method": "exit"})
        peer.proc.wait(timeout=10)
        assert peer.proc.stdout is not None
        rest = peer.proc.stdout.read()
        assert rest == b"" or rest.startswith(b"Content-Length")
    finally:
        peer.proc.kill()
