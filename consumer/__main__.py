"""``python -m consumer`` — run the service, or an operator command.

Commands::

    python -m consumer [run]        consume image-uploaded, classify, upsert (default)
    python -m consumer migrate      create/upgrade the PostgreSQL schema (idempotent)
    python -m consumer replay --from 2026-12-01T00:00:00Z
                                    reset the group's offsets to a time (consumers stopped)
    python -m consumer redrive [--reason R]
                                    re-publish dead letters to the input topic

Every setting is a flag and a ``CLAZZIFY_*`` environment variable; see
``python -m consumer run --help``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from consumer import logs, settings as settings_mod
from consumer.errors import ClazzifyError, FatalError

logger = logging.getLogger("consumer")


def _cmd_run(cfg: settings_mod.Settings, _args: argparse.Namespace) -> int:
    from consumer.app import App

    app = App(cfg)

    def stop(signum: int, _frame: object) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        app.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app.start()
    app.run()
    return 0


def _cmd_migrate(cfg: settings_mod.Settings, _args: argparse.Namespace) -> int:
    from consumer.store import Store

    store = Store(cfg.database_url.get_secret_value(), cfg.database_schema)
    try:
        version = store.migrate()
    finally:
        store.close()
    print(f"schema {cfg.database_schema} at version {version}")
    return 0


def _cmd_replay(cfg: settings_mod.Settings, args: argparse.Namespace) -> int:
    from consumer.operate import replay

    return replay(cfg, args.from_time, dry_run=args.dry_run)


def _cmd_redrive(cfg: settings_mod.Settings, args: argparse.Namespace) -> int:
    from consumer.operate import redrive

    return redrive(cfg, reasons=args.reason, limit=args.limit, dry_run=args.dry_run,
                   idle_timeout_s=args.idle_timeout)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer", description=__doc__.split("\n\n")[0],
        epilog="Run 'python -m consumer COMMAND --help' for a command's settings.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, tuple[str, Callable]] = {
        "run": ("consume, classify, upsert (the service; default)", _cmd_run),
        "migrate": ("create or upgrade the database schema, idempotently", _cmd_migrate),
        "replay": ("reset the consumer group's offsets to a time (stop the consumers first)", _cmd_replay),
        "redrive": ("re-publish dead letters to the input topic, optionally only some reasons", _cmd_redrive),
    }
    for name, (help_text, fn) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=fn)
        if name == "replay":
            p.add_argument("--from", dest="from_time", required=True, metavar="TIMESTAMP",
                           help="ISO-8601 time (e.g. 2026-12-01T00:00:00Z) or epoch ms; offsets go back to the "
                                "first record at or after it")
            p.add_argument("--dry-run", action="store_true", help="print the offsets, change nothing")
        if name == "redrive":
            p.add_argument("--reason", action="append", default=[], metavar="REASON",
                           help="only dead letters with this clazzify.error.reason (repeatable); default: all")
            p.add_argument("--limit", type=int, default=0, help="stop after this many re-published (0: no limit)")
            p.add_argument("--idle-timeout", type=float, default=5.0,
                           help="stop when no dead letter arrived for this many seconds")
            p.add_argument("--dry-run", action="store_true", help="count what would be re-published")
        settings_mod.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        cfg = settings_mod.load(args)
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logs.configure(cfg.log_level, cfg.log_format)
    try:
        return int(args.func(cfg, args))
    except FatalError as exc:
        logger.error("fatal: %s", exc)
        return 1
    except ClazzifyError as exc:
        logger.error("failed: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
