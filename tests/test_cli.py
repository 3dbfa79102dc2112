"""The console script: --help everywhere, and `fastflow run` really runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastflow.cli import main

SUBCOMMANDS = ["run", "sim", "record", "replay", "universe", "instruments"]


def fastflow(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastflow", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("sub", [None, *SUBCOMMANDS])
def test_help(sub: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([sub, "--help"] if sub else ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: fastflow" in out
    if sub is None:
        for name in SUBCOMMANDS:
            assert name in out


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("fastflow")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("fastflow ")


def test_run_decodes_the_synthetic_market() -> None:
    result = fastflow("run", "--duration", "2.5", "--rate", "5000", "--watch", "NSE:INFY,NSE:NIFTY 50")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "foundation stage" in out and "fastflow gateway" in out
    assert "NSE:INFY" in out and "NSE:NIFTY 50" in out
    assert "packets/s decoded" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("stopped after")
    assert "'frame_errors': 0" in last and "'unknown_tokens': 0" in last
    packets = int(last.split(": ", 1)[1].split(" packets")[0].replace(",", ""))
    assert packets > 0


def test_run_rejects_bad_arguments() -> None:
    result = fastflow("run", "--rate", "-5")
    assert result.returncode == 2 and "must be > 0" in result.stderr
    result = fastflow("run", "--duration", "1", "--watch", "NSE:NOSUCH")
    assert result.returncode == 2 and "NSE:NOSUCH" in result.stderr


def test_universe_and_instruments_commands(tmp_path: Path) -> None:
    out = tmp_path / "instruments.csv.gz"
    assert fastflow("universe", "--out", str(out)).returncode == 0
    result = fastflow("instruments", str(out), "NSE:INFY", "408065", "NSE:NOSUCH")
    assert result.returncode == 1
    assert "'tradingsymbol': 'INFY'" in result.stdout
    assert "NSE:NOSUCH" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,header\n1,2,3\n")
    result = fastflow("instruments", str(bad))
    assert result.returncode == 1 and "header" in result.stderr
