"""The ``fastflow`` command line. Every subcommand has ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fastflow import __version__


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _cmd_run(args: argparse.Namespace) -> int:
    from fastflow.run import DEFAULT_WATCHLIST, RunOptions, run

    watch = tuple(s.strip() for s in args.watch.split(",") if s.strip()) if args.watch else DEFAULT_WATCHLIST
    options = RunOptions(rate=args.rate, mode=args.mode, duration=args.duration, watchlist=watch, seed=args.seed)
    try:
        run(options)
    except KeyError as exc:
        print(f"fastflow run: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from fastflow.sim.kite_server import Fault, KiteSimConfig, KiteSimulator, run_faults
    from fastflow.sim.market import KiteMarket
    from fastflow.sim.universe import kite_universe, write_kite_csv

    if args.broker != "kite":
        print("fastflow sim: the Upstox simulator is not built yet (only --broker kite)", file=sys.stderr)
        return 2
    try:
        faults = [Fault.parse(text) for text in args.fault]
    except ValueError as exc:
        print(f"fastflow sim: {exc}", file=sys.stderr)
        return 2
    rows = kite_universe()
    if args.instruments_out:
        write_kite_csv(rows, args.instruments_out)
    config = KiteSimConfig(api_key=args.api_key, access_token=args.access_token, rate=args.rate, seed=args.seed)
    simulator = KiteSimulator(KiteMarket.from_rows(rows, seed=args.seed), config)

    async def main() -> None:
        await simulator.start(args.host, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        url = f"ws://{args.host}:{simulator.port}/?api_key={args.api_key}&access_token={args.access_token}"
        print(f"fastflow sim: Kite ticker on {url} ({len(rows)} instruments, {args.rate:,.0f} packets/s)",
              flush=True)
        faulting = asyncio.create_task(run_faults(simulator, faults, lambda m: print(f"fastflow sim: {m}", flush=True)))
        with contextlib.suppress(TimeoutError):  # --duration elapsed
            await asyncio.wait_for(stop.wait(), args.duration)
        faulting.cancel()
        await simulator.stop()
        print(f"fastflow sim: stopped; {simulator.stats}", flush=True)

    asyncio.run(main())
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal

    from fastflow.hotpath import KiteDecoder, MarketState
    from fastflow.ingest.capture import CaptureWriter
    from fastflow.ingest.kite_session import KiteSession
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastflow",
        description="fastflow: a real-time market-data tick plant for Indian brokers.",
    )
    parser.add_argument("--version", action="version", version=f"fastflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "run",
        help="run the main job on its embedded default",
        description="Run the main job. Today: the synthetic Kite market through the compiled hot path, "
        "with a live terminal table (Redis, gateway and dashboard come in later releases).",
    )
    p.add_argument("--rate", type=_positive, default=20_000.0, help="packets per second (default 20000)")
    p.add_argument("--mode", choices=["ltp", "quote", "full"], default="full", help="packet mode (default full)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--watch", default="", help="comma-separated symbols, e.g. 'NSE:INFY,NSE:NIFTY 50'")
    p.add_argument("--seed", type=int, default=0, help="market random seed (default 0)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "sim",
        help="run a local broker that speaks the real wire protocol",
        description="A local broker for demos and tests: Kite's ticker WebSocket (403 on bad credentials, "
        "subscribe/unsubscribe/mode, binary frames, heartbeats, limits) over the synthetic market.",
    )
    p.add_argument("--broker", choices=["kite", "upstox"], default="kite", help="wire protocol (default kite)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="listen port (default: a free port, printed)")
    p.add_argument("--api-key", default="fastflow", help="api_key the clients must present")
    p.add_argument("--access-token", default="sim-token", help="access_token the clients must present")
    p.add_argument("--instruments-out", default="", help="write the instrument dump here (.csv or .csv.gz)")
    p.add_argument("--rate", type=_positive, default=10_000.0, help="packets per second, all connections")
    p.add_argument("--seed", type=int, default=0, help="market random seed (default 0)")
    p.add_argument("--duration", type=_positive, default=None, help="stop after this many seconds")
    p.add_argument("--fault", action="append", default=[], metavar="NAME@SECONDS[:DURATION]",
                   help="inject a fault: drop@10 (abort connections), silence@20:5 (half-open for 5 s), "
                   "garbage@3 (malformed frame), expire@30 (403 on reconnect); repeatable")
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
    p.add_argument("--mode", choices=["ltp", "quote", "full"], default="full", help="subscription mode")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
