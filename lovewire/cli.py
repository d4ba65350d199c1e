"""`lovewire serve` and `lovewire schema`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from lovewire import collector, eventloop
from lovewire.config import Settings, load_settings
from lovewire.storage.errors import BackendUnavailable, StoreError
from lovewire.workers import StartFailed, refusal, supervise

__all__ = ["main", "schema"]

log = logging.getLogger("lovewire")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lovewire", description="lovewire real-time server")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the server (the default)")
    serve.add_argument("--config", help="TOML settings file (or LOVEWIRE_CONFIG)")
    # A worker of `--workers N` (lovewire.workers): its supervisor's pid.
    serve.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)
    for name, field in Settings.model_fields.items():
        serve.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            metavar="VALUE",
            help=f"LOVEWIRE_{name.upper()} (default: {field.default})",
        )
    schema_cmd = commands.add_parser("schema", help="print the JSON Schema of every message")
    schema_cmd.add_argument("--output", "-o", help="write to this file instead of stdout")
    schema_cmd.add_argument(
        "--asyncapi",
        action="store_true",
        help="print an AsyncAPI 3.0 document instead (channel, operations, messages)",
    )
    return parser


def schema() -> dict[str, Any]:
    """The JSON Schema of every message, keyed by model name."""
    from protocol import Request, all_messages

    messages: dict[str, Any] = {}
    for model in all_messages():
        if issubclass(model, Request):
            messages[model.__name__] = model.model_json_schema(mode="validation")
        else:
            messages[model.__name__] = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "lovewire messages",
        "messages": messages,
    }


class _NoWireTraffic(logging.Filter):
    """Keep websockets' lines that carry no traffic: no frame, header or request line.

    websockets starts its debug lines with `<` (received) or `>` (sent) when they show
    what crossed the wire (a frame's contents: codes, tokens, tels), with `!` when they
    carry a failure that may quote it; its state, keepalive and closing lines (`=`, `%`,
    `-`, `x`) and everything at INFO and above are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        return isinstance(record.msg, str) and record.msg[:2] in ("= ", "% ", "- ", "x ")


class _NoRequestData(logging.Filter):
    """Log an unparsable HTTP request's error by its kind only: its text quotes the request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            kind = type(record.exc_info[1]).__name__
            record.msg = f"{record.getMessage()}: {kind}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _configure_logging(level: str, pid: bool = False) -> None:
    """Log to stderr at `level`; at no level a frame's contents or a query's parameters.

    `pid`: each line names its process (several workers share one log).
    """
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s"
        + ("[%(process)d]" if pid else "")
        + ": %(message)s",
    )
    if level.upper() != "DEBUG":
        # One line per socket opened and closed is too much at thousands of sockets.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    for name in ("websockets.server", "websockets.client"):
        logging.getLogger(name).addFilter(_NoWireTraffic())
    logging.getLogger("aiohttp.server").addFilter(_NoRequestData())
    # aiosqlite logs every statement with its parameters at DEBUG (tels, code hashes).
    floor = max(logging.INFO, logging.getLogger().level)
    logging.getLogger("aiosqlite").setLevel(floor)


async def serve(settings: Settings, worker_of: int | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly.

    `worker_of`: the pid of the supervisor of `--workers N`; the ports are shared with
    the other workers, and the process stops if that supervisor is gone.
    """
    from handlers import TABLES
    from lovewire.app import Lovewire
    from lovewire.metrics import mark_process_dead

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reuse_port = worker_of is not None
    try:
        async with Lovewire(settings, tables=TABLES, reuse_port=reuse_port) as app:
            collector.settle()
            thawing = asyncio.create_task(collector.thaw_forever())
            print(app.listening_line, flush=True)
            log.info("%s (event loop: %s)", app.listening_line, _loop_kind())
            if worker_of is not None:
                orphaned = asyncio.create_task(_orphaned(worker_of, stop))
            await stop.wait()
            log.info("shutting down")
            thawing.cancel()
            if worker_of is not None:
                orphaned.cancel()
    finally:
        mark_process_dead()  # its sockets leave a shared scrape's gauges
    log.info("stopped")


def _loop_kind() -> str:
    """`uvloop` or `asyncio`: the package of the running loop's class."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


async def _orphaned(supervisor: int, stop: asyncio.Event) -> None:
    """Stop a worker whose supervisor is gone (killed: it could not pass a SIGTERM on)."""
    while os.getppid() == supervisor:  # noqa: ASYNC110 (no event says a parent died)
        await asyncio.sleep(1)
    log.warning("supervisor %d gone: stopping", supervisor)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        if args.asyncapi:
            from lovewire.asyncapi import asyncapi

            document = asyncapi()
        else:
            document = schema()
        text = json.dumps(document, ensure_ascii=False, indent=2)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        else:
            try:
                print(text, flush=True)
            except BrokenPipeError:
                # `lovewire schema | head`: the reader has all it wanted.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    flags = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    try:
        settings = load_settings(getattr(args, "config", None), **flags)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"lovewire: bad settings: {exc}", file=sys.stderr)
        return 2
    worker_of = getattr(args, "worker_of", None)
    supervised = settings.workers > 1 and worker_of is None
    if supervised and (reason := refusal(settings)):
        print(f"lovewire: {reason}", file=sys.stderr)
        return 2
    try:
        new_loop = eventloop.loop_factory(settings.event_loop)
    except ValueError as exc:
        print(f"lovewire: bad settings: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level, pid=settings.workers > 1)
    try:
        eventloop.run(supervise(settings) if supervised else serve(settings, worker_of), new_loop)
    except KeyboardInterrupt:
        pass
    except (OSError, BackendUnavailable, StoreError, StartFailed) as exc:
        # A port already taken, an address not on this host, a database this build
        # cannot use or that refuses to be set up: the operator's to fix.
        print(f"lovewire: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
