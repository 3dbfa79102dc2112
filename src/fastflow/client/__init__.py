"""The Python client of the gateway (:mod:`fastflow.client.connection`) and ``fastflow tail``."""

from fastflow.client.connection import (
    AuthError,
    Client,
    ClientClosed,
    ClientError,
    ConnectionLost,
    ServerError,
    Tick,
    Unreachable,
    connect,
)

__all__ = [
    "AuthError",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectionLost",
    "ServerError",
    "Tick",
    "Unreachable",
    "connect",
]
