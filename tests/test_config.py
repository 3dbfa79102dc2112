"""fastflow.config: the TOML file, FASTFLOW_* variables and overrides, their
precedence and errors, masking, `fastflow config`, and the environment
defaults of `fastflow plant` / `fastflow gateway`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from fastflow import cli
from fastflow.config import (
    BrokerSection,
    Config,
    ConfigError,
    env_var,
    load_config,
    parse_api_keys,
    render_toml,
)

ROOT = Path(__file__).resolve().parents[1]
FASTFLOW = Path(sys.executable).with_name("fastflow")
TOKEN = "tok-3b9f0c1d8e7a6b5c"  # secrets: none of these may ever be printed
API_KEY = "gwkey-9d8c7b6a5f4e"
SECRET = "hmac-5e4d3c2b1a09"
PASSWORD = "redispw-1a2b3c4d"


def write(tmp_path: Path, text: str, name: str = "fastflow.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error(path: Path | None = None, env: dict[str, str] | None = None, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {}, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./fastflow.toml here
    config = load_config(env={}, command="plant")  # a command without defaults of its own
    assert config == Config()
    assert config.source_file is None
    assert set(config.sources.values()) == {"default"}
    assert config.broker.name == "kite" and config.broker.mode == "full" and config.broker.symbols == ()
    assert config.redis.url == "embedded" and config.gateway.port == 8765 and config.gateway.api_keys == {}
    assert config.simulator.rate == 0.0 and config.simulator.speed == 1.0 and config.simulator.start == "09:15" and config.run.log_lines == 20
    assert not config.broker.live
    assert config.get("gateway.high_water") == 262_144
    assert env_var("gateway.port") == "FASTFLOW_GATEWAY_PORT"


def test_the_example_file_has_every_key_at_its_default() -> None:
    example = ROOT / "fastflow.example.toml"
    config = load_config(example, env={})
    assert config == Config()
    assert set(config.sources.values()) == {str(example)}  # every key is written out


def test_file_values(tmp_path: Path) -> None:
    (tmp_path / "instruments.csv").write_text("")
    path = write(tmp_path, """
[broker]
name = "kite"
api_key = "myapp"
access_token = "tok"
instruments = "instruments.csv"   # relative to this file
symbols = ["NSE:INFY", "NSE:NIFTY 50", "408065"]
mode = "quote"
watchdog = 3                       # an integer is a number
[redis]
url = "redis://cache.internal:6380/2"
stream_maxlen = 1
[gateway]
api_keys = { k1 = "alice", k2 = "bob" }
allow_origins = ["https://example.com", "http://localhost:3000"]
require_auth = true
[run]
status_every = 0
""")
    config = load_config(path, env={})
    assert config.source_file == str(path)
    assert config.broker == BrokerSection(
        name="kite", api_key="myapp", access_token="tok", instruments=str(tmp_path / "instruments.csv"),
        symbols=("NSE:INFY", "NSE:NIFTY 50", "408065"), mode="quote", watchdog=3.0)
    assert isinstance(config.broker.watchdog, float)
    assert config.broker.live
    assert config.redis.url == "redis://cache.internal:6380/2" and config.redis.stream_maxlen == 1
    assert dict(config.gateway.api_keys) == {"k1": "alice", "k2": "bob"}
    assert config.gateway.allow_origins == ("https://example.com", "http://localhost:3000")
    assert config.run.status_every == 0.0
    assert config.sources["broker.mode"] == str(path)
    assert config.sources["gateway.port"] == "default"


def test_environment_over_file_and_overrides_over_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\nport = 9000\nhost = "0.0.0.0"\n[broker]\nname = "upstox"\n')
    env = {"FASTFLOW_GATEWAY_PORT": "9100", "FASTFLOW_GATEWAY_REQUIRE_AUTH": "Yes",
           "FASTFLOW_GATEWAY_API_KEYS": "k1=alice, k2", "FASTFLOW_GATEWAY_ALLOW_ORIGINS": "https://a.io, https://b.io:8443",
           "FASTFLOW_BROKER_SYMBOLS": "NSE_EQ|INE009A01021,,NSE_INDEX|Nifty 50", "FASTFLOW_SIMULATOR_SEED": "-3",
           "FASTFLOW_REDIS_CLUSTER": "off", "FASTFLOW_REDIS_URL": "redis://10.0.0.5:7000"}
    config = load_config(path, env=env)
    assert config.gateway.port == 9100 and config.sources["gateway.port"] == "FASTFLOW_GATEWAY_PORT"
    assert config.gateway.host == "0.0.0.0" and config.sources["gateway.host"] == str(path)
    assert config.gateway.require_auth is True and config.redis.cluster is False
    assert dict(config.gateway.api_keys) == {"k1": "alice", "k2": "api-key"}
    assert config.gateway.allow_origins == ("https://a.io", "https://b.io:8443")
    assert config.broker.symbols == ("NSE_EQ|INE009A01021", "NSE_INDEX|Nifty 50")
    assert config.simulator.seed == -3

    overrides = {"gateway.port": 0, "broker.name": "kite", "simulator.rate": "500", "broker.mode": None,
                 "gateway.api_keys": ["k3=carol"], "broker.symbols": "NSE:INFY,NSE:TCS"}
    config = load_config(path, env=env, overrides=overrides)
    assert config.gateway.port == 0 and config.sources["gateway.port"] == "command line"
    assert config.broker.name == "kite" and config.simulator.rate == 500.0
    assert config.sources["broker.mode"] == "default"  # None: the flag was not given
    assert dict(config.gateway.api_keys) == {"k3": "carol"}
    assert config.broker.symbols == ("NSE:INFY", "NSE:TCS")


def test_which_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path, "[gateway]\nport = 1\n", "a.toml")
    b = write(tmp_path, "[gateway]\nport = 2\n", "b.toml")
    write(tmp_path, "[gateway]\nport = 3\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).gateway.port == 3  # ./fastflow.toml
    assert load_config(env={}).source_file == str(tmp_path / "fastflow.toml")
    assert load_config(env={"FASTFLOW_CONFIG": str(a)}).gateway.port == 1
    assert load_config(b, env={"FASTFLOW_CONFIG": str(a)}).gateway.port == 2  # the argument wins
    assert "FASTFLOW_CONFIG: no such file" in error(env={"FASTFLOW_CONFIG": str(tmp_path / "nope.toml")})
    assert "nope.toml: no such file" in error(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "expected"), [
    ('[gateway]\nport = "abc"\n', "fastflow.toml: gateway.port: expected an integer 0..65535, got 'abc'"),
    ("[gateway]\nport = 70000\n", "fastflow.toml: gateway.port: expected an integer 0..65535, got 70000"),
    ("[gateway]\nport = 80.0\n", "gateway.port: expected an integer"),
    ("[gateway]\nprot = 80\n", "fastflow.toml: unknown key gateway.prot (did you mean gateway.port?)"),
    ("[gatway]\nport = 80\n", "fastflow.toml: unknown section [gatway]"),
    ("port = 80\n", "unknown key port (did you mean gateway.port?)"),
    ("gateway = 5\n", "fastflow.toml: gateway: expected a table"),
    ('[broker]\nname = "kite"\nmode = \n', "fastflow.toml: line 3: "),
    ('[broker]\nname = "zerodha"\n', "fastflow.toml: broker.name: expected kite or upstox, got 'zerodha'"),
    ('[broker]\nname = "upstox"\nmode = "quote"\n',
     "fastflow.toml: broker.mode: 'quote' is not an upstox mode; expected ltpc, full, option_greeks or full_d30"),
    ('[broker]\nmode = "ltpc"\n', "broker.mode: 'ltpc' is not a kite mode; expected ltp, quote or full"),
    ('[broker]\nurl = "https://ws.kite.trade"\n', "broker.url: expected a ws:// or wss:// URL"),
    ('[broker]\nsymbols = "NSE:INFY"\n', "broker.symbols: expected a list"),
    ("[broker]\nwatchdog = 0\n", "broker.watchdog: expected a number of seconds > 0, got 0"),
    ("[broker]\nwatchdog = nan\n", "broker.watchdog: expected a number of seconds > 0"),
    ("[broker]\ngive_up_after = -1\n", "broker.give_up_after: expected a number of seconds >= 0 (0: never), got -1.0"),
    ('[broker]\napi_url = "ftp://x"\n', "fastflow.toml: broker.api_url: expected \"\" or an http:// or https:// URL"),
    ('[broker]\napi_key = "app"\n', "broker.access_token: empty while broker.api_key is set"),
    ('[broker]\ninstruments = "/no/such/x.csv"\n', "fastflow.toml: broker.instruments: no such file: /no/such/x.csv"),
    ("[simulator]\nseed = 1.5\n", "simulator.seed: expected an integer, got 1.5"),
    ("[redis]\ncluster = 1\n", "redis.cluster: expected true or false, got 1"),
    ('[redis]\nurl = "http://x"\n', "fastflow.toml: redis.url: redis URL 'http://x': unknown scheme"),
    ("[redis]\ncluster = true\n", "redis.cluster: the embedded Redis is not a cluster"),
    ('[redis]\nprefix = "a b"\n', "redis.prefix: expected 1-64 letters"),
    ('[redis]\nprefix = "{x}"\n', "redis.prefix: expected"),
    ("[redis]\nstream_maxlen = 0\n", "redis.stream_maxlen: expected an integer number of flushes > 0, got 0"),
    ("[redis]\nttl = 0\n", "redis.ttl: expected an integer number of seconds > 0, got 0"),
    ("[plant]\nhealth_port = -1\n", "plant.health_port: expected an integer 0..65535"),
    ('[plant]\nrollover = "8:30"\n', "plant.rollover: expected HH:MM (IST), like 08:30, got '8:30'"),
    ('[plant]\nrollover = "08:30:00"\n', "plant.rollover: expected HH:MM (IST)"),
    ('[gateway]\nallow_origins = ["example.com"]\n', "gateway.allow_origins: expected a list of origins"),
    ('[gateway]\nallow_origins = ["https://example.com/path"]\n', "gateway.allow_origins: expected"),
    ("[gateway]\nrequire_auth = true\n", "gateway.require_auth: no client could connect"),
    ("[gateway]\nmax_symbols = 0\n", "gateway.max_symbols: expected an integer > 0, got 0"),
    ("[gateway]\nhigh_water = 0\n", "gateway.high_water: expected an integer number of bytes > 0"),
    ("[gateway]\nlag_limit = -1\n", "gateway.lag_limit: expected a number of seconds > 0"),
    ("[run]\nstatus_every = -1\n", "run.status_every: expected a number of seconds >= 0"),
    ("[run]\nlog_lines = 0\n", "run.log_lines: expected an integer > 0, got 0"),
])
def test_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = error(path)
    assert message.startswith(f"{path}: ") or message.startswith("broker."), message
    assert expected.replace("fastflow.toml", str(path)) in message


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    message = error(write(tmp_path, '[gateway]\napi_keys = { k = 12345678 }\n'))
    assert "gateway.api_keys: expected" in message and "12345678" not in message


@pytest.mark.parametrize(("env", "expected"), [
    ({"FASTFLOW_GATEWAY_PORT": "abc"}, "FASTFLOW_GATEWAY_PORT: expected an integer 0..65535, got 'abc'"),
    ({"FASTFLOW_GATEWAY_PORT": ""}, "FASTFLOW_GATEWAY_PORT: expected an integer 0..65535, got ''"),
    ({"FASTFLOW_GATEWAY_PROT": "1"}, "FASTFLOW_GATEWAY_PROT: not a fastflow configuration variable "
                                     "(did you mean FASTFLOW_GATEWAY_PORT?)"),
    ({"FASTFLOW_GATEWAY_REQUIRE_AUTH": "maybe"}, "FASTFLOW_GATEWAY_REQUIRE_AUTH: expected true or false"),
    ({"FASTFLOW_SIMULATOR_RATE": "fast"}, "FASTFLOW_SIMULATOR_RATE: expected a number of updates per second >= 0"),
    ({"FASTFLOW_SIMULATOR_RATE": "-1"}, "FASTFLOW_SIMULATOR_RATE: expected a number of updates per second >= 0"),
    ({"FASTFLOW_SIMULATOR_SPEED": "0"}, "FASTFLOW_SIMULATOR_SPEED: expected"),
    ({"FASTFLOW_SIMULATOR_START": "25:00"}, "FASTFLOW_SIMULATOR_START: expected"),
    ({"FASTFLOW_PLANT_ROLLOVER": "24:00"}, "FASTFLOW_PLANT_ROLLOVER: expected HH:MM (IST), like 08:30, got '24:00'"),
    ({"FASTFLOW_PLANT_ROLLOVER": "08:60"}, "FASTFLOW_PLANT_ROLLOVER: expected HH:MM (IST)"),
    ({"FASTFLOW_SIMULATOR_RATE": "inf"}, "FASTFLOW_SIMULATOR_RATE: expected"),
    ({"FASTFLOW_GATEWAY_API_KEYS": "=alice"}, "FASTFLOW_GATEWAY_API_KEYS: expected key=name,key2=name2"),
    ({"FASTFLOW_BROKER_NAME": "upstox", "FASTFLOW_BROKER_MODE": "quote"},
     "FASTFLOW_BROKER_MODE: 'quote' is not an upstox mode"),
    ({"FASTFLOW_LOGIN_TIMEOUT": "0"}, "FASTFLOW_LOGIN_TIMEOUT: expected a number of seconds > 0, got 0.0"),
    ({"FASTFLOW_BROKER_INSTRUMENTS": "/x.csv"}, "FASTFLOW_BROKER_INSTRUMENTS: no such file: /x.csv"),
    ({"FASTFLOW_REDIS_URL": f"redis://:{PASSWORD}@host:99999"}, "FASTFLOW_REDIS_URL: redis URL"),
])
def test_environment_errors(env: dict[str, str], expected: str) -> None:
    message = error(None, {"FASTFLOW_CONFIG": "", **env})
    assert expected in message
    assert PASSWORD not in message and TOKEN not in message


def test_override_errors() -> None:
    assert "command line: gateway.port: expected an integer 0..65535, got 'x'" in error(
        overrides={"gateway.port": "x"}, env={"FASTFLOW_CONFIG": ""})
    assert "command line: unknown key gateway.prot (did you mean gateway.port?)" in error(
        overrides={"gateway.prot": 1}, env={"FASTFLOW_CONFIG": ""})
    assert "command line: redis.cluster: expected true or false" in error(
        overrides={"redis.cluster": 1}, env={"FASTFLOW_CONFIG": ""})


def test_reserved_variables_are_not_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {name: "1" for name in ("FASTFLOW_DEBUG", "FASTFLOW_PUREPYTHON", "FASTFLOW_REDIS_SERVER",
                                  "FASTFLOW_FUZZ_EXAMPLES", "FASTFLOW_ANNOTATE", "FASTFLOW_COVERAGE",
                                  "FASTFLOW_OPT_CFLAGS")}
    env.update(FASTFLOW_CONFIG="", NOT_FASTFLOW_X="1", fastflow_lower="1")
    assert load_config(env=env, command="plant") == Config()


def test_legacy_token_secret() -> None:
    config = load_config(env={"FASTFLOW_CONFIG": "", "FASTFLOW_TOKEN_SECRET": SECRET})
    assert config.gateway.token_secret == SECRET
    assert config.sources["gateway.token_secret"] == "FASTFLOW_TOKEN_SECRET"
    config = load_config(env={"FASTFLOW_CONFIG": "", "FASTFLOW_TOKEN_SECRET": "old",
                              "FASTFLOW_GATEWAY_TOKEN_SECRET": SECRET})
    assert config.gateway.token_secret == SECRET
    assert config.sources["gateway.token_secret"] == "FASTFLOW_GATEWAY_TOKEN_SECRET"


def test_live() -> None:
    assert not BrokerSection(api_key="app").live
    assert not BrokerSection(access_token="tok").live
    assert BrokerSection(api_key="app", access_token="tok").live
    assert BrokerSection(name="upstox", access_token="tok").live
    assert not BrokerSection(name="upstox", api_key="app").live


def secret_config(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A file and environment full of secrets."""
    (tmp_path / "NSE.csv").write_text("")
    path = write(tmp_path, f"""
[broker]
api_key = "myapp"
instruments = "NSE.csv"
[redis]
url = "redis://app:{PASSWORD}@cache:6379/1"
[gateway]
api_keys = {{ "{API_KEY}" = "alice", "short" = "bob", "{API_KEY}x" = "carol" }}
""")
    env = {"FASTFLOW_BROKER_ACCESS_TOKEN": TOKEN, "FASTFLOW_GATEWAY_TOKEN_SECRET": SECRET,
           "FASTFLOW_GATEWAY_PORT": "0"}
    return path, env


def assert_no_secret(text: str) -> None:
    for secret in (TOKEN, API_KEY, SECRET, PASSWORD, "short"):
        assert secret not in text


def test_masking(tmp_path: Path) -> None:
    path, env = secret_config(tmp_path)
    config = load_config(path, env=env)
    assert config.broker.access_token == TOKEN and config.broker.live
    masked = config.masked()
    assert masked["broker"]["access_token"] == "********"
    assert masked["broker"]["api_key"] == "myapp"  # not a secret
    assert masked["gateway"]["token_secret"] == "********"
    assert masked["gateway"]["api_keys"] == {"gw…": "alice", "…": "bob", "gw…2": "carol"}
    assert masked["redis"]["url"] == "redis://app:********@cache:6379/1"
    assert Config().masked()["broker"]["access_token"] == "" == Config().masked()["gateway"]["token_secret"]
    assert_no_secret(json.dumps(masked))
    assert_no_secret(render_toml(config))
    assert_no_secret(repr(config))
    redis = dataclasses.replace(config.redis, url=f"redis://{PASSWORD}@h/0?password={PASSWORD}")
    assert_no_secret(json.dumps(dataclasses.replace(config, redis=redis).masked()))


def test_render_toml_parses_back(tmp_path: Path) -> None:
    path, env = secret_config(tmp_path)
    env["FASTFLOW_BROKER_SYMBOLS"] = 'NSE:A"B\\C, NSE:NIFTY 50, BSE:Ω\x7f'
    config = load_config(path, env=env)
    text = render_toml(config)
    assert text.startswith(f"# configuration file: {path}\n")
    assert tomllib.loads(text) == config.masked()
    assert tomllib.loads(render_toml(config, sources=False)) == config.masked()
    lines = text.splitlines()
    assert "port = 0  # FASTFLOW_GATEWAY_PORT" in lines
    assert 'access_token = "********"  # FASTFLOW_BROKER_ACCESS_TOKEN' in lines
    assert f'api_key = "myapp"  # {path}' in lines
    assert "ttl = 86400  # default" in lines
    assert "#" not in render_toml(config, sources=False).split("\n", 1)[1]
    assert render_toml(Config()).startswith("# no configuration file; defaults and environment\n")


def test_parse_api_keys() -> None:
    assert parse_api_keys("") == {}
    assert parse_api_keys("a=alice, b ,c=") == {"a": "alice", "b": "api-key", "c": "api-key"}
    with pytest.raises(ValueError):
        parse_api_keys("a,=bob")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without FASTFLOW_* configuration, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTFLOW_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def test_fastflow_config_command(tmp_path: Path) -> None:
    path, env = secret_config(tmp_path)
    result = subprocess.run([str(FASTFLOW), "config", "--config", str(path)], capture_output=True, text=True,
                            timeout=60, env=clean_env(**env), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# configuration file: {path}\n")
    assert "port = 0  # FASTFLOW_GATEWAY_PORT" in result.stdout
    assert 'token_secret = "********"  # FASTFLOW_GATEWAY_TOKEN_SECRET' in result.stdout
    assert_no_secret(result.stdout + result.stderr)
    assert tomllib.loads(result.stdout)["gateway"]["port"] == 0

    result = subprocess.run([str(FASTFLOW), "config", "--json"], capture_output=True, text=True, timeout=60,
                            env=clean_env(FASTFLOW_CONFIG=str(path), **env), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == load_config(path, env=env).masked()
    assert_no_secret(result.stdout + result.stderr)

    bad = write(tmp_path, "[gateway]\nport = 99999\n", "bad.toml")
    result = subprocess.run([str(FASTFLOW), "config", "--config", str(bad)], capture_output=True, text=True,
                            timeout=60, env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"fastflow config: {bad}: gateway.port: expected an integer 0..65535, got 99999\n"


def test_plant_takes_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastflow.services.plant import credentials

    args = cli.build_parser().parse_args(["plant", "--symbols", "NSE:INFY"])
    assert args.api_key is None and args.access_token is None

    def plant(env: dict[str, str], *flags: str) -> tuple[str, str]:
        parsed = cli.build_parser().parse_args(["plant", "--symbols", "NSE:INFY", *flags])
        overrides = {key: getattr(parsed, dest) for dest, key in parsed.config_keys.items()}
        return credentials(load_config(env=env, overrides=overrides, command="plant"))

    assert plant({}) == ("fastflow", "sim-token")  # the simulator's
    env = {"FASTFLOW_BROKER_API_KEY": "myapp", "FASTFLOW_BROKER_ACCESS_TOKEN": TOKEN}
    assert plant(env) == ("myapp", TOKEN)
    assert plant(env, "--api-key", "flag", "--access-token", "flagtok") == ("flag", "flagtok")


def test_gateway_takes_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("FASTFLOW_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT / "tests")  # no ./fastflow.toml here

    def gateway(*flags: str) -> tuple[dict[str, str], str]:
        config = cli._gateway_config(cli.build_parser().parse_args(["gateway", *flags]))
        assert config is not None
        return dict(config.gateway.api_keys), config.gateway.token_secret

    assert gateway() == ({}, "")
    monkeypatch.setenv("FASTFLOW_GATEWAY_API_KEYS", "k1=alice,k2")
    monkeypatch.setenv("FASTFLOW_TOKEN_SECRET", "legacy")
    assert gateway("--api-key", "k2=bob", "--api-key", "k3") == (
        {"k1": "alice", "k2": "bob", "k3": "api-key"}, "legacy")
    monkeypatch.setenv("FASTFLOW_GATEWAY_TOKEN_SECRET", SECRET)
    assert gateway()[1] == SECRET
    monkeypatch.setenv("FASTFLOW_GATEWAY_API_KEYS", "=nobody")
    assert cli._gateway_config(cli.build_parser().parse_args(["gateway"])) is None
    assert "FASTFLOW_GATEWAY_API_KEYS" in capsys.readouterr().err


def test_gateway_command_reads_the_environment() -> None:
    common = [str(FASTFLOW), "gateway", "--duration", "0.5", "--port", "0", "--redis", "redis://127.0.0.1:1"]
    result = subprocess.run(common, capture_output=True, text=True, timeout=60,
                            env=clean_env(FASTFLOW_GATEWAY_API_KEYS="k1=alice,=bad"))
    assert result.returncode == 2 and "FASTFLOW_GATEWAY_API_KEYS" in result.stderr
    result = subprocess.run(common, capture_output=True, text=True, timeout=60,
                            env=clean_env(FASTFLOW_GATEWAY_API_KEYS="k1=alice", FASTFLOW_GATEWAY_TOKEN_SECRET=SECRET))
    assert result.returncode == 0, result.stderr
    assert "fastflow gateway: dashboard http://127.0.0.1:" in result.stdout


def test_each_command_starts_from_its_own_documented_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./fastflow.toml here
    assert load_config(env={}, command="run").simulator.rate == 0.0
    assert load_config(env={}, command="run").simulator.universe == "full"
    assert load_config(env={}, command="sim").simulator.universe == "small"
    assert load_config(env={}, command="sim").simulator.rate == 0.0
    assert load_config(env={}, command="run").redis.url == "embedded"
    assert load_config(env={}, command="plant").redis.url == "embedded"
    assert load_config(env={}, command="gateway").redis.url == "redis://127.0.0.1:6379/0"
    # a command default is still below the file, the environment and the flags
    path = write(tmp_path, "[simulator]\nrate = 500\n")
    assert load_config(path, env={}, command="sim").simulator.rate == 500.0
    assert load_config(env={"FASTFLOW_REDIS_URL": "unix:///tmp/r.sock"}, command="gateway").redis.url == \
        "unix:///tmp/r.sock"
    assert load_config(env={}, command="sim", overrides={"simulator.rate": 7}).simulator.rate == 7.0
    with pytest.raises(ValueError, match="unknown command"):
        load_config(env={}, command="nosuch")


def test_a_configuration_handed_to_a_child_is_the_same_and_checked_again() -> None:
    from fastflow.config import from_data, to_data

    config = load_config(env={"FASTFLOW_GATEWAY_API_KEYS": "k1=alice", "FASTFLOW_BROKER_ACCESS_TOKEN": TOKEN,
                              "FASTFLOW_BROKER_API_KEY": "myapp", "FASTFLOW_BROKER_SYMBOLS": "NSE:INFY,NSE:TCS"},
                         overrides={"gateway.port": 0}, command="plant")
    data = json.loads(json.dumps(to_data(config)))  # through the file's JSON
    again = from_data(data, source="plant.json")
    assert again == config and again.broker.access_token == TOKEN and again.broker.symbols == ("NSE:INFY", "NSE:TCS")
    assert set(again.sources.values()) == {"plant.json"}
    data["gateway"]["port"] = 99999
    with pytest.raises(ConfigError, match=r"plant.json: gateway.port: expected an integer 0..65535"):
        from_data(data, source="plant.json")
    with pytest.raises(ConfigError, match=r"unknown key gateway\.prot"):
        from_data({"gateway": {"prot": 1}}, source="plant.json")


def test_no_command_line_flag_defines_a_default_of_its_own() -> None:
    """Every flag that sets a configuration key leaves its default to the Config (argparse
    default None), so no default is defined twice."""
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for name, sub in subparsers.choices.items():
        keys = sub.get_default("config_keys") or {}
        for action in sub._actions:
            if action.dest in keys:
                assert action.default is None, (name, action.dest)
                section, _, key = keys[action.dest].partition(".")
                assert key in Config().masked()[section], (name, action.dest)
                checked += 1
    assert checked >= 40
