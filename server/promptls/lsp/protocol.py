"""The JSON-RPC protocol, with one fix: a request whose parameters do not match the method's
types is answered with an `InvalidParams` error (pygls would log it and never answer, leaving
the client waiting)."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol


class _Unanswerable:
    """A request that could not be read, still owed a response."""

    __slots__ = ("error", "msg_id")

    def __init__(self, msg_id: Any, error: JsonRpcException) -> None:
        self.msg_id = msg_id
        self.error = error


class PromptProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers malformed requests instead of dropping them."""

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

    def handle_message(self, message: Any) -> Any:
        """Answer an unreadable request with its error; hand anything else to pygls."""
        if isinstance(message, _Unanswerable):
            self._send_response(message.msg_id, None, message.error.to_response_error())
            return None
        return super().handle_message(message)
