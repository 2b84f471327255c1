"""The ``otel-assist`` command. Subcommands: ``demo`` (what ``make demo`` runs) and
``follow`` (one request's timeline across services, in the terminal)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a TCP port (1..65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-assist",
        description="otel-assist: the OpenTelemetry distribution's command line. "
        "'otel-assist demo' runs the simulated assistant (what 'make demo' runs; needs the "
        "[demo] extra).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run a simulated assistant system with rest_service and its admin pages",
        description="A simulated assistant (telegram bot, assistant worker, telegram sender, "
        "cron) instrumented with otel_assist, with rest_service serving the API, the admin "
        "pages and /metrics. Embedded Redis and SQLite unless REDIS_URL / DATABASE_URL are "
        "set; OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )
    demo.add_argument(
        "--duration",
        type=_non_negative,
        default=0.0,
        help="seconds to run, then stop cleanly (default 0: until Ctrl-C)",
    )
    demo.add_argument(
        "--rate", type=_positive, default=2.0, help="user messages per second (default 2)"
    )
    demo.add_argument(
        "--seed", type=int, default=None, help="random seed (default: a new one, printed)"
    )
    demo.add_argument("--port", type=_port, default=8000, help="rest_service port (default 8000)")
    demo.add_argument(
        "--host", default="127.0.0.1", help="rest_service address (default 127.0.0.1)"
    )
    demo.add_argument(
        "--workers", type=int, default=3, help="assistant consumers of to_secretary (default 3)"
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".otel-assist"),
        help="where the SQLite database, log file and history spool live (default .otel-assist)",
    )
    demo.add_argument(
        "--log-file", type=Path, default=None, help="log file (default STATE_DIR/demo.log)"
    )
    follow = sub.add_parser(
        "follow",
        help="print one request's timeline across services (log lines, queue hops, job runs)",
        description="Everything recorded under CORRELATION_ID, in time order, with the gaps "
        "and a waterfall: log lines from Loki (LOKI_URL, LOKI_ORG_ID, LOKI_USERNAME/"
        "LOKI_PASSWORD) and queue messages and job runs from rest_service's database "
        "(DATABASE_URL, else the embedded SQLite file). Loki unreachable: the database part "
        "is printed with a notice.",
    )
    follow.add_argument("correlation_id", metavar="CORRELATION_ID")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from otel_assist.extras import exit_unless_installed

        exit_unless_installed("demo", "otel-assist demo")
        from otel_assist_demo.runner import DemoOptions, run

        options = DemoOptions(
            duration_s=args.duration,
            rate=args.rate,
            seed=args.seed,
            host=args.host,
            port=args.port,
            workers=max(1, args.workers),
            state_dir=args.state_dir,
            log_file=args.log_file,
        )
        try:
            return asyncio.run(run(options))
        except KeyboardInterrupt:
            print(
                "\notel-assist demo: interrupted twice, stopped without flushing", file=sys.stderr
            )
            return 130
    if args.command == "follow":
        # rest_service reads the history tables; imported here so the library itself never
        # depends on it (like the demo).
        from rest_service import follow

        return follow.main(args.correlation_id)
    return 2


if __name__ == "__main__":
    sys.exit(main())
