"""Fuzzing what peers send as text and control messages (``make fuzz`` runs many
more examples): the gateway's control-message parser in both subprotocols, the
sans-I/O core that answers them, and the brokers' text-frame handlers. Whatever
arrives, the answer is a reply or a counted, contained failure: never an
exception out of the handler, never a reply that is not strict JSON."""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow.gateway import protocol as proto
from fastflow.gateway.core import FanoutCore

from ..brokers.feeds import kite_session, kite_state, upstox_session, upstox_state
from .test_core import EMPTY_FRAME, Market, Recorder

EXAMPLES = int(os.environ.get("FASTFLOW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=5), max_leaves=30)
ops = st.sampled_from([*proto.OPS, "launch", ""])
messages = st.fixed_dictionaries({"op": ops}, optional={"symbols": values | st.lists(st.text(max_size=20) | st.integers(),
                                                                                      max_size=8), "id": values})


def as_json(value: Any) -> str:
    return json.dumps(value, allow_nan=True)  # NaN and Infinity on purpose: the gateway must refuse them


def strict(reply: str | bytes) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a reply")

    return json.loads(reply, parse_constant=refuse)


def wire_forms(value: Any) -> list[tuple[bytes | str, str]]:
    forms: list[tuple[bytes | str, str]] = [(as_json(value), proto.JSON)]
    with contextlib.suppress(OverflowError, TypeError, ValueError):
        forms.append((msgpack.packb(value), proto.MSGPACK))
    return forms


@FUZZ
@given(st.one_of(messages, values))
def test_parse_answers_every_value_with_a_request_or_a_protocol_error(value: Any) -> None:
    for message, subprotocol in wire_forms(value):
        try:
            request = proto.parse(message, subprotocol, max_symbols=16)
        except proto.ProtocolError as exc:
            assert exc.code in (proto.BAD_MESSAGE, proto.UNKNOWN_OP, proto.BAD_SYMBOLS, proto.TOO_MANY_SYMBOLS)
            strict(proto.encode(proto.error(exc.code, exc.message, exc.op), proto.JSON))
            continue
        assert request.op in proto.OPS
        assert not (isinstance(request.id, float) and not math.isfinite(request.id))


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_parse_takes_any_text_or_bytes(junk: str) -> None:
    for message, subprotocol in ((junk, proto.JSON), (junk.encode("utf-8", "surrogatepass"), proto.MSGPACK),
                                 (junk.encode("latin-1", "replace"), proto.JSON)):
        with contextlib.suppress(proto.ProtocolError):
            proto.parse(message, subprotocol, max_symbols=16)


_market = Market()
_core = FanoutCore(max_symbols=16, control_rate=1e9, control_burst=10**9)
_core.reset(_market.symbols, {}, EMPTY_FRAME, {"broker": "kite"})


@FUZZ
@given(st.lists(st.one_of(messages, values), min_size=1, max_size=6), st.booleans())
def test_the_core_answers_every_message_in_the_connections_encoding(batch: list[Any], binary: bool) -> None:
    client = Recorder(binary=binary)
    _core.connect(client)
    try:
        for value in batch:
            for message, subprotocol in wire_forms(value):
                if (subprotocol == proto.MSGPACK) != binary:
                    continue
                replies, _ = _core.control(client, message, subprotocol, 0.0)
                assert replies
                for reply in replies:
                    if isinstance(reply, dict):
                        encoded = proto.encode(reply, subprotocol)
                        if not binary:
                            strict(encoded)
        assert not _core.faults.counts, _core.faults.last  # a failure of ours would show here
    finally:
        _core.disconnect(client)


_kite = kite_session(kite_state(), {})
_upstox = upstox_session(upstox_state(), {})
nested = st.integers(1, 20_000).map(lambda n: '{"type":"order","data":' + "[" * n + "]" * n + "}")


@FUZZ
@given(st.one_of(st.text(max_size=300), st.builds(as_json, values), nested))
def test_broker_text_frames_never_escape_their_handler(text: str) -> None:
    for session in (_kite, _upstox):
        before = session.counters["frames"]
        session._on_message(text)  # a raise here would end the connection (it ended the plant)
        assert session.counters["frames"] == before + 1
        assert set(session.faults.counts) <= {"text"}
