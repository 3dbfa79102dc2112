"""The client protocol's control messages (docs/protocol.md): parsing and
validation of what clients send, and the server's control replies.

Two subprotocols carry the same messages: ``fastflow.msgpack.v1`` (binary
frames, msgpack maps; the default when a client offers none) and
``fastflow.json.v1`` (text frames, JSON objects). Tick frames are built
elsewhere (spliced from pre-encoded blobs); this module is cold code, once per
control message.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Final

import msgpack

from fastflow.errors import FastflowError

MSGPACK: Final = "fastflow.msgpack.v1"
JSON: Final = "fastflow.json.v1"
SUBPROTOCOLS: Final = (MSGPACK, JSON)

OPS: Final = ("subscribe", "unsubscribe", "snapshot", "ping", "subscribe_flow", "unsubscribe_flow")

#: Error codes of ``{"type": "error", "code": ...}`` (the connection stays usable).
BAD_MESSAGE: Final = "bad_message"  # not a map/object, or not decodable in the connection's encoding
UNKNOWN_OP: Final = "unknown_op"
BAD_SYMBOLS: Final = "bad_symbols"  # "symbols" missing or not a list of strings/ints
TOO_MANY_SYMBOLS: Final = "too_many_symbols"
RATE_LIMITED: Final = "rate_limited"
BAD_FILTER: Final = "bad_filter"  # a subscribe_flow filter field of the wrong shape or value
INTERNAL: Final = "internal_error"  # the gateway failed on the message (a bug of ours), contained


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


class ProtocolError(FastflowError, ValueError):
    """A client message the gateway answers with an ``error`` (code + message)."""

    def __init__(self, code: str, message: str, op: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.op = op


@dataclasses.dataclass(frozen=True)
class Request:
    """One parsed client message."""

    op: str
    symbols: tuple[str | int, ...] = ()
    id: Any = None  # echoed in the reply (ping -> pong)
    #: The whole message, for subscribe_flow's filter (gateway.flow.parse_filter reads it).
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)


def decode(message: bytes | str, subprotocol: str) -> Any:
    """The message as Python values, in the connection's encoding."""
    try:
        if subprotocol == JSON:
            if not isinstance(message, str):
                raise ProtocolError(BAD_MESSAGE, "fastflow.json.v1 takes text frames")
            return json.loads(message, parse_constant=_no_constant, parse_float=_finite)
        if not isinstance(message, bytes):
            raise ProtocolError(BAD_MESSAGE, "fastflow.msgpack.v1 takes binary frames")
        return msgpack.unpackb(message, raw=False, strict_map_key=True)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError(BAD_MESSAGE, "cannot decode the message: nested too deep") from None
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            UnicodeDecodeError) as exc:
        raise ProtocolError(BAD_MESSAGE, f"cannot decode the message: {exc}") from None


def parse(message: bytes | str, subprotocol: str, max_symbols: int) -> Request:
    """A validated :class:`Request`, or :class:`ProtocolError` with the code to send."""
    value = decode(message, subprotocol)
    if not isinstance(value, dict):
        raise ProtocolError(BAD_MESSAGE, "a message is a map with an \"op\"")
    op = value.get("op")
    if op not in OPS:
        raise ProtocolError(UNKNOWN_OP, f"unknown op {op!r}; expected one of {', '.join(OPS)}",
                            op if isinstance(op, str) else None)
    ident = value.get("id")
    if isinstance(ident, (dict, list, bytes)) or (isinstance(ident, float) and not math.isfinite(ident)):
        raise ProtocolError(BAD_MESSAGE, "\"id\" must be a string, a finite number or null", op)
    if op == "ping":
        return Request(op, id=ident)
    if op in ("subscribe_flow", "unsubscribe_flow"):
        return Request(op, id=ident, fields=value)
    symbols = value.get("symbols")
    if symbols is None and op == "snapshot":
        return Request(op, id=ident)
    if not isinstance(symbols, list) or not all(
        (isinstance(s, str) and 0 < len(s) <= 128) or (isinstance(s, int) and not isinstance(s, bool) and s >= 0)
        for s in symbols
    ):
        raise ProtocolError(BAD_SYMBOLS, "\"symbols\" must be a list of EXCHANGE:TRADINGSYMBOL strings "
                            "(or broker tokens / instrument keys)", op)
    if len(symbols) > max_symbols:
        raise ProtocolError(TOO_MANY_SYMBOLS, f"{len(symbols)} symbols in one message; at most {max_symbols}", op)
    return Request(op, tuple(symbols), ident)


def encode(value: dict[str, Any], subprotocol: str) -> bytes | str:
    """A control message in the connection's encoding (text for JSON, binary for msgpack)."""
    if subprotocol == JSON:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    packed: bytes = msgpack.packb(value)
    return packed


def ws_header(n: int, opcode: int = 0x2) -> bytes:
    """The header of a final, unmasked (server to client) WebSocket frame of
    ``n`` payload bytes (RFC 6455 5.2): binary by default, 0x1 for text.
    ``FanOut.collect(cid, websocket=True)`` writes the binary one in C."""
    b0 = 0x80 | opcode
    if n < 126:
        return bytes((b0, n))
    if n < 1 << 16:
        return bytes((b0, 126)) + n.to_bytes(2, "big")
    return bytes((b0, 127)) + n.to_bytes(8, "big")


def error(code: str, message: str, op: str | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if op is not None:
        reply["op"] = op
    return reply


class RateLimit:
    """A token bucket for control messages: ``rate`` per second, bursts of ``burst``.
    ``strikes`` counts refusals in a row; the server closes the connection past a limit."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = now
        self.strikes = 0

    def allow(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.strikes = 0
            return True
        self.strikes += 1
        return False
