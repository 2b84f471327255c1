"""A log workload for the LogQL tests, run as its own process against the real Collector.

``python -m tests.loki.log_workload --service S --events a,b,c --correlation-id C --user-id U``
logs one line for every (event_type, level) pair through ``otel_assist`` (structlog -> OTLP
-> Collector -> Loki stand-in), every line under the correlation id and carrying the user
id, then shuts telemetry down so every record is exported before the process exits.
"""

from __future__ import annotations

import argparse
import logging

import otel_assist
from otel_assist.correlation import correlation_scope

LEVELS = ("debug", "info", "warning", "error", "critical")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--correlation-id", required=True)
    parser.add_argument("--user-id", type=int, required=True)
    parser.add_argument("--verb", default="processed")
    args = parser.parse_args()
    telemetry = otel_assist.configure(service_name=args.service)
    # At DEBUG, urllib3 logs every OTLP export POST, and that line is exported in turn: a
    # feedback loop (thousands of records a second; reported with issue 11). Keep urllib3
    # at INFO so the workload's own lines are what reaches Loki.
    logging.getLogger("urllib3").setLevel(logging.INFO)
    log = otel_assist.get_logger("log_workload")
    with correlation_scope(args.correlation_id):
        for event_type in args.events.split(","):
            for level in LEVELS:
                getattr(log, level)(
                    f"workload {event_type} {args.verb} at {level}",
                    event_type=event_type,
                    user_id=args.user_id,
                )
    telemetry.shutdown()


if __name__ == "__main__":
    main()
