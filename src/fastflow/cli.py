"""The ``fastflow`` command line. Every subcommand has ``--help``.

Argument parsing only: a flag that sets a configuration key is an override of the
one :class:`~fastflow.config.Config` (:func:`_flag`), read with the command's
defaults (:data:`fastflow.config.COMMAND_DEFAULTS`), and the command hands the
validated configuration to its service (``fastflow.services.<name>.main(config)``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastflow import __version__
from fastflow.brokers.kite.constants import URL as KITE_URL
from fastflow.config import MODES, UNIVERSES, Config, GatewaySection, SimulatorSection
from fastflow.obs.state import State

if TYPE_CHECKING:
    import datetime
    from collections.abc import Callable

    from fastflow.instruments import Instruments


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _defaults(command: str) -> Config:
    """The configuration a command starts from before files, environment and flags:
    where a flag's help names a default, it comes from here (each default is defined
    once, in :mod:`fastflow.config`)."""
    from fastflow.config import COMMAND_DEFAULTS, from_data, to_data

    data = to_data(Config())
    for key, value in COMMAND_DEFAULTS.get(command, {}).items():
        section, _, name = key.partition(".")
        data[section][name] = value
    return from_data(data, source="default")


def _flag(parser: Any, *names: str, key: str, help: str, command: str, show_default: bool = True,
          owner: argparse.ArgumentParser | None = None, **options: Any) -> None:
    """A flag that overrides the configuration key ``key``; its help shows the key's default."""
    if show_default:
        default = _defaults(command).get(key)
        shown = ",".join(default) if isinstance(default, tuple) else default
        help = f"{help} (default {shown if shown not in ('', None) else 'none'}; config {key})"
    else:
        help = f"{help} (config {key})"
    action = parser.add_argument(*names, default=None, help=help, **options)
    owner = owner or parser
    keys = owner.get_default("config_keys") or {}
    owner.set_defaults(config_keys={**keys, action.dest: key})


def _load(command: str, args: argparse.Namespace, **extra: object) -> Config | None:
    """The configuration of ``command`` with the flags given as overrides; None (after
    printing why) when it is not valid."""
    from fastflow.config import ConfigError, env_var, load_config

    overrides: dict[str, object] = {key: getattr(args, dest) for dest, key in (args.config_keys or {}).items()}
    overrides.update(extra)
    try:
        config = load_config(args.config, overrides=overrides, command=command)
    except ConfigError as exc:
        print(f"fastflow {args.command}: {exc}", file=sys.stderr)
        return None
    for key in config.secrets_on_command_line():
        warn_secret_flag(args.command, key, env_var(key))
    return config


_WARNED: set[str] = set()


def warn_secret_flag(command: str, what: str, variable: str) -> None:
    """One line on stderr (once per process): ``what`` was given as a flag, here is
    the way that hides it."""
    if what in _WARNED:
        return
    _WARNED.add(what)
    print(f"fastflow {command}: warning: {what} on the command line is visible to every local user "
          f"(ps, /proc/PID/cmdline); set {variable} or put it in the configuration file instead",
          file=sys.stderr)


def _instruments(broker: str, source: str, today: datetime.date | None = None) -> Instruments:
    """The instrument master ``source`` names: a file, or ``""``/``synthetic`` (the
    built-in universe, as ``fastflow sim`` serves it; of ``today``, None: the
    simulator's own today)."""
    from fastflow.sim.universe import load

    return load(broker, source, today)


def _cmd_run(args: argparse.Namespace) -> int:
    from fastflow.services import supervisor

    config = _load("run", args)
    if config is None:
        return 2
    return supervisor.main(config, duration=args.duration, verbose=args.verbose)


def _cmd_bench(args: argparse.Namespace) -> int:
    from fastflow.tools import e2e

    return e2e.main(args)


def _cmd_sim(args: argparse.Namespace) -> int:
    from fastflow.services import simulator

    config = _load("sim", args)
    return 2 if config is None else simulator.main(config, duration=args.duration)


def _cmd_plant(args: argparse.Namespace) -> int:
    from fastflow.ingest.capture import CaptureError, CaptureReader
    from fastflow.services import plant

    def fail(message: str) -> int:
        print(f"fastflow plant: {message}", file=sys.stderr)
        return 2

    if args.speed is not None:
        try:
            speed = None if args.speed == "max" else float(args.speed)
        except ValueError:
            return fail(f"--speed takes max or a number, not {args.speed!r}")
        if speed is not None and not speed > 0:
            return fail("--speed must be > 0")
    extra: dict[str, object] = {}
    source = args.instruments or ""
    if args.replay:  # the capture says which broker, and which instrument master
        try:
            reader = CaptureReader(args.replay)
        except (CaptureError, OSError) as exc:
            return fail(str(exc))
        if args.broker not in (None, reader.broker):
            return fail(f"{args.replay} is a {reader.broker} capture, not {args.broker}")
        extra["broker.name"] = reader.broker
        source = source or str(reader.header.get("instruments", ""))
        extra["broker.instruments"] = None if source in ("", "synthetic") else source
    elif args.all:
        extra["broker.symbols"] = ()
    elif not args.symbols:
        return fail("say what to subscribe: --symbols NSE:INFY,... or --all")
    synthetic = source if source.startswith("synthetic") else ""  # e.g. synthetic-full (sim.universe.SOURCES)
    if synthetic:
        extra["broker.instruments"] = ""
    config = _load("plant", args, **extra)
    if config is None:
        return 2
    from fastflow.brokers.masters import wants_download

    master: Callable[[datetime.date | None], Instruments] | None = None
    if config.broker.instruments in ("", "synthetic") and not wants_download(config.broker):
        name = config.broker.name

        def universe(today: datetime.date | None) -> Instruments:  # of a day: the plant rolls it over
            return _instruments(name, synthetic, today)

        master = universe
    return plant.main(config, duration=args.duration, synthetic=master)


def _gateway_config(args: argparse.Namespace) -> Config | None:
    """``fastflow gateway``'s configuration: its ``--api-key KEY[=NAME]`` flags add to
    (and win over) ``gateway.api_keys`` from the file and the environment."""
    from fastflow.config import parse_api_keys

    config = _load("gateway", args)
    if config is None or not args.api_key:
        return config
    try:
        flags = parse_api_keys(",".join(args.api_key))
    except ValueError as exc:
        print(f"fastflow gateway: --api-key takes KEY or KEY=NAME: {exc}", file=sys.stderr)
        return None
    return _load("gateway", args, **{"gateway.api_keys": {**config.gateway.api_keys, **flags}})


def _cmd_gateway(args: argparse.Namespace) -> int:
    from fastflow.services import gateway

    config = _gateway_config(args)
    return 2 if config is None else gateway.main(config, duration=args.duration)


def _cmd_record(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from fastflow.brokers.kite.session import KiteSession
    from fastflow.hotpath import KiteDecoder, MarketState
    from fastflow.ingest.capture import CaptureWriter
    instruments = _instruments("kite", args.instruments)
    try:
        tokens = [instruments.token_of(s.strip()) for s in args.symbols.split(",") if s.strip()]
    except KeyError as exc:
        print(f"fastflow record: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.access_token not in (None, SimulatorSection.access_token):
        warn_secret_flag("record", "--access-token", "FASTFLOW_BROKER_ACCESS_TOKEN")
    api_key = args.api_key or os.environ.get("FASTFLOW_BROKER_API_KEY") or SimulatorSection.api_key
    access_token = (args.access_token or os.environ.get("FASTFLOW_BROKER_ACCESS_TOKEN")
                    or _stored_kite_token(api_key) or SimulatorSection.access_token)
    state = MarketState(instruments)
    if not args.url.startswith(("ws://", "wss://")):
        print(f"fastflow record: --url must be a ws:// or wss:// URL (the broker's, e.g. the one `fastflow sim` "
              f"prints), not {args.url!r}", file=sys.stderr)
        return 2
    try:
        session = KiteSession(KiteDecoder(state), api_key=api_key, access_token=access_token, url=args.url,
                              subscriptions=dict.fromkeys(tokens, args.mode), give_up_after=args.give_up_after)
    except ValueError as exc:
        print(f"fastflow record: {exc}", file=sys.stderr)
        return 2
    created = not (os.path.exists(args.out) and os.path.getsize(args.out) > 0)
    with CaptureWriter(args.out, broker="kite", instruments=args.instruments or "synthetic") as writer:
        session.on_frame = writer.append

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, session.stop)
            task = asyncio.create_task(session.run())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), args.duration)
            session.stop()
            await task

        asyncio.run(main())
    if not session.streamed:  # nothing recorded: say why in one line, leave no empty capture behind
        if created and writer.records == 0:
            with contextlib.suppress(OSError):
                os.remove(args.out)
        if session.state == State.GAVE_UP:
            reason = session.gave_up
        elif session.state == State.AUTH_FAILED:
            reason = f"the broker at {args.url} refused the credentials ({session.last_error}): renew the access token"
        else:
            reason = f"never connected to {args.url}: {session.last_error or 'stopped before the first connection'}"
        print(f"fastflow record: {reason}", file=sys.stderr)
        return 1
    print(f"fastflow record: {writer.records} frames to {args.out}; session {session.health()}")
    if session.state in (State.AUTH_FAILED, State.GAVE_UP):
        print(f"fastflow record: {session.gave_up or 'the broker refused the access token'}", file=sys.stderr)
        return 1
    return 0


def _stored_kite_token(api_key: str) -> str:
    """The unexpired Kite token `fastflow login` stored for ``api_key`` (``$FASTFLOW_BROKER_STATE_DIR``), or ""."""
    from fastflow.brokers import tokens

    directory = tokens.state_dir(os.environ.get("FASTFLOW_BROKER_STATE_DIR", ""))
    try:
        token = tokens.read_token(tokens.token_path(directory, "kite"))
    except tokens.TokenFileError:
        return ""
    return token.access_token if token is not None and token.api_key == api_key and not token.expired() else ""


def _cmd_replay(args: argparse.Namespace) -> int:
    from fastflow.hotpath import MarketState
    from fastflow.ingest.capture import CaptureError, CaptureReader
    from fastflow.ingest.replay import replay

    try:
        reader = CaptureReader(args.path)
        source = args.instruments or str(reader.header.get("instruments", ""))
        state = MarketState(_instruments(reader.broker, source))
        speed = None if args.speed == "max" else float(args.speed)
        result = replay(args.path, state, speed=speed)
    except (CaptureError, OSError, ValueError) as exc:
        print(f"fastflow replay: {exc}", file=sys.stderr)
        return 1
    rate = result.updates / result.seconds if result.seconds else 0.0
    summary = (f"replayed {result.frames:,} frames, {result.updates:,} updates in {result.seconds:.3f} s "
               f"({rate:,.0f} updates/s); frame errors {result.frame_errors}")
    if result.torn_tail is not None:
        summary += f"; torn tail at byte {result.torn_tail} (ignored)"
    print(summary)
    for symbol in (s.strip() for s in args.watch.split(",") if s.strip()):
        tick = state.tick(symbol)
        print(f"{symbol}: last_price {tick.get('last_price')} seq {tick['seq']} mode {tick['mode']}")
    return 0


def _cmd_universe(args: argparse.Namespace) -> int:
    from fastflow.sim.universe import kite_universe, write_kite_csv

    rows = kite_universe(size=args.universe)
    write_kite_csv(rows, args.out)
    print(f"wrote {len(rows)} instruments to {args.out}")
    return 0


def _cmd_instruments(args: argparse.Namespace) -> int:
    from fastflow.instruments import InstrumentError, Instruments

    try:
        instruments = Instruments.from_kite_csv(args.path)
    except (InstrumentError, OSError) as exc:
        print(f"fastflow instruments: {exc}", file=sys.stderr)
        return 1
    print(f"{len(instruments)} instruments in {args.path}")
    status = 0
    for key in args.keys:
        lookup: int | str = int(key) if key.isdigit() else key
        try:
            row = instruments.row(lookup)
        except KeyError as exc:
            print(f"{key}: {exc.args[0]}", file=sys.stderr)
            status = 1
            continue
        print(f"{key}: {row}")
    return status


def _cmd_tail(args: argparse.Namespace) -> int:
    import asyncio

    from fastflow.client.tail import TailOptions, tail

    if (args.count is not None and args.count < 1) or args.retries < 0:
        print("fastflow tail: --count must be >= 1 and --retries >= 0", file=sys.stderr)
        return 2
    symbols: list[str | int] = [int(s) if s.isdigit() else s for s in args.symbols]
    for flag, variable in (("api_key", "FASTFLOW_API_KEY"), ("token", "FASTFLOW_TOKEN")):
        if getattr(args, flag):
            warn_secret_flag("tail", "--" + flag.replace("_", "-"), variable)
    api_key, token = args.api_key, args.token
    if not api_key and not token:
        api_key, token = os.environ.get("FASTFLOW_API_KEY") or None, os.environ.get("FASTFLOW_TOKEN") or None
    options = TailOptions(url=args.url, symbols=symbols, api_key=api_key, token=token,
                          count=args.count, json=args.json, retries=args.retries)
    try:
        return asyncio.run(tail(options))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return 0


def _cmd_flow(args: argparse.Namespace) -> int:
    import asyncio

    from fastflow.client.tape import TapeOptions, tape

    if (args.count is not None and args.count < 1) or args.retries < 0 or args.min_score < 0 \
            or args.min_premium < 0:
        print("fastflow flow: --count must be >= 1, --retries, --min-score and --min-premium >= 0", file=sys.stderr)
        return 2
    for flag, variable in (("api_key", "FASTFLOW_API_KEY"), ("token", "FASTFLOW_TOKEN")):
        if getattr(args, flag):
            warn_secret_flag("flow", "--" + flag.replace("_", "-"), variable)
    api_key, token = args.api_key, args.token
    if not api_key and not token:
        api_key, token = os.environ.get("FASTFLOW_API_KEY") or None, os.environ.get("FASTFLOW_TOKEN") or None

    def items(values: list[str] | None) -> list[str]:
        return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]

    options = TapeOptions(url=args.url, underlyings=items(args.underlying), symbols=items(args.symbol),
                          kinds=items(args.kind), min_score=args.min_score, min_premium=args.min_premium,
                          api_key=api_key, token=token, count=args.count, json=args.json, retries=args.retries)
    try:
        return asyncio.run(tape(options))
    except KeyboardInterrupt:
        return 0


def _cmd_login(args: argparse.Namespace) -> int:
    from fastflow.brokers import login

    config = _load("login", args, **({"broker.name": args.broker} if args.broker else {}))
    return 2 if config is None else login.main(config)


def _cmd_config(args: argparse.Namespace) -> int:
    import json

    from fastflow.config import ConfigError, load_config, render_toml

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"fastflow config: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(config.masked(), indent=2, ensure_ascii=False))
    else:
        print(render_toml(config), end="")
    return 0


BROKERS = tuple(MODES)
ALL_MODES = tuple(mode for modes in MODES.values() for mode in modes if mode)


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML configuration (default: $FASTFLOW_CONFIG, else ./fastflow.toml if any)")
    parser.set_defaults(config_keys={})


def _redis_flags(parser: argparse.ArgumentParser, command: str, *, metavar: str, url: str, partition: str) -> None:
    """The Redis flags of a service that reads or writes it (plant, gateway)."""
    _flag(parser, "--redis", key="redis.url", metavar=metavar, help=url, command=command)
    _flag(parser, "--redis-cluster", key="redis.cluster", action="store_const", const=True,
          help="the --redis URL is a Redis Cluster node", command=command, show_default=False)
    _flag(parser, "--redis-prefix", key="redis.prefix", help="key prefix", command=command)
    _flag(parser, "--partition", key="redis.partition", help=partition, command=command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastflow",
        description="fastflow: a real-time market-data tick plant for Indian brokers.",
    )
    parser.add_argument("--version", action="version", version=f"fastflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "run",
        help="the main job: embedded Redis, simulator (or broker), plant, gateway and dashboard",
        description="Start the embedded Redis, the simulator (or, with broker credentials in the "
        "configuration, the real broker), one plant and one gateway as separate processes; print the "
        "dashboard URL and a live status line. Ctrl-C or SIGTERM stops everything (exit 0); a child that "
        "dies or hangs is restarted (run.restarts within run.restart_window), after which the run stops "
        "with its last log lines (exit 1); a bad configuration exits 2. "
        "Configuration: fastflow.toml (or --config / FASTFLOW_CONFIG) and FASTFLOW_* variables; see "
        "`fastflow config` and docs/configuration.md.",
    )
    _config_flag(p)
    _flag(p, "--broker", key="broker.name", choices=BROKERS, help="broker", command="run")
    _flag(p, "--port", key="gateway.port", type=int, help="gateway and dashboard port (0: a free port)", command="run")
    _flag(p, "--rate", key="simulator.rate", type=_non_negative,
          help="simulated updates per second over the whole universe, a load knob (0: each instrument at its "
          "own cadence, about 1-2 a second when liquid)", command="run")
    _flag(p, "--speed", key="simulator.speed", type=_positive,
          help="simulated market seconds per real second (60 plays a session in about 6 minutes)", command="run")
    _flag(p, "--seed", key="simulator.seed", type=int, help="the simulated market's random seed", command="run")
    _flag(p, "--universe", key="simulator.universe", choices=UNIVERSES,
          help="the simulator's instruments: small (about 400) or full (about 8,300)", command="run")
    _flag(p, "--symbols", key="broker.symbols", help="comma-separated EXCHANGE:TRADINGSYMBOLs the plant subscribes",
          command="run", show_default=False)
    _flag(p, "--redis", key="redis.url", metavar="URL|embedded",
          help="embedded (a private redis-server) or a Redis URL (a password here is visible in ps: prefer "
          "FASTFLOW_REDIS_URL)", command="run")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--verbose", action="store_true", help="also print every line the children print")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "bench",
        help="benchmarks of the whole pipeline (bench e2e)",
        description="Benchmarks that run the real processes over loopback.",
    )
    bench = p.add_subparsers(dest="suite", required=True, metavar="SUITE")
    e = bench.add_parser(
        "e2e",
        help="simulator -> plant -> Redis -> gateway -> N msgpack clients: latency per hop and end to end",
        description="For each client count and rate: start the whole stack, connect the clients (50 random "
        "symbols each) in worker processes, measure end-to-end latency (client decode - plant receive) "
        "p50/p99/p99.9 and the p99 per stage; then raise the rate until p99 reaches 50 ms. Writes "
        "e2e.json, e2e.md and e2e.png (with matplotlib) to --out.",
    )
    e.add_argument("--rates", default="1000,20000,100000", help="comma-separated ticks/s (default 1000,20000,100000)")
    e.add_argument("--clients", default="10,100,1000", help="comma-separated client counts (default 10,100,1000)")
    e.add_argument("--search", default="50000,100000,150000,200000,300000,400000",
                   help="rates of the highest-rate search (empty: none)")
    e.add_argument("--search-clients", type=int, default=10, help="clients during the search (default 10)")
    e.add_argument("--watch", type=int, default=50, help="symbols per client (default 50)")
    e.add_argument("--duration", type=_positive, default=10.0, help="measured seconds per run (default 10)")
    e.add_argument("--warmup", type=float, default=3.0, help="seconds before each window (default 3)")
    e.add_argument("--pin", action="store_true", help="the gateway on the last CPU, the rest on the others")
    e.add_argument("--quick", action="store_true", help="1k and 20k ticks/s x 10 and 100 clients, no search")
    e.add_argument("--out", default="bench/results", help="results directory (default bench/results)")
    e.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "sim",
        help="run a local broker that speaks the real wire protocol",
        description="A local broker for demos and tests over the synthetic market. Kite: the ticker WebSocket "
        "(403 on bad credentials, subscribe/unsubscribe/mode, binary frames, heartbeats, limits). Upstox: the V3 "
        "authorize endpoint (single-use URLs, 401 on a bad token) and feed (sub/change_mode/unsub, market_info, "
        "initial_feed then live_feed protobuf frames, pings, per-mode limits).",
    )
    _config_flag(p)
    sim = "sim"
    _flag(p, "--broker", key="broker.name", choices=BROKERS, help="wire protocol", command=sim)
    _flag(p, "--host", key="simulator.host", help="listen address", command=sim)
    _flag(p, "--port", key="simulator.port", type=int, help="listen port (0: a free port, printed)", command=sim)
    _flag(p, "--api-key", key="simulator.api_key", help="api_key the clients must present (Kite)", command=sim)
    _flag(p, "--access-token", key="simulator.access_token", help="access_token the clients must present",
          command=sim)
    _flag(p, "--instruments-out", key="simulator.instruments_out",
          help="write the instrument dump here (Kite: .csv[.gz]; Upstox: .json[.gz])", command=sim)
    _flag(p, "--rate", key="simulator.rate", type=_non_negative,
          help="updates per second over the whole universe (Kite: packets, Upstox: feeds), a load knob; 0: each "
          "instrument at its own cadence, about 1-2 snapshots a second when liquid (prices travel as far at any "
          "rate: volatility is per unit of market time)", command=sim)
    _flag(p, "--speed", key="simulator.speed", type=_positive,
          help="market seconds per real second (1: real time; 60 plays the 6 h 15 min session in 6 min 15 s)",
          command=sim)
    _flag(p, "--start", key="simulator.start", metavar="HH:MM|now",
          help="exchange time (IST) the simulated day starts at: 09:15 opens the market, 09:00 shows the "
          "pre-open, now follows the wall clock", command=sim)
    _flag(p, "--seed", key="simulator.seed", type=int, help="market random seed", command=sim)
    _flag(p, "--universe", key="simulator.universe", choices=UNIVERSES,
          help="synthetic instruments: small (about 400) or full (about 8,300: NIFTY 50 stocks, indices, index "
          "and stock futures and option chains)", command=sim)
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    _flag(p, "--fault", key="simulator.faults", action="append", metavar="NAME@SECONDS[:DURATION]",
          help="inject a fault: drop@10 (abort connections), silence@20:5 (half-open for 5 s), "
          "garbage@3 (malformed frame), hostile@3 (text frames: JSON nested 5,000 deep, not JSON, 1 MiB), expire@30 (auth refused on reconnect), slow@5:10[:F] (rate / F "
          "for 10 s), burst@8:3 (data held 3 s, then sent at once); repeatable", command=sim, show_default=False)
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser(
        "record",
        help="capture a Kite feed's raw frames to a file",
        description="Connect to a Kite ticker (the real one or `fastflow sim`), subscribe, and append every "
        "raw frame with its receive time to a capture file (format: fastflow/ingest/capture.py).",
    )
    p.add_argument("--out", required=True, help="capture file (appended to if it exists)")
    p.add_argument("--url", default=KITE_URL, help="ticker URL (e.g. ws://127.0.0.1:PORT/)")
    p.add_argument("--api-key", default=None,
                   help="api_key (default: $FASTFLOW_BROKER_API_KEY, else the simulator's)")
    p.add_argument("--access-token", default=None,
                   help="access_token (default: $FASTFLOW_BROKER_ACCESS_TOKEN, else the simulator's; a real "
                   "token on the command line is visible to other local users: prefer the variable)")
    p.add_argument("--symbols", default="NSE:INFY,NSE:RELIANCE,NSE:NIFTY 50", help="comma-separated symbols")
    p.add_argument("--mode", choices=["ltp", "quote", "full", "ltpc", "option_greeks", "full_d30"], default="full",
                   help="subscription mode: Kite ltp|quote|full, Upstox ltpc|full|option_greeks|full_d30 "
                   "(default full)")
    p.add_argument("--instruments", default="", help="Kite instruments dump (default: the synthetic universe)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--give-up-after", type=_non_negative, default=0.0, metavar="SECONDS",
                   help="exit 1 after this many seconds without a streaming connection (default 0: never; "
                   "the plant's broker.give_up_after). A URL that is not a Kite feed (e.g. the gateway's port) "
                   "fails at once, and a record that never connected exits 1 naming the reason")
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser(
        "replay",
        help="drive the hot path from a capture file",
        description="Decode a capture file's frames into a fresh state with their recorded receive times; "
        "--speed max measures throughput without a network.",
    )
    p.add_argument("path", help="capture file")
    p.add_argument("--speed", default="max", help="max (default), or a factor such as 1 or 10")
    p.add_argument("--instruments", default="", help="instrument master (default: the one the capture names)")
    p.add_argument("--watch", default="", help="comma-separated symbols to print at the end")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser(
        "plant",
        help="run the plant: broker ingest -> hot path, with /healthz",
        description="Connect to the broker (every connection of one api_key), decode every message into the "
        "C state, flush once per message, and serve GET /healthz (200 while streaming, 503 otherwise). "
        "With --replay, a capture file drives the state instead. Stops cleanly on SIGINT/SIGTERM.",
    )
    _config_flag(p)
    plant = "plant"
    _flag(p, "--broker", key="broker.name", choices=BROKERS, help="broker (with --replay: the capture's)",
          command=plant)
    _flag(p, "--url", key="broker.url",
          help="Kite: the ticker URL (\"\": wss://ws.kite.trade; the simulator: ws://127.0.0.1:PORT/); "
          "Upstox: the API base the feed is authorized at (\"\": https://api.upstox.com; the simulator: "
          "http://127.0.0.1:PORT)", command=plant)
    _flag(p, "--api-key", key="broker.api_key",
          help="Kite api_key (also $FASTFLOW_BROKER_API_KEY; unset: the simulator's)", command=plant)
    _flag(p, "--access-token", key="broker.access_token",
          help="access_token (prefer $FASTFLOW_BROKER_ACCESS_TOKEN: a command line is visible to every user of "
          "the machine; unset: the simulator's)", command=plant, show_default=False)
    _flag(p, "--instruments", key="broker.instruments",
          help="instrument master: a Kite CSV or an Upstox JSON[.gz] (none or synthetic: the small synthetic "
          "universe `fastflow sim` serves; synthetic-full: its --universe full)", command=plant)
    what = p.add_mutually_exclusive_group()
    _flag(what, "--symbols", key="broker.symbols", help="comma-separated EXCHANGE:TRADINGSYMBOLs or tokens",
          command=plant, show_default=False, owner=p)
    what.add_argument("--all", action="store_true",
                      help="every instrument of the master, up to what one plant may subscribe (Kite: 9000 "
                      "tokens per api_key; Upstox: the connection's cap for the mode)")
    _flag(p, "--mode", key="broker.mode", choices=ALL_MODES,
          help="subscription mode: Kite ltp|quote|full, Upstox ltpc|full|option_greeks|full_d30", command=plant)
    _flag(p, "--watchdog", key="broker.watchdog", type=_positive,
          help="seconds without a frame before a connection counts as dead", command=plant)
    _flag(p, "--give-up-after", key="broker.give_up_after", type=float, metavar="SECONDS",
          help="exit 1, naming the reason, after this many seconds without a streaming broker connection "
          "(never connected, or lost and not back; 0: retry for ever). A URL that is not a feed fails at once",
          command=plant)
    _flag(p, "--health-host", key="plant.health_host", help="/healthz listen address", command=plant)
    _flag(p, "--health-port", key="plant.health_port", type=int, help="/healthz port (0: a free port, printed)",
          command=plant)
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    _flag(p, "--status-every", key="plant.status_every", type=_positive, help="seconds between status lines",
          command=plant)
    _flag(p, "--replay", key="plant.replay", metavar="FILE",
          help="drive the state from this capture instead of a connection (--url, --symbols ignored)",
          command=plant)
    _flag(p, "--speed", key="plant.speed", help="with --replay: max, or a factor such as 1 or 10", command=plant)
    _redis_flags(p, plant, metavar="URL|embedded|none",
                 url="where to write: embedded (a private redis-server on a unix socket, stopped on exit), a URL "
                 "(redis://[user:password@]host:port/db, rediss://..., unix:///path.sock, "
                 "redis+cluster://host:port), or none",
                 partition="partition name in the keys (none: the broker's name)")
    _flag(p, "--stream-maxlen", key="redis.stream_maxlen", type=int,
          help="the tick stream keeps about this many flushes (MAXLEN ~; Redis holds about that many x the "
          "bytes of a flush)", command=plant)
    _flag(p, "--ttl", key="redis.ttl", type=int, help="seconds the latest-state hash outlives the last flush",
          command=plant)
    p.set_defaults(func=_cmd_plant)

    p = sub.add_parser(
        "gateway",
        help="serve the ticks to WebSocket clients and the dashboard",
        description="The WebSocket gateway (docs/protocol.md): reads one partition's live channel from Redis "
        "and fans each flush out to many clients, each with its own watchlist (msgpack or JSON); a client "
        "behind its high-water mark gets the latest tick per instrument when its socket drains, and is closed "
        "past --lag-limit. Serves the dashboard at /, /healthz and /metrics on the same port. Stops cleanly on "
        "SIGINT/SIGTERM. Run several against one Redis (separate ports, or --reuse-port).",
    )
    _config_flag(p)
    gw = "gateway"
    _flag(p, "--host", key="gateway.host", help="listen address", command=gw)
    _flag(p, "--port", key="gateway.port", type=int, help="listen port (0: a free port, printed)", command=gw)
    _redis_flags(p, gw, metavar="URL", url="the Redis the plant writes to (the URL `fastflow plant` prints)",
                 partition="the plant's partition (none: the broker's name, broker.name)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY[=NAME]",
                   help="an API key clients may present (Authorization: Bearer KEY, or ?token=KEY); repeatable; "
                   "added to gateway.api_keys ($FASTFLOW_GATEWAY_API_KEYS: KEY=NAME,KEY2=NAME2). Signed tokens "
                   "are accepted when gateway.token_secret ($FASTFLOW_GATEWAY_TOKEN_SECRET, or the legacy "
                   "$FASTFLOW_TOKEN_SECRET) is set.")
    _flag(p, "--require-auth", key="gateway.require_auth", action="store_const", const=True,
          help="refuse clients without a credential even on loopback (default: loopback needs none)",
          command=gw, show_default=False)
    _flag(p, "--allow-origin", key="gateway.allow_origins", action="append", metavar="ORIGIN",
          help="a browser origin allowed besides the gateway's own (e.g. http://localhost:3000; * for any); "
          "repeatable", command=gw, show_default=False)
    _flag(p, "--allow-host", key="gateway.allow_hosts", action="append", metavar="NAME",
          help="a Host name allowed besides the gateway's own (IP addresses, localhost, this machine's "
          "name), e.g. the public name behind a reverse proxy; * for any; repeatable", command=gw,
          show_default=False)
    _flag(p, "--max-symbols", key="gateway.max_symbols", type=int, help="symbols per client watchlist", command=gw)
    _flag(p, "--high-water", key="gateway.high_water", type=int,
          help="bytes queued on a client's socket above which its ticks are conflated", command=gw)
    _flag(p, "--lag-limit", key="gateway.lag_limit", type=_positive,
          help="seconds a client may stay over the high-water mark before it is closed", command=gw)
    _flag(p, "--reuse-port", key="gateway.reuse_port", action="store_const", const=True,
          help="SO_REUSEPORT: several gateways on one port", command=gw, show_default=False)
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    _flag(p, "--status-every", key="gateway.status_every", type=float,
          help="seconds between status lines (0: none)", command=gw)
    p.set_defaults(func=_cmd_gateway)

    p = sub.add_parser(
        "universe",
        help="write the synthetic instrument master as a Kite dump",
        description="Write the built-in synthetic universe (NIFTY 50, indices, option chains) as a "
        "Kite instruments CSV (gzipped when the name ends in .gz).",
    )
    p.add_argument("--out", required=True, help="output path (.csv or .csv.gz)")
    p.add_argument("--universe", choices=UNIVERSES, default="small",
                   help="small (about 400 instruments, default) or full (about 8,300)")
    p.set_defaults(func=_cmd_universe)

    p = sub.add_parser(
        "instruments",
        help="load a Kite instruments dump and look instruments up",
        description="Load a Kite instruments dump (CSV, plain or gzipped), report errors with line and "
        "column, and print the rows of the given tokens or EXCHANGE:TRADINGSYMBOL symbols.",
    )
    p.add_argument("path", help="instruments dump")
    p.add_argument("keys", nargs="*", help="tokens or symbols to look up")
    p.set_defaults(func=_cmd_instruments)
    p = sub.add_parser(
        "tail",
        help="watch a gateway's live ticks in the terminal",
        description="Connect to a gateway (/ws), subscribe the symbols and print their ticks: a table redrawn "
        "in place when stdout is a terminal, otherwise one line (or with --json one JSON object) per tick. "
        "Reconnects by itself. Exit status: 0 after --count ticks or on Ctrl-C; 1 when the gateway cannot be "
        "reached (--retries attempts in a row failed); 2 for bad usage: refused credentials, no known symbol. "
        "Symbols are normalised as the dashboard does (nse:infy and infy are NSE:INFY); an unknown one gets one "
        "warning line and the known ones are shown.",
    )
    p.add_argument("symbols", nargs="+", metavar="SYMBOL",
                   help="EXCHANGE:TRADINGSYMBOL (e.g. NSE:INFY), Kite instrument token or Upstox instrument key")
    gateway_url = f"ws://{GatewaySection.host}:{GatewaySection.port}/ws"
    p.add_argument("--url", default=gateway_url, help=f"gateway URL (default {gateway_url})")
    credential = p.add_mutually_exclusive_group()
    credential.add_argument("--api-key", default=None,
                            help="an API key of the gateway's configuration (default: $FASTFLOW_API_KEY; on the "
                            "command line it is visible to other local users)")
    credential.add_argument("--token", default=None,
                            help="a signed token (fastflow.gateway.auth.make_token; default: $FASTFLOW_TOKEN)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N ticks")
    p.add_argument("--json", action="store_true", help="one JSON object (the tick map) per line instead of the table")
    p.add_argument("--retries", type=int, default=8,
                   help="connection attempts in a row that may fail before giving up (default 8)")
    p.set_defaults(func=_cmd_tail)
    p = sub.add_parser(
        "flow",
        help="watch a gateway's live options-flow tape in the terminal",
        description="Connect to a gateway (/ws), subscribe its options-flow tape (sweeps, blocks, repeated hits, "
        "unusual activity: docs/flow.md) with the filters given, and print one line per event (the recent ones "
        "first), green when bullish and red when bearish on a terminal; with --json one JSON object per event. "
        "Exit status: 0 after --count events or on Ctrl-C; 1 when the gateway cannot be reached; 2 for bad "
        "usage: refused credentials, a filter the gateway refuses.",
    )
    p.add_argument("--url", default=gateway_url, help=f"gateway URL (default {gateway_url})")
    p.add_argument("--underlying", action="append", metavar="NAME",
                   help="only events on this underlying: an index or stock name (NIFTY, RELIANCE) or its symbol "
                   "(NSE:NIFTY 50); repeat it or separate with commas")
    p.add_argument("--symbol", action="append", metavar="SYMBOL", help="only events of this contract (repeatable)")
    p.add_argument("--kind", action="append", metavar="KIND",
                   help="only these kinds: sweep, block, repeated, unusual (repeatable, or comma-separated)")
    p.add_argument("--min-score", type=float, default=0.0, metavar="N", help="only events scoring at least N (0-100)")
    p.add_argument("--min-premium", type=float, default=0.0, metavar="RUPEES",
                   help="only events of at least this premium in rupees")
    credential = p.add_mutually_exclusive_group()
    credential.add_argument("--api-key", default=None, help="an API key of the gateway (default: $FASTFLOW_API_KEY)")
    credential.add_argument("--token", default=None, help="a signed token (default: $FASTFLOW_TOKEN)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N events")
    p.add_argument("--json", action="store_true", help="one JSON object (the event map) per line")
    p.add_argument("--retries", type=int, default=8,
                   help="connection attempts in a row that may fail before giving up (default 8)")
    p.set_defaults(func=_cmd_flow)

    p = sub.add_parser(
        "login",
        help="log in to Kite or Upstox in a browser and store the day's access token",
        description="The broker's browser login: print the login page's URL (and open it), catch the "
        "browser's redirect on the loopback redirect URL (login.redirect_url, registered with the app), "
        "exchange Kite's request_token (with the api_secret's checksum) or Upstox's code (with the client "
        "secret) for the day's access token, and store it with its expiry, readable only by you, where "
        "plant and run find it (broker.state_dir; docs/configuration.md). broker.api_key and "
        "broker.api_secret come from the configuration ($FASTFLOW_BROKER_API_SECRET; never a flag). Exit "
        "status: 0 logged in; 1 refused by the broker or no redirect in time; 2 bad configuration or the "
        "redirect port busy; 130 Ctrl-C.",
    )
    p.add_argument("broker", nargs="?", choices=BROKERS, help="the broker (default: broker.name)")
    _config_flag(p)
    lg = "login"
    _flag(p, "--api-key", key="broker.api_key", help="the app's api_key (Upstox: its client_id)", command=lg)
    _flag(p, "--redirect-url", key="login.redirect_url",
          help="the app's registered redirect URL: http on a loopback address, with a port; fastflow listens "
          "there", command=lg)
    _flag(p, "--timeout", key="login.timeout", type=_positive, help="seconds to wait for the redirect", command=lg)
    _flag(p, "--no-browser", key="login.open_browser", action="store_const", const=False,
          help="only print the login URL, do not open a browser", command=lg, show_default=False)
    _flag(p, "--api-url", key="broker.api_url",
          help="the REST API of the token exchange (none: the broker's own; a simulator's: fastflow sim prints it)",
          command=lg)
    _flag(p, "--login-url", key="broker.login_url", help="the login page (none: the broker's own)", command=lg)
    p.set_defaults(func=_cmd_login)

    p = sub.add_parser(
        "config",
        help="check the configuration and print the effective one",
        description="Read the configuration (the TOML file: --config, else $FASTFLOW_CONFIG, else "
        "./fastflow.toml if it exists; then the FASTFLOW_* environment variables), validate it and print "
        "the result as TOML, each value with where it came from; secrets are masked. Exit status 2 "
        "(with the key and its source) when it is not valid. See docs/configuration.md.",
    )
    p.add_argument("--config", default=None, metavar="PATH", help="the TOML file (default: as described above)")
    p.add_argument("--json", action="store_true", help="print the masked configuration as JSON instead")
    p.set_defaults(func=_cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:  # Ctrl-C before a command's own handlers are in place: no traceback
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fastflow config | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
