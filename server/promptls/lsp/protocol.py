"""The JSON-RPC protocol, with two fixes to pygls:

* a request whose parameters do not match the method's types is answered with an
  `InvalidParams` error (pygls would log it and never answer, leaving the client waiting);
* `textDocument/didChange` edits are applied as LSP says (`analysis.text.apply_changes`):
  pygls splits lines with `str.splitlines()` (at `\\x0b \\x0c \\x1c-\\x1e \\x85 \\u2028
  \\u2029` too), clamps a character past the end of a line wrongly and drops reversed ranges,
  so its copy of a document would drift from the editor's. The line index of each open
  document's text is kept (`line_indexes`) and updated for each change, so a keystroke costs
  the lines it touches, not the file; the diagnostics of that version are converted with it.

A keystroke's `didChange` is handled straight away, without pygls's machinery for a
notification, and the futures pygls makes for the other notifications are not kept forever.

It also sends notifications whose parameters are JSON text already (`notify_json`): the pushed
diagnostics of a document, most of them the same from one keystroke to the next, are encoded
once each (see `diagnostics.publish`). A request handler may likewise return its result as JSON
text already (`Encoded`): the inlay hints of a document version, asked for again on every
scroll, are encoded once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import sys
from collections.abc import Generator
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import (
    FeatureNotificationError,
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
)
from pygls.feature_manager import is_thread_function
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from promptls.analysis.text import LineIndex, apply_changes_to
from promptls.lsp.convert import encoding_of, to_change

log = logging.getLogger("promptls")


def _plain_function(handler: Any) -> bool:
    """Whether pygls would call `handler` as it is (not a coroutine, generator or thread)."""
    return not (
        inspect.iscoroutinefunction(handler)
        or inspect.isgeneratorfunction(handler)
        or is_thread_function(handler)  # type: ignore[no-untyped-call]
    )


def _forget(futures: dict[Any, Any], key: Any, done: Any) -> None:
    # A cancelled one is left: pygls cancels them at `shutdown` while it walks the dict.
    if not done.cancelled():
        futures.pop(key, None)


class Encoded:
    """A request's result as JSON text already (ASCII, as `PromptProtocol.to_json` writes it),
    sent as it is instead of being built again with cattrs and encoded."""

    __slots__ = ("json",)

    def __init__(self, json_text: str) -> None:
        self.json = json_text


class _Unanswerable:
    """A request that could not be read, still owed a response."""

    __slots__ = ("error", "msg_id")

    def __init__(self, msg_id: Any, error: JsonRpcException) -> None:
        self.msg_id = msg_id
        self.error = error


class PromptProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers malformed requests instead of dropping them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line_indexes: dict[str, LineIndex] = {}
        """uri -> the line index of the open document's current text (kept across changes)."""
        self._framed = True
        self._sending: set[asyncio.Future[Any]] = set()
        self._change_handler: tuple[Any, bool] = (object(), False)

    def set_writer(self, writer: Any, include_headers: bool = True) -> None:
        """Where messages go, and whether each gets a header (not over a WebSocket)."""
        super().set_writer(writer, include_headers)
        self._framed = include_headers

    def to_json(self, value: Any) -> str:
        """`value` (an lsprotocol object) as JSON text, exactly as pygls would send it."""
        return json.dumps(self._converter.unstructure(value))

    def notify_json(self, method: str, params: str) -> None:
        """Send the notification `method` whose parameters are JSON text already (ASCII, as
        `to_json` writes it): pygls would build the whole message again with cattrs and encode
        it, which for fifty diagnostics costs a third of analysing the keystroke that made them
        (0.4 ms against 1.2 ms in the real framework's `CLAUDE.md`)."""
        body = f'{{"params":{params},"method":{json.dumps(method)},"jsonrpc":"2.0"}}'
        self._write_json(body, method)

    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        """pygls's, but a result that is JSON text already (`Encoded`) is sent as it is."""
        if error is None and isinstance(result, Encoded):
            self._result_types.pop(msg_id, None)
            body = f'{{"id":{json.dumps(msg_id)},"result":{result.json},"jsonrpc":"2.0"}}'
            self._write_json(body, f"the response to {msg_id!r}")
            return
        super()._send_response(msg_id, result, error)

    def _write_json(self, text: str, what: str) -> None:
        """Write one message, JSON text (ASCII) already, with its header."""
        writer = self.writer
        if writer is None:
            log.error("cannot send %s: no transport", what)
            return
        body = text.encode()
        if self._framed:
            head = f"Content-Length: {len(body)}\r\nContent-Type: {self.CONTENT_TYPE}; "
            body = f"{head}charset={self.CHARSET}\r\n\r\n".encode() + body
        try:
            written = writer.write(body)
            if inspect.isawaitable(written):  # (a WebSocket)
                sending = asyncio.ensure_future(written)
                self._sending.add(sending)
                sending.add_done_callback(self._sending.discard)
        except BrokenPipeError:
            raise  # the client is gone: as pygls does, let the server end
        except Exception:
            log.exception("could not send %s", what)

    def structure_message(self, data: dict[str, Any]) -> Any:
        """Read a message; a malformed request becomes an error response to send."""
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                return _Unanswerable(data["id"], exc)
            raise
        except Exception as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                return _Unanswerable(data["id"], JsonRpcInvalidParams(str(exc)))
            raise

    def forget_lines(self, uri: str) -> None:
        """A document closed: drop its line index."""
        self.line_indexes.pop(unquote(uri), None)

    def handle_message(self, message: Any) -> Any:
        """Answer an unreadable request with its error; apply a `didChange` at once (see
        `_did_change_now`); hand anything else to pygls."""
        if isinstance(message, _Unanswerable):
            self._send_response(message.msg_id, None, message.error.to_response_error())
            return None
        if type(message) is types.DidChangeTextDocumentNotification and self._did_change_now(
            message.params
        ):
            return None
        return super().handle_message(message)

    def _did_change_now(self, params: types.DidChangeTextDocumentParams) -> bool:
        """Handle a keystroke's `didChange` without pygls's machinery for notifications (a
        copied context, a uuid, two futures and a generator each time: a third of the
        server's time on a keystroke before the analysis starts). False (pygls handles it)
        when the server's own handler is not a plain function or the server is shutting down."""
        handler = self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)
        if handler is not self._change_handler[0]:  # (what it is, asked once per handler)
            self._change_handler = (handler, handler is None or _plain_function(handler))
        if self._shutdown or not self._change_handler[1]:
            return False
        if not self._apply_changes(params) or handler is None:
            return True
        try:
            handler(params)
        except Exception:  # reported as pygls reports a failed notification handler
            error = JsonRpcInternalError.of(sys.exc_info())  # type: ignore[no-untyped-call]
            self._server._report_server_error(error, FeatureNotificationError)
        return True

    def _handle_notification(self, method_name: str, params: Any) -> None:
        """pygls's, with the futures it makes for the notification dropped once done: pygls
        keeps each one (`didOpen`, `didSave`, ...) for good, a leak in a server that runs all
        day. (A request's future is removed when it is answered.)"""
        futures = self._request_futures
        before = set(futures)
        super()._handle_notification(method_name, params)
        for key in [k for k in futures if k not in before]:
            futures[key].add_done_callback(functools.partial(_forget, futures, key))

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """Apply the changes to the open document the LSP way, then call the server's handler.
        (Replaces pygls's own handler, which applies them with `TextDocument.apply_change`.
        `handle_message` takes the fast way, `_did_change_now`, when it can.)"""
        if not self._apply_changes(params):
            return
        handler = self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)
        if handler is not None:
            yield handler, (params,), None

    def _apply_changes(self, params: types.DidChangeTextDocumentParams) -> bool:
        """Apply a `didChange` to the open document (False when it is not open)."""
        workspace = self.workspace
        uri = params.text_document.uri
        key = unquote(uri)
        doc = workspace.text_documents.get(key)
        if doc is None:
            log.warning("didChange for %s, which is not open: ignored", uri)
            return False
        source = doc.source
        lines = self.line_indexes.get(key)
        if lines is None or lines.text is not source:
            lines = LineIndex(source)
        lines = apply_changes_to(
            lines,
            (to_change(c) for c in params.content_changes),
            encoding_of(workspace.position_encoding),
        )
        self.line_indexes[key] = lines
        workspace.put_text_document(
            types.TextDocumentItem(
                uri=doc.uri,
                language_id=doc.language_id or "",
                version=params.text_document.version,
                text=lines.text,
            )
        )
        return True
