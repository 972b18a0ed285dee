"""`excap bench safety`: the built-in benchmark of how fast the command path goes neutral when operator input fails
(JSON on stdout)."""

from __future__ import annotations

import argparse
import json

from excap.cli.arguments import positive


def add_bench_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    bench = commands.add_parser("bench", help="built-in benchmarks (JSON)")
    bench_kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    safety = bench_kinds.add_parser("safety", help="worst and p99 time to neutral over injected input losses")
    safety.add_argument("--losses", type=int, default=90, help="injected losses (default: %(default)s)")
    safety.add_argument("--rate", type=positive(float), default=50.0, help="command rate Hz (default: %(default)s)")
    safety.add_argument("--timeout-ms", type=positive(float), default=100.0,
                        help="input stale timeout (default: %(default)s)")
    return bench


def cmd_bench(args: argparse.Namespace) -> int:
    from excap.station.safety_bench import run_safety_bench

    result = run_safety_bench(losses=args.losses, rate_hz=args.rate, timeout_s=args.timeout_ms / 1000.0)
    print(json.dumps(result, indent=2))
    return 0
