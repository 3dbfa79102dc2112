"""The official Upstox V3 protobuf classes, generated at test time.

:func:`load` compiles ``tests/proto/MarketDataFeedV3.proto`` with
``grpc_tools.protoc`` into a temporary directory (once per process), imports
the generated ``MarketDataFeedV3_pb2`` and returns it. Nothing generated is
written into the repository; the temporary directory is removed right after
the import (the module lives on in memory).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import subprocess
import sys
import tempfile
import types
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent / "proto"
PROTO_FILE = "MarketDataFeedV3.proto"
MODULE_NAME = "MarketDataFeedV3_pb2"


class ProtocError(RuntimeError):
    """protoc could not compile the schema."""


@functools.cache
def load() -> types.ModuleType:
    """Compile the schema (first call only) and return the generated ``_pb2`` module."""
    import grpc_tools  # noqa: F401  (fail early, with a plain ImportError, if grpcio-tools is missing)

    well_known = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/wrappers.proto
    with tempfile.TemporaryDirectory(prefix="fastflow-upstox-pb-") as out:
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}", f"--proto_path={well_known}",
            f"--python_out={out}", str(PROTO_DIR / PROTO_FILE),
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        generated = Path(out) / (MODULE_NAME + ".py")
        if result.returncode != 0 or not generated.is_file():
            raise ProtocError(
                f"protoc failed to compile {PROTO_DIR / PROTO_FILE} (exit {result.returncode}):\n"
                f"{result.stderr.strip() or result.stdout.strip() or 'no output'}"
            )
        spec = importlib.util.spec_from_file_location(MODULE_NAME, generated)
        if spec is None or spec.loader is None:
            raise ProtocError(f"cannot import the generated {generated}")
        module = importlib.util.module_from_spec(spec)
        dont_write = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = dont_write
    return module
