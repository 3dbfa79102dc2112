"""The console script: --help everywhere, and `fastflow run` really runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastflow.cli import main

SUBCOMMANDS = ["run", "sim", "record", "replay", "universe", "instruments", "config", "login"]


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


def test_run_with_a_duration_stops_by_itself() -> None:
    """`fastflow run --duration`: the whole stack comes up, reports, and stops with status 0
    (the rest of `fastflow run` is tests/services/test_run.py)."""
    result = fastflow("run", "--port", "0", "--duration", "3", "--rate", "2000", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from the simulator" in result.stdout and "dashboard http://127.0.0.1:" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("stopped: every child exited, files removed")


def test_run_rejects_bad_arguments() -> None:
    result = fastflow("run", "--rate", "-5")
    assert result.returncode == 2 and "must be >= 0" in result.stderr
    result = fastflow("run", "--broker", "zerodha")
    assert result.returncode == 2 and "zerodha" in result.stderr


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


def test_a_secret_on_the_command_line_works_and_warns_once_naming_its_variable(
        capsys: pytest.CaptureFixture[str]) -> None:
    from fastflow import cli

    cli._WARNED.clear()
    args = cli.build_parser().parse_args(
        ["gateway", "--api-key", "k-123456=desk", "--redis", "redis://:pw-1@127.0.0.1:6379/0"])
    config = cli._gateway_config(args)
    assert config is not None
    assert config.gateway.api_keys == {"k-123456": "desk"} and config.redis.url == "redis://:pw-1@127.0.0.1:6379/0"
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "fastflow gateway: warning: redis.url on the command line is visible to every local user "
        "(ps, /proc/PID/cmdline); set FASTFLOW_REDIS_URL or put it in the configuration file instead",
        "fastflow gateway: warning: gateway.api_keys on the command line is visible to every local user "
        "(ps, /proc/PID/cmdline); set FASTFLOW_GATEWAY_API_KEYS or put it in the configuration file instead",
    ]
    assert "pw-1" not in "".join(err) and "k-123456" not in "".join(err)
    args = cli.build_parser().parse_args(["plant", "--redis", "unix:///tmp/r.sock"])  # no password: no warning
    assert cli._load("plant", args) is not None and capsys.readouterr().err == ""


def test_a_busy_port_is_one_line_and_exit_2_not_a_traceback(tmp_path: Path) -> None:
    """`fastflow sim --port <busy>` printed a 30-line OSError after it had written
    --instruments-out; `fastflow plant --health-port <busy>` a traceback too."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        dump = tmp_path / "instruments.csv"
        sim = fastflow("sim", "--port", str(port), "--instruments-out", str(dump), "--duration", "5")
        assert sim.returncode == 2 and "Traceback" not in sim.stderr, sim.stderr
        assert sim.stderr.startswith(f"fastflow sim: cannot listen on 127.0.0.1:{port}: ")
        assert "address already in use" in sim.stderr and len(sim.stderr.splitlines()) == 1
        assert not dump.exists()  # nothing written before it could listen
        plant = fastflow("plant", "--symbols", "NSE:INFY", "--redis", "none", "--health-port", str(port),
                         "--duration", "5")
        assert plant.returncode == 2 and "Traceback" not in plant.stderr, plant.stderr
        assert f"fastflow plant: cannot listen on 127.0.0.1:{port} for /healthz: " in plant.stderr


def test_run_takes_symbols_seed_and_redis_flags() -> None:
    from fastflow import cli

    args = cli.build_parser().parse_args(["run", "--symbols", "NSE:INFY,NSE:TCS", "--seed", "7", "--redis",
                                          "unix:///tmp/fastflow-test.sock"])
    config = cli._load("run", args)
    assert config is not None
    assert config.broker.symbols == ("NSE:INFY", "NSE:TCS") and config.simulator.seed == 7
    assert config.redis.url == "unix:///tmp/fastflow-test.sock"


def test_a_reader_that_leaves_early_is_no_traceback() -> None:
    """`fastflow config --json | head` printed a BrokenPipeError traceback."""
    process = subprocess.Popen([sys.executable, "-m", "fastflow", "config"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line is written
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0 and "Traceback" not in err, err


def test_a_gateway_without_redis_says_why_it_is_not_ready_once() -> None:
    """It used to print its dashboard URL as if ready and then one warning per retry."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket is closed
    result = fastflow("gateway", "--redis", f"redis://127.0.0.1:{closed}/0", "--port", "0", "--duration", "6")
    out = result.stdout + result.stderr
    assert "dashboard http://127.0.0.1:" in out
    assert out.count(f"not ready: cannot reach redis redis://127.0.0.1:{closed}") == 1, out
    assert out.count("reconnecting") == 1, out  # the first failure; retries of the same reason are quiet
    assert "ready: " not in out.replace("not ready: ", "")
