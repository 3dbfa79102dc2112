"""The ``fastflow`` command line. Every subcommand has ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from fastflow import __version__

T = TypeVar("T")


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a long-lived service on uvloop (the plant and the gateway), asyncio's loop without it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        import asyncio

        return asyncio.run(main)
    return uvloop.run(main)


def _cmd_run(args: argparse.Namespace) -> int:
    from fastflow.config import ConfigError, load_config
    from fastflow.services.supervisor import run

    overrides: dict[str, object] = {}
    if args.broker is not None:
        overrides["broker.name"] = args.broker
    if args.port is not None:
        overrides["gateway.port"] = args.port
    if args.rate is not None:
        overrides["simulator.rate"] = args.rate
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"fastflow run: {exc}", file=sys.stderr)
        return 2
    return run(config, duration=args.duration, verbose=args.verbose)


def _cmd_bench(args: argparse.Namespace) -> int:
    from fastflow.tools import e2e

    return e2e.main(args)


def _cmd_sim(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from fastflow.sim.faults import Fault, FaultTarget, run_faults

    try:
        faults = [Fault.parse(text) for text in args.fault]
    except ValueError as exc:
        print(f"fastflow sim: {exc}", file=sys.stderr)
        return 2
    simulator: FaultTarget
    if args.broker == "kite":
        from fastflow.sim.kite_server import KiteSimConfig, KiteSimulator
        from fastflow.sim.market import KiteMarket
        from fastflow.sim.universe import kite_universe, write_kite_csv

        rows = kite_universe()
        if args.instruments_out:
            write_kite_csv(rows, args.instruments_out)
        kite = KiteSimulator(KiteMarket.from_rows(rows, seed=args.seed), KiteSimConfig(
            api_key=args.api_key, access_token=args.access_token, rate=args.rate, seed=args.seed))
        simulator, size = kite, len(rows)
    else:
        from fastflow.sim.universe import write_upstox_json
        from fastflow.sim.upstox_market import UpstoxMarket, upstox_pairs
        from fastflow.sim.upstox_server import UpstoxSimConfig, UpstoxSimulator

        kite_rows, records = upstox_pairs()
        if args.instruments_out:
            write_upstox_json(records, args.instruments_out)
        upstox = UpstoxSimulator(UpstoxMarket(kite_rows, records, seed=args.seed), UpstoxSimConfig(
            access_token=args.access_token, rate=args.rate, seed=args.seed))
        simulator, size = upstox, len(records)

    async def main() -> None:
        if args.broker == "kite":
            await kite.start(args.host, args.port)
            port = kite.port
            where = f"Kite ticker on ws://{args.host}:{port}/?api_key={args.api_key}&access_token={args.access_token}"
        else:
            await upstox.start(args.host, args.port)
            port = upstox.port
            where = (f"Upstox feed on http://{args.host}:{port} (authorize: GET /v3/feed/market-data-feed/authorize "
                     f"with Authorization: Bearer {args.access_token})")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"fastflow sim: {where} ({size} instruments, {args.rate:,.0f} packets/s)", flush=True)
        faulting = asyncio.create_task(run_faults(simulator, faults, lambda m: print(f"fastflow sim: {m}", flush=True)))
        with contextlib.suppress(TimeoutError):  # --duration elapsed
            await asyncio.wait_for(stop.wait(), args.duration)
        faulting.cancel()
        await (kite.stop() if args.broker == "kite" else upstox.stop())
        stats = kite.stats if args.broker == "kite" else upstox.stats
        print(f"fastflow sim: stopped; {stats}", flush=True)

    asyncio.run(main())
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from fastflow.brokers.kite.session import KiteSession
    from fastflow.hotpath import KiteDecoder, MarketState
    from fastflow.ingest.capture import CaptureWriter
    from fastflow.ingest.replay import load_instruments

    instruments = load_instruments("kite", args.instruments)
    try:
        tokens = [instruments.token_of(s.strip()) for s in args.symbols.split(",") if s.strip()]
    except KeyError as exc:
        print(f"fastflow record: {exc.args[0]}", file=sys.stderr)
        return 2
    state = MarketState(instruments)
    with CaptureWriter(args.out, broker="kite", instruments=args.instruments or "synthetic") as writer:
        session = KiteSession(
            KiteDecoder(state), api_key=args.api_key, access_token=args.access_token, url=args.url,
            subscriptions=dict.fromkeys(tokens, args.mode), on_frame=writer.append,
        )

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
        print(f"fastflow record: {writer.records} frames to {args.out}; session {session.health()}")
    return 0 if session.state != "auth_failed" else 1


def _cmd_replay(args: argparse.Namespace) -> int:
    from fastflow.hotpath import MarketState
    from fastflow.ingest.capture import CaptureError, CaptureReader
    from fastflow.ingest.replay import load_instruments, replay

    try:
        reader = CaptureReader(args.path)
        source = args.instruments or str(reader.header.get("instruments", ""))
        state = MarketState(load_instruments(reader.broker, source))
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


def _broker_credentials(api_key: str | None, access_token: str | None) -> tuple[str, str]:
    """``fastflow plant``'s api_key and access_token: the flags, else
    ``$FASTFLOW_BROKER_API_KEY`` / ``$FASTFLOW_BROKER_ACCESS_TOKEN`` (so that a
    parent never puts them on a command line), else the simulator's."""
    import os

    if api_key is None:
        api_key = os.environ.get("FASTFLOW_BROKER_API_KEY") or "fastflow"
    if access_token is None:
        access_token = os.environ.get("FASTFLOW_BROKER_ACCESS_TOKEN") or "sim-token"
    return api_key, access_token


def _cmd_plant(args: argparse.Namespace) -> int:
    from fastflow.ingest.capture import CaptureError, CaptureReader
    from fastflow.ingest.replay import load_instruments
    from fastflow.instruments import InstrumentError
    from fastflow.services.plant import Plant, resolve_subscriptions, serve_plant

    def fail(message: str) -> int:
        print(f"fastflow plant: {message}", file=sys.stderr)
        return 2

    try:
        speed = None if args.speed == "max" else float(args.speed)
    except ValueError:
        return fail(f"--speed takes max or a number, not {args.speed!r}")
    if speed is not None and not speed > 0:
        return fail("--speed must be > 0")
    subscriptions: dict[Any, str] = {}
    try:
        if args.replay:
            reader = CaptureReader(args.replay)
            broker = reader.broker
            if args.broker not in (None, broker):
                return fail(f"{args.replay} is a {broker} capture, not {args.broker}")
            instruments = load_instruments(broker, args.instruments or str(reader.header.get("instruments", "")))
        else:
            broker = args.broker or "kite"
            modes = ("ltpc", "full", "option_greeks", "full_d30") if broker == "upstox" else ("ltp", "quote", "full")
            if args.mode not in modes:
                return fail(f"--mode {args.mode} is not a {broker} mode; expected one of {', '.join(modes)}")
            if not args.symbols and not args.all:
                return fail("say what to subscribe: --symbols NSE:INFY,... or --all")
            instruments = load_instruments(broker, args.instruments)
            symbols = None if args.all else [s.strip() for s in args.symbols.split(",") if s.strip()]
            subscriptions, note = resolve_subscriptions(instruments, symbols, args.mode)
            if note:
                print(f"fastflow plant: {note}", file=sys.stderr, flush=True)
    except KeyError as exc:
        return fail(str(exc.args[0]))
    except (CaptureError, InstrumentError, OSError, ValueError) as exc:
        return fail(str(exc))
    api_key, access_token = _broker_credentials(args.api_key, args.access_token)
    options: dict[str, Any]
    if broker == "upstox":
        url = args.url or "https://api.upstox.com"
        options = {"access_token": access_token, "api_url": url, "watchdog": args.watchdog}
    else:
        url = args.url or "wss://ws.kite.trade"
        options = {"api_key": api_key, "access_token": access_token, "url": url, "watchdog": args.watchdog}
    try:
        plant = Plant(broker, instruments, subscriptions, ingest_options=options,
                      replay=args.replay or None, speed=speed)
    except (NotImplementedError, ValueError) as exc:
        return fail(str(exc))

    def report(message: str) -> None:
        print(f"fastflow plant: {message}", flush=True)

    from fastflow.store.embedded import EmbeddedRedis, RedisServerError
    from fastflow.store.keys import Keys
    from fastflow.store.target import RedisTarget
    from fastflow.store.writer import RedisWriter

    embedded: EmbeddedRedis | None = None
    if args.redis != "none":
        try:
            keys = Keys(args.partition or broker, prefix=args.redis_prefix)
            if args.redis == "embedded":
                embedded = EmbeddedRedis().start()
                target = RedisTarget.parse(embedded.url)
                report(f"redis: {embedded.url} (embedded redis-server, stopped on exit)")
            else:
                target = RedisTarget.parse(args.redis, cluster=True if args.redis_cluster else None)
                report(f"redis: {target}")
            writer = RedisWriter(plant.state, target, keys, maxlen=args.stream_maxlen, ttl=args.ttl)
        except (ValueError, RedisServerError) as exc:
            if embedded is not None:
                embedded.stop()
            return fail(str(exc))
        plant.attach_store(writer, writer.on_flush)

    if args.replay:
        report(f"replaying {args.replay} ({broker}, speed {args.speed}) into {len(instruments)} instruments")
    else:
        connections = len(plant.ingest.health()["connections"])
        report(f"{broker}: {len(subscriptions)} instruments in {args.mode} mode from {url} "
               f"over {connections} connection(s)")
    try:
        _run_loop(serve_plant(plant, health_host=args.health_host, health_port=args.health_port,
                              duration=args.duration, status_every=args.status_every, report=report,
                              handle_signals=True))
    finally:
        if embedded is not None:
            embedded.stop()
    health = plant.health()
    states = ", ".join(str(c.get("state")) for c in health["ingest"]["connections"])
    report(f"stopped after {plant.uptime:.1f} s: {plant.ticks:,} ticks in {plant.flushes:,} flushes; "
           f"connections {states}; decoder {health['decoder']}")
    if health["state"] == "auth_failed":
        print("fastflow plant: the broker refused the access token (circuit breaker open): renew it",
              file=sys.stderr)
        return 1
    return 0


def _gateway_credentials(flags: Sequence[str]) -> tuple[dict[str, str], str]:
    """``fastflow gateway``'s API keys (key -> client name) and token secret:
    ``$FASTFLOW_GATEWAY_API_KEYS`` (``key=name,key2=name2``) plus the
    ``--api-key`` flags (which win), and ``$FASTFLOW_GATEWAY_TOKEN_SECRET``,
    else the legacy ``$FASTFLOW_TOKEN_SECRET``. ValueError says what is malformed."""
    import os

    from fastflow.config import parse_api_keys

    try:
        keys = parse_api_keys(os.environ.get("FASTFLOW_GATEWAY_API_KEYS", ""))
    except ValueError as exc:
        raise ValueError(f"FASTFLOW_GATEWAY_API_KEYS: {exc}") from None
    for item in flags:
        key, eq, name = item.partition("=")
        if not key:
            raise ValueError(f"--api-key takes KEY or KEY=NAME, not {item!r}")
        keys[key] = name if eq and name else "api-key"
    secret = os.environ.get("FASTFLOW_GATEWAY_TOKEN_SECRET", os.environ.get("FASTFLOW_TOKEN_SECRET", ""))
    return keys, secret


def _cmd_gateway(args: argparse.Namespace) -> int:
    from fastflow.gateway.auth import Auth
    from fastflow.gateway.server import GatewayConfig, serve_gateway
    from fastflow.store.keys import Keys
    from fastflow.store.target import RedisTarget

    def fail(message: str) -> int:
        print(f"fastflow gateway: {message}", file=sys.stderr)
        return 2

    try:
        keys, secret = _gateway_credentials(args.api_key)
    except ValueError as exc:
        return fail(str(exc))
    try:
        config = GatewayConfig(
            redis=RedisTarget.parse(args.redis, cluster=True if args.redis_cluster else None),
            keys=Keys(args.partition, prefix=args.redis_prefix), host=args.host, port=args.port,
            auth=Auth(keys, secret.encode(), allow_loopback=not args.require_auth),
            allowed_origins=tuple(args.allow_origin), max_symbols=args.max_symbols,
            high_water=args.high_water, lag_limit=args.lag_limit, reuse_port=args.reuse_port)
    except ValueError as exc:
        return fail(str(exc))

    def report(message: str) -> None:
        print(f"fastflow gateway: {message}", flush=True)

    try:
        _run_loop(serve_gateway(config, duration=args.duration, status_every=args.status_every, report=report))
    except OSError as exc:
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    return 0


def _cmd_universe(args: argparse.Namespace) -> int:
    from fastflow.sim.universe import kite_universe, write_kite_csv

    rows = kite_universe()
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
    options = TailOptions(url=args.url, symbols=symbols, api_key=args.api_key, token=args.token,
                          count=args.count, json=args.json, retries=args.retries)
    try:
        return asyncio.run(tail(options))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return 0


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
        "dies stops the run with its last log lines (exit 1); a bad configuration exits 2. "
        "Configuration: fastflow.toml (or --config / FASTFLOW_CONFIG) and FASTFLOW_* variables; see "
        "`fastflow config` and docs/configuration.md.",
    )
    p.add_argument("--config", default=None, metavar="FILE", help="TOML configuration (default: ./fastflow.toml if any)")
    p.add_argument("--broker", choices=["kite", "upstox"], default=None, help="broker (default: the configuration's, kite)")
    p.add_argument("--port", type=int, default=None, help="gateway and dashboard port (default 8765; 0: a free port)")
    p.add_argument("--rate", type=_positive, default=None, help="simulator packets per second (default 20000)")
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
    p.add_argument("--broker", choices=["kite", "upstox"], default="kite", help="wire protocol (default kite)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="listen port (default: a free port, printed)")
    p.add_argument("--api-key", default="fastflow", help="api_key the clients must present (Kite)")
    p.add_argument("--access-token", default="sim-token", help="access_token the clients must present")
    p.add_argument("--instruments-out", default="", help="write the instrument dump here (Kite: .csv[.gz]; Upstox: .json[.gz])")
    p.add_argument("--rate", type=_positive, default=10_000.0, help="packets (Upstox: feeds) per second, all connections")
    p.add_argument("--seed", type=int, default=0, help="market random seed (default 0)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--fault", action="append", default=[], metavar="NAME@SECONDS[:DURATION]",
                   help="inject a fault: drop@10 (abort connections), silence@20:5 (half-open for 5 s), "
                   "garbage@3 (malformed frame), expire@30 (auth refused on reconnect), slow@5:10[:F] (rate / F "
                   "for 10 s), burst@8:3 (data held 3 s, then sent at once); repeatable")
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser(
        "record",
        help="capture a Kite feed's raw frames to a file",
        description="Connect to a Kite ticker (the real one or `fastflow sim`), subscribe, and append every "
        "raw frame with its receive time to a capture file (format: fastflow/ingest/capture.py).",
    )
    p.add_argument("--out", required=True, help="capture file (appended to if it exists)")
    p.add_argument("--url", default="wss://ws.kite.trade", help="ticker URL (e.g. ws://127.0.0.1:PORT/)")
    p.add_argument("--api-key", default="fastflow", help="api_key")
    p.add_argument("--access-token", default="sim-token", help="access_token")
    p.add_argument("--symbols", default="NSE:INFY,NSE:RELIANCE,NSE:NIFTY 50", help="comma-separated symbols")
    p.add_argument("--mode", choices=["ltp", "quote", "full", "ltpc", "option_greeks", "full_d30"], default="full",
                   help="subscription mode: Kite ltp|quote|full, Upstox ltpc|full|option_greeks|full_d30 "
                   "(default full)")
    p.add_argument("--instruments", default="", help="Kite instruments dump (default: the synthetic universe)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
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
    p.add_argument("--broker", choices=["kite", "upstox"], default=None,
                   help="broker (default kite; with --replay, the capture's)")
    p.add_argument("--url", default=None,
                   help="Kite: the ticker URL (default wss://ws.kite.trade; the simulator: ws://127.0.0.1:PORT/); "
                   "Upstox: the API base the feed is authorized at (default https://api.upstox.com; the "
                   "simulator: http://127.0.0.1:PORT)")
    p.add_argument("--api-key", default=None,
                   help="Kite api_key (default: $FASTFLOW_BROKER_API_KEY, else the simulator's)")
    p.add_argument("--access-token", default=None,
                   help="access_token (default: $FASTFLOW_BROKER_ACCESS_TOKEN, else the simulator's; prefer the "
                   "variable: a command line is visible to every user of the machine)")
    p.add_argument("--instruments", default="",
                   help="instrument master: a Kite CSV or an Upstox JSON[.gz] (default: the synthetic universe "
                   "`fastflow sim` serves)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--symbols", default="", help="comma-separated EXCHANGE:TRADINGSYMBOLs or tokens")
    what.add_argument("--all", action="store_true",
                      help="every instrument of the master, up to what one plant may subscribe (Kite: 9000 "
                   "tokens per api_key; Upstox: the connection's cap for the mode)")
    p.add_argument("--mode", choices=["ltp", "quote", "full", "ltpc", "option_greeks", "full_d30"], default="full",
                   help="subscription mode: Kite ltp|quote|full, Upstox ltpc|full|option_greeks|full_d30 "
                   "(default full)")
    p.add_argument("--watchdog", type=_positive, default=5.0,
                   help="seconds without a frame before a connection counts as dead (default 5)")
    p.add_argument("--health-host", default="127.0.0.1", help="/healthz listen address (default 127.0.0.1)")
    p.add_argument("--health-port", type=int, default=0, help="/healthz port (default 0: a free port, printed)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--status-every", type=_positive, default=5.0, help="seconds between status lines")
    p.add_argument("--replay", default="", metavar="FILE",
                   help="drive the state from this capture instead of a connection (--url, --symbols ignored)")
    p.add_argument("--speed", default="max", help="with --replay: max (default), or a factor such as 1 or 10")
    p.add_argument("--redis", default="embedded", metavar="URL|embedded|none",
                   help="where to write: embedded (default: a private redis-server on a unix socket, stopped on "
                   "exit), a URL (redis://[user:password@]host:port/db, rediss://..., unix:///path.sock, "
                   "redis+cluster://host:port), or none")
    p.add_argument("--redis-cluster", action="store_true", help="the --redis URL is a Redis Cluster node")
    p.add_argument("--redis-prefix", default="ff", help="key prefix (default ff)")
    p.add_argument("--partition", default="", help="partition name in the keys (default: the broker)")
    p.add_argument("--stream-maxlen", type=int, default=1_000,
                   help="the tick stream keeps about this many flushes (MAXLEN ~; default 1000; Redis holds about that many x the bytes of a flush)")
    p.add_argument("--ttl", type=int, default=86_400, help="seconds the latest-state hash outlives the last flush")
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
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="listen port (default 8765; 0: a free port, printed)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", metavar="URL",
                   help="the Redis the plant writes to (the URL `fastflow plant` prints; default "
                   "redis://127.0.0.1:6379/0)")
    p.add_argument("--redis-cluster", action="store_true", help="the --redis URL is a Redis Cluster node")
    p.add_argument("--redis-prefix", default="ff", help="key prefix (default ff)")
    p.add_argument("--partition", default="kite", help="the plant's partition (default kite)")
    p.add_argument("--api-key", action="append", default=[], metavar="KEY[=NAME]",
                   help="an API key clients may present (Authorization: Bearer KEY, or ?token=KEY); repeatable; "
                   "added to $FASTFLOW_GATEWAY_API_KEYS (KEY=NAME,KEY2=NAME2). Signed tokens are accepted when "
                   "$FASTFLOW_GATEWAY_TOKEN_SECRET (or the legacy $FASTFLOW_TOKEN_SECRET) is set.")
    p.add_argument("--require-auth", action="store_true",
                   help="refuse clients without a credential even on loopback (default: loopback needs none)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a browser origin allowed besides the gateway's own (e.g. http://localhost:3000; * for any)")
    p.add_argument("--max-symbols", type=int, default=1000, help="symbols per client watchlist (default 1000)")
    p.add_argument("--high-water", type=int, default=256 * 1024,
                   help="bytes queued on a client's socket above which its ticks are conflated (default 262144)")
    p.add_argument("--lag-limit", type=_positive, default=10.0,
                   help="seconds a client may stay over the high-water mark before it is closed (default 10)")
    p.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT: several gateways on one port")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--status-every", type=float, default=0.0, help="seconds between status lines (default: none)")
    p.set_defaults(func=_cmd_gateway)

    p = sub.add_parser(
        "universe",
        help="write the synthetic instrument master as a Kite dump",
        description="Write the built-in synthetic universe (NIFTY 50, indices, option chains) as a "
        "Kite instruments CSV (gzipped when the name ends in .gz).",
    )
    p.add_argument("--out", required=True, help="output path (.csv or .csv.gz)")
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
        "reached (--retries attempts in a row failed); 2 for bad usage: refused credentials, unknown symbols.",
    )
    p.add_argument("symbols", nargs="+", metavar="SYMBOL",
                   help="EXCHANGE:TRADINGSYMBOL (e.g. NSE:INFY), Kite instrument token or Upstox instrument key")
    p.add_argument("--url", default="ws://127.0.0.1:8765/ws", help="gateway URL (default ws://127.0.0.1:8765/ws)")
    credential = p.add_mutually_exclusive_group()
    credential.add_argument("--api-key", default=None, help="an API key of the gateway's configuration")
    credential.add_argument("--token", default=None, help="a signed token (fastflow.gateway.auth.make_token)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N ticks")
    p.add_argument("--json", action="store_true", help="one JSON object (the tick map) per line instead of the table")
    p.add_argument("--retries", type=int, default=8,
                   help="connection attempts in a row that may fail before giving up (default 8)")
    p.set_defaults(func=_cmd_tail)

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
    status: int = args.func(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
