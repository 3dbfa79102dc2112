"""Handshake authentication for the gateway (docs/protocol.md).

Credentials come in the ``Authorization: Bearer <credential>`` header or, for
browsers (which cannot set headers on a WebSocket), the ``token`` query
parameter. A credential is either an **API key** from the configuration, or
an **HMAC-signed expiring token**::

    <base64url(json {"sub": name, "exp": epoch seconds})>.<base64url(HMAC-SHA256(secret, first part))>

made by :func:`make_token`. A token is refused once expired, and also when it
expires more than ``max_token_ttl`` seconds from now (``exp = 1e12``, ``1e309``):
no credential of ours lives forever. The expiry is enforced on open connections
too (the gateway closes a client whose token expires, with 1008). Unauthenticated
access is allowed only where the configuration says so (the embedded default:
connections from loopback). Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import math
import time
from collections.abc import Mapping

#: The expiry of a credential that does not expire (an API key, loopback).
NEVER = math.inf


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, subject: str, ttl: float, now: float | None = None) -> str:
    """An HMAC-signed token for ``subject`` valid for ``ttl`` seconds."""
    payload = _b64(json.dumps({"sub": subject, "exp": int((now or time.time()) + ttl)},
                              separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


@dataclasses.dataclass(frozen=True)
class Auth:
    """Who may connect: ``api_keys`` (key -> client name), ``secret`` for tokens,
    and whether clients on loopback need no credential (``allow_loopback``)."""

    api_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secret: bytes = b""
    allow_loopback: bool = True
    max_token_ttl: float = 86_400.0

    def check(self, credential: str | None, peer_host: str | None, now: float | None = None) -> str | None:
        """The client's name, or None when the credential (or its absence) is refused."""
        admitted = self.admit(credential, peer_host, now)
        return None if admitted is None else admitted[0]

    def admit(self, credential: str | None, peer_host: str | None,
              now: float | None = None) -> tuple[str, float] | None:
        """``(client name, expiry in epoch seconds)`` (:data:`NEVER` for an API key
        or loopback), or None when the credential (or its absence) is refused."""
        if credential:
            for key, name in self.api_keys.items():
                if hmac.compare_digest(credential.encode(), key.encode()):
                    return name, NEVER
            if self.secret:
                return self._token(credential, time.time() if now is None else now)
            return None
        if self.allow_loopback and _loopback(peer_host):
            return "loopback", NEVER
        return None

    def _token(self, token: str, now: float) -> tuple[str, float] | None:
        payload, dot, signature = token.partition(".")
        if not dot:
            return None
        expected = _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        try:
            claims = json.loads(_unb64(payload))
            subject, expiry = str(claims["sub"]), float(claims["exp"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        if not now < expiry <= now + self.max_token_ttl:  # expired, or too far out (inf and NaN too)
            return None
        return subject, expiry


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
