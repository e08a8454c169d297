"""`python -m localservices up|down|status|env` — run the real Kafka and PostgreSQL locally.

    eval "$(python -m localservices up)"     # start (idempotent), export the endpoints
    pytest tests/integration
    python -m localservices down             # stop; --purge also deletes the data
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import NotConfiguredError, ServiceError
from .stack import LocalServices, default_workdir, remove_jar_cache, render_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m localservices",
        description="Start, stop and inspect the real local Kafka broker and PostgreSQL server "
        "used for development, demos and integration tests.",
    )
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--dir", type=Path, default=None, metavar="PATH",
        help="folder for jars, data, logs and state (env CLAZZIFY_SERVICES_DIR; "
        "default: .services at the repository root)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", parents=[parent], help="start both services (idempotent) and print export lines",
                        description="Fetch the Kafka jars if needed (Maven), start Kafka and PostgreSQL "
                        "as daemons on free loopback ports, wait until both accept clients, then print "
                        "`export CLAZZIFY_...` lines (also written to DIR/env). Already running: just print.")
    up.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                    help="start-up limit, not counting a first jar download (default 120)")
    up.add_argument("--quiet", action="store_true", help="no progress messages on stderr")

    down = sub.add_parser("down", parents=[parent], help="stop both services",
                          description="Stop Kafka (SIGTERM, SIGKILL after 60 s) and PostgreSQL "
                          "(pg_ctl stop -m fast). Data is kept unless --purge.")
    down.add_argument("--purge", action="store_true", help="also delete data, logs and state (keeps the jar cache)")
    down.add_argument("--purge-jars", action="store_true", help="also delete the cached Kafka jars")

    status = sub.add_parser("status", parents=[parent], help="show whether each service runs and answers",
                            description="Show each service's state; exit 0 if both are ready, 3 otherwise.")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("env", parents=[parent], help="print the export lines for running services",
                   description="Print `export CLAZZIFY_KAFKA_BOOTSTRAP=... CLAZZIFY_DATABASE_URL=... "
                   "CLAZZIFY_SERVICES_DIR=...`; exit 3 if the services are not running.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    services = LocalServices(args.dir.absolute() if args.dir else default_workdir())
    try:
        if args.command == "up":
            print(render_env(services.up(timeout=args.timeout, quiet=args.quiet)), end="")
            return 0
        if args.command == "down":
            services.down(purge=args.purge)
            if args.purge_jars:
                remove_jar_cache(services.lib_dir)
            return 0
        if args.command == "status":
            report = services.status()
            ok = all(s["ready"] for s in report.values())
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                for name, s in report.items():
                    where = s.get("bootstrap") or s.get("url") or "-"
                    state = "ready" if s["ready"] else ("running" if s["running"] else "stopped")
                    print(f"{name:9} {state:8} {where}  log={s['log']}")
            return 0 if ok else 3
        if args.command == "env":
            if not (services.kafka.is_running() and services.postgres.is_running()):
                print("localservices: not running; start them with `python -m localservices up`", file=sys.stderr)
                return 3
            print(render_env(services.env()), end="")
            return 0
    except NotConfiguredError as exc:
        print(f"localservices: {exc}", file=sys.stderr)
        return 3
    except ServiceError as exc:
        print(f"localservices: {args.command} failed: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
