"""The Python client of the gateway (:mod:`fastflow.client.connection`) and ``fastflow tail``."""

from fastflow.client.connection import AuthError as AuthError
from fastflow.client.connection import Client as Client
from fastflow.client.connection import ClientClosed as ClientClosed
from fastflow.client.connection import ClientError as ClientError
from fastflow.client.connection import ConnectionLost as ConnectionLost
from fastflow.client.connection import ServerError as ServerError
from fastflow.client.connection import Tick as Tick
from fastflow.client.connection import Unreachable as Unreachable
from fastflow.client.connection import connect as connect
