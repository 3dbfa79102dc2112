"""One error root: every public exception fastflow defines derives from
:class:`fastflow.errors.FastflowError`, and keeps the base it had before."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import types

import pytest

import fastflow
from fastflow.errors import FastflowError, FrameError


def fastflow_modules() -> list[types.ModuleType]:
    """Every module of the package (not the ``__main__`` entry points, which run the CLI)."""
    modules = [fastflow]
    for info in pkgutil.walk_packages(fastflow.__path__, "fastflow."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def public_exceptions() -> dict[str, type[BaseException]]:
    """``module.Name`` -> class, for the exception classes defined (not imported) in fastflow's modules."""
    found: dict[str, type[BaseException]] = {}
    for module in fastflow_modules():
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException) and not name.startswith("_")
                    and value.__module__ == module.__name__):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_public_exception_is_a_fastflow_error() -> None:
    found = public_exceptions()
    assert len(found) >= 16, f"the walk found too few exceptions: {sorted(found)}"
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, FastflowError))
    assert not outside, f"not under FastflowError: {outside}"


@pytest.mark.parametrize(("name", "base"), [
    ("FrameError", ValueError),
    ("ProtocolError", ValueError),
    ("ConfigError", ValueError),
    ("InstrumentError", ValueError),
    ("CaptureError", ValueError),
    ("TickDecodeError", ValueError),
    ("StackError", RuntimeError),
    ("RedisServerError", RuntimeError),
    ("RedisSetupError", ConnectionError),
    ("ConnectionLost", ConnectionError),
    ("Unreachable", ConnectionError),
    ("ClientError", Exception),
    ("AuthFailed", Exception),
    ("PbError", Exception),
])
def test_each_keeps_its_historical_base(name: str, base: type[BaseException]) -> None:
    [cls] = {cls for qualified, cls in public_exceptions().items() if qualified.rsplit(".", 1)[1] == name}
    assert issubclass(cls, FastflowError) and issubclass(cls, base)


def test_the_hot_path_raises_the_one_frame_error() -> None:
    from fastflow.hotpath import FrameError as HotpathFrameError
    from fastflow.hotpath import KiteDecoder, MarketState
    from fastflow.instruments import Instruments
    from fastflow.sim.universe import kite_universe

    assert HotpathFrameError is FrameError and fastflow.FrameError is FrameError
    decoder = KiteDecoder(MarketState(Instruments.from_kite_rows(kite_universe())))
    with pytest.raises(FastflowError) as raised:
        decoder.feed(b"\x00\x05")  # five packets announced, none there
    assert type(raised.value) is FrameError and isinstance(raised.value, ValueError)


def test_frame_error_pickles_with_its_reason_and_offset() -> None:
    error = pickle.loads(pickle.dumps(FrameError("truncated", 7)))
    assert type(error) is FrameError and (error.reason, error.offset) == ("truncated", 7)
    assert str(error) == "truncated (at byte offset 7)"
