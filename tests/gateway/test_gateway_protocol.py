"""The gateway's control messages and handshake auth, as units: every bad
message maps to an error code, tokens verify and expire, loopback rules."""

from __future__ import annotations

import contextlib
import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastflow.gateway import protocol
from fastflow.gateway.auth import Auth, make_token
from fastflow.gateway.protocol import JSON, MSGPACK, ProtocolError, RateLimit, Request, parse


def m(value: object) -> bytes:
    return msgpack.packb(value)


def test_good_messages_in_both_encodings() -> None:
    assert parse(m({"op": "subscribe", "symbols": ["NSE:INFY", 408065]}), MSGPACK, 100) == \
        Request("subscribe", ("NSE:INFY", 408065))
    assert parse(json.dumps({"op": "unsubscribe", "symbols": ["NSE:INFY"]}), JSON, 100) == \
        Request("unsubscribe", ("NSE:INFY",))
    assert parse(m({"op": "ping", "id": 7}), MSGPACK, 100) == Request("ping", id=7)
    assert parse(m({"op": "snapshot"}), MSGPACK, 100) == Request("snapshot")


@pytest.mark.parametrize(
    ("message", "subprotocol", "code"),
    [
        (b"\xc1", MSGPACK, protocol.BAD_MESSAGE),  # never-used msgpack byte
        (m([1, 2]), MSGPACK, protocol.BAD_MESSAGE),
        ("{\"op\": \"ping\"}", MSGPACK, protocol.BAD_MESSAGE),  # text on the msgpack subprotocol
        (m({"op": "ping"}), JSON, protocol.BAD_MESSAGE),  # binary on the JSON subprotocol
        ("{not json", JSON, protocol.BAD_MESSAGE),
        (m({"op": "launch"}), MSGPACK, protocol.UNKNOWN_OP),
        (m({"symbols": []}), MSGPACK, protocol.UNKNOWN_OP),
        (m({"op": "subscribe"}), MSGPACK, protocol.BAD_SYMBOLS),
        (m({"op": "subscribe", "symbols": "NSE:INFY"}), MSGPACK, protocol.BAD_SYMBOLS),
        (m({"op": "subscribe", "symbols": [None]}), MSGPACK, protocol.BAD_SYMBOLS),
        (m({"op": "subscribe", "symbols": [True]}), MSGPACK, protocol.BAD_SYMBOLS),
        (m({"op": "subscribe", "symbols": ["x" * 129]}), MSGPACK, protocol.BAD_SYMBOLS),
        (m({"op": "subscribe", "symbols": ["A"] * 11}), MSGPACK, protocol.TOO_MANY_SYMBOLS),
        (m({"op": "ping", "id": [1]}), MSGPACK, protocol.BAD_MESSAGE),
        (m({1: 2}), MSGPACK, protocol.BAD_MESSAGE),  # non-string map keys are refused by the decoder
    ],
)
def test_bad_messages_get_their_error_code(message: bytes | str, subprotocol: str, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse(message, subprotocol, 10)
    assert info.value.code == code and info.value.message


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_a_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse(data, MSGPACK, 10)


def test_replies_encode_per_subprotocol() -> None:
    reply = protocol.error(protocol.UNKNOWN_OP, "no", "launch")
    assert msgpack.unpackb(protocol.encode(reply, MSGPACK)) == reply
    assert json.loads(protocol.encode(reply, JSON)) == reply


def test_rate_limit_allows_bursts_then_refuses_and_counts_strikes() -> None:
    limit = RateLimit(rate=10.0, burst=3, now=0.0)
    assert [limit.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert limit.strikes == 1 and not limit.allow(0.0) and limit.strikes == 2
    assert limit.allow(0.1) and limit.strikes == 0  # one token back after 0.1 s


def test_api_keys_tokens_and_loopback() -> None:
    auth = Auth(api_keys={"k-123": "desk"}, secret=b"s3cret", allow_loopback=True)
    assert auth.check("k-123", "10.0.0.5") == "desk"
    assert auth.check("k-124", "10.0.0.5") is None
    token = make_token(b"s3cret", "alice", ttl=60, now=1000.0)
    assert auth.check(token, "10.0.0.5", now=1030.0) == "alice"
    assert auth.check(token, "10.0.0.5", now=1061.0) is None  # expired
    assert auth.check(make_token(b"other", "alice", 60, now=1000.0), "10.0.0.5", now=1001.0) is None
    payload, _, signature = token.partition(".")
    assert auth.check(payload + "x." + signature, "10.0.0.5", now=1001.0) is None  # tampered
    assert auth.check("garbage", "10.0.0.5") is None
    assert auth.check(None, "127.0.0.1") == "loopback" and auth.check(None, "::1") == "loopback"
    assert auth.check(None, "10.0.0.5") is None and auth.check(None, None) is None
    assert Auth(allow_loopback=False).check(None, "127.0.0.1") is None


def test_tokens_have_a_maximum_lifetime_and_their_expiry_is_known() -> None:
    """exp = 1e12 and exp = 1e309 (infinity) were accepted: no token lives forever."""
    import base64
    import hashlib
    import hmac

    secret = b"s3cret"
    auth = Auth(secret=secret, max_token_ttl=3600.0)

    def signed(exp: str) -> str:
        payload = base64.urlsafe_b64encode(f'{{"sub":"eve","exp":{exp}}}'.encode()).rstrip(b"=").decode()
        signature = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
        return payload + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    for exp in ("1e12", "1e309", "NaN", "-1e309"):
        assert auth.admit(signed(exp), "10.0.0.5", now=1000.0) is None, exp
    assert auth.admit(signed("4601"), "10.0.0.5", now=1000.0) is None  # 3601 s ahead
    assert auth.admit(signed("4600"), "10.0.0.5", now=1000.0) == ("eve", 4600.0)
    assert auth.admit(make_token(secret, "ann", 60, now=1000.0), None, now=1000.0) == ("ann", 1060.0)
    assert Auth(api_keys={"k": "desk"}).admit("k", None) == ("desk", float("inf"))
    assert Auth().admit(None, "127.0.0.1") == ("loopback", float("inf"))
