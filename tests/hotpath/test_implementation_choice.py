"""fastflow.hotpath picks the compiled module unless FASTFLOW_PUREPYTHON=1,
and a missing compiled module is an error, never a silent fallback."""

from __future__ import annotations

import os
import subprocess
import sys


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


def test_compiled_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FASTFLOW_PUREPYTHON"}
    result = subprocess.run(
        [sys.executable, "-c", "import fastflow.hotpath as h; print(h.IMPLEMENTATION, h.MarketState.__module__)"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.stdout.split() == ["compiled", "fastflow._hotpath"], result.stderr


def test_purepython_selects_the_reference() -> None:
    result = _python(
        "import fastflow, fastflow.hotpath as h; print(h.IMPLEMENTATION, fastflow.MarketState.__module__)",
        FASTFLOW_PUREPYTHON="1",
    )
    assert result.stdout.split() == ["reference", "fastflow.reference.market_state"], result.stderr


def test_missing_compiled_module_is_an_error() -> None:
    code = "import sys; sys.modules['fastflow._hotpath'] = None\nimport fastflow.hotpath"
    result = _python(code, FASTFLOW_PUREPYTHON="0")
    assert result.returncode != 0
    assert "compiled hot path (fastflow._hotpath) is not built" in result.stderr
    assert "make compile" in result.stderr
