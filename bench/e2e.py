"""The end-to-end latency suite, from the bench/ folder: simulator -> plant ->
Redis -> gateway -> N msgpack WebSocket clients, all over loopback.

    .venv/bin/python bench/e2e.py                  # the full matrix and rate search (about 10 minutes)
    .venv/bin/python bench/e2e.py --quick          # 1k and 20k ticks/s x 10 and 100 clients, no search
    .venv/bin/python bench/e2e.py --rates 1000,50000 --clients 10 --search ""

This is ``fastflow bench e2e [options]`` (what ``make bench-e2e`` runs), with
the same options (see ``--help``): the arguments go through the CLI's own
parser (:func:`fastflow.cli.build_parser`) to :func:`fastflow.tools.e2e.main`, so
the method, defaults and output are the same whichever way it starts. It writes
bench/results/e2e.md (the table: end-to-end p50 / p99 / p99.9 and the p99 per
stage, for each rate and client count, and the highest rate with p99 under
50 ms), e2e.json (every figure) and e2e.png (the plot, with matplotlib) to
``--out`` (default bench/results); the method is in :mod:`fastflow.tools.e2e`.

The short form that ``make test`` runs (one two-second run, sanity checks only)
is bench/bench_e2e.py.
"""

from __future__ import annotations

import sys

from fastflow.cli import build_parser
from fastflow.tools import e2e


def main(argv: list[str] | None = None) -> int:
    """``fastflow bench e2e *argv`` (default: this script's arguments)."""
    args = build_parser().parse_args(["bench", "e2e", *(sys.argv[1:] if argv is None else argv)])
    return e2e.main(args)


if __name__ == "__main__":
    # e2e.json records the command from sys.argv when it reads "fastflow bench e2e ...":
    # say it that way, so the results show the options this run had.
    sys.argv = ["fastflow", "bench", "e2e", *sys.argv[1:]]
    sys.exit(main(sys.argv[3:]))
