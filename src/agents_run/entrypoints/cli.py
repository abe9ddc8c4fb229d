"""The ``agents-run`` command. Every subcommand reads its infrastructure from the environment."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import logging
import math
import os
import sys
from collections.abc import Sequence

from agents_run.application.agents import registered_agents
from agents_run.application.cancel_run import cancel_run
from agents_run.application.infra import DEFAULT_LEASE_SECONDS, get_infra, set_infra
from agents_run.application.processes import serve_publisher, serve_worker
from agents_run.application.start_run import start_run
from agents_run.application.stream_run import stream_run
from agents_run.application.sweep_runs import DEFAULT_ORPHAN_AFTER
from agents_run.config import (
    LEASE_SECONDS,
    MEMORY_URL,
    check_deployment,
    load_infra_for_serving,
    load_infra_from_config,
    read_config,
)
from agents_run.entrypoints import guardrails, histories
from agents_run.entrypoints.demo import run_demo
from agents_run.entrypoints.formatting import format_event
from agents_run.entrypoints.shutdown import hold_signals, shutdown_on_signals
from agents_run.errors import AgentsRunError, InvalidArgument
from agents_run.redaction import redact

log = logging.getLogger("agents_run.cli")

# start_run saves a run, then enqueues its job within one connect timeout (5 s by default): a
# sweeper must not take a run in that gap for an orphan.
MIN_ORPHAN_AFTER = 60.0
HTTP_TOKEN = "AGENTS_RUN_HTTP_TOKEN"


async def _start(args: argparse.Namespace) -> int:
    try:
        run_input = json.loads(args.input)
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"--input is not JSON: {error}") from None  # exit status 2
    print(await start_run(args.agent, run_input))
    return 0


async def _tail(args: argparse.Namespace) -> int:
    async for event in stream_run(args.run_id, args.from_seq, idle_timeout=args.idle_timeout):
        print(format_event(event), flush=True)
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    requested = await cancel_run(args.run_id)
    print("cancellation requested" if requested else "already cancelled or ended")
    return 0


async def _db_init(args: argparse.Namespace) -> int:
    await get_infra().store.create_schema()
    print(f"store schema ready: {redact(read_config().store_url)}")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    return await run_demo(print)


async def _worker(args: argparse.Namespace) -> int:
    draining, stop = asyncio.Event(), asyncio.Event()
    if args.lease_seconds is not None:
        set_infra(dataclasses.replace(get_infra(), lease_seconds=args.lease_seconds))
    # A second signal, or the end of the grace period, stops runs at their next step.
    with shutdown_on_signals(draining, stop, grace=args.grace):
        await check_deployment(get_infra())  # a signal meanwhile drains a worker not yet started
        log.info(  # once the handlers are in: whoever waits for this line may signal at once
            "worker started: concurrency %d, agents %s; lease %gs; runs with no live job end "
            "after %gs",
            args.concurrency,
            ", ".join(registered_agents()),
            get_infra().lease_seconds,
            args.orphan_after,
        )
        jobs = await serve_worker(
            draining=draining,
            stop=stop,
            concurrency=args.concurrency,
            orphan_after=args.orphan_after,
        )
    log.info("worker stopped after %d job(s)", jobs)
    return 0


async def _publisher(args: argparse.Namespace) -> int:
    # Draining is all a publisher does: it finishes the batch in hand and returns.
    draining = asyncio.Event()
    with shutdown_on_signals(draining, asyncio.Event()):
        await check_deployment(get_infra())
        log.info("publisher started")
        published = await serve_publisher(stop=draining)
    log.info("publisher stopped after %d event(s)", published)
    return 0


def _import_agent_modules(modules: str) -> None:
    for name in filter(None, (part.strip() for part in modules.split(","))):
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise InvalidArgument(
                f"--agents: cannot import {name!r} ({error}); give importable module names, "
                "comma-separated, that call register_agent"
            ) from error


async def _serve(args: argparse.Namespace) -> int:
    in_process_worker = args.in_process_worker
    if in_process_worker is None:
        # What lives in this process's memory only this process can work on.
        config = read_config()
        in_process_worker = MEMORY_URL in (config.bus_url, config.queue_url, config.store_url)
    # Imported here: the HTTP server is an extra (agents-run[http]) the other commands do without.
    from agents_run.entrypoints.serve import serve  # noqa: PLC0415
    from agents_run.http.app import create_app  # noqa: PLC0415
    from agents_run.http.serving import bearer_token_auth, default_allowed_hosts  # noqa: PLC0415

    await check_deployment(get_infra())
    allowed_hosts = args.allowed_host or default_allowed_hosts(args.host)
    app = create_app(
        allowed_hosts=allowed_hosts,
        cors_origins=args.cors_origin,
        auth=bearer_token_auth(os.environ.get(HTTP_TOKEN, "")),
    )
    try:
        return await serve(
            app,
            args.host,
            args.port,
            in_process_worker=in_process_worker,
            concurrency=args.concurrency,
            grace=args.grace,
            say=_say_now,
        )
    except OSError as error:
        raise SystemExit(
            f"agents-run serve: cannot listen on {args.host}:{args.port}: {error}"
        ) from None


def _say_now(line: str) -> None:
    print(line, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agents-run",
        description="Start, execute, stream and cancel agent runs. Infrastructure comes from "
        "AGENTS_RUN_BUS_URL, AGENTS_RUN_QUEUE_URL, AGENTS_RUN_STORE_URL (default memory://).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    with_agents = argparse.ArgumentParser(add_help=False)
    with_agents.add_argument(
        "--agents",
        default="",
        metavar="MODULE,...",
        help="modules to import first; they register agents with register_agent",
    )

    guardrails.add_command(commands)
    histories.add_commands(commands, with_agents)
    demo = commands.add_parser("demo", help="start, run, stream and cancel a few echo runs")
    demo.set_defaults(handler=_demo)

    worker = commands.add_parser(
        "worker", parents=[with_agents], help="execute queued runs until SIGTERM"
    )
    worker.add_argument("--concurrency", type=_positive_int, default=1, metavar="N")
    worker.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="after SIGTERM, how long runs in progress may go on before they stop at their "
        "next step (default 10)",
    )
    worker.add_argument(
        "--orphan-after",
        type=_orphan_age,
        default=DEFAULT_ORPHAN_AFTER,
        metavar="SECONDS",
        help="end a queued or running run that has not changed for this long and has no live "
        f"job: its job failed every attempt or was lost (default {DEFAULT_ORPHAN_AFTER:g}, "
        f"at least {MIN_ORPHAN_AFTER:g})",
    )
    worker.add_argument(
        "--lease-seconds",
        type=_lease_seconds,
        default=None,
        metavar="SECONDS",
        help="how long this worker holds a run without renewing it; another worker takes a run "
        f"over about this long after its worker died (default {LEASE_SECONDS} or "
        f"{DEFAULT_LEASE_SECONDS:g})",
    )
    worker.set_defaults(handler=_worker)

    publisher = commands.add_parser(
        "publisher", help="publish the outbox to the bus as events are appended, until SIGTERM"
    )
    publisher.set_defaults(handler=_publisher)

    start = commands.add_parser("start", parents=[with_agents], help="start a run, print its id")
    start.add_argument("agent")
    start.add_argument("--input", default="{}", help="the run's input as a JSON object")
    start.set_defaults(handler=_start)

    tail = commands.add_parser("tail", help="print a run's events, backfill then live")
    tail.add_argument("run_id")
    tail.add_argument("--from-seq", type=int, default=None, metavar="N")
    tail.add_argument("--idle-timeout", type=float, default=300.0, metavar="SECONDS")
    tail.set_defaults(handler=_tail)

    cancel = commands.add_parser("cancel", help="request a run's cancellation")
    cancel.add_argument("run_id")
    cancel.set_defaults(handler=_cancel)

    db = commands.add_parser("db", help="manage the store's schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_init = db_commands.add_parser(
        "init", help="create the store's tables where missing (idempotent)"
    )
    db_init.set_defaults(handler=_db_init)

    serve = commands.add_parser(
        "serve",
        parents=[with_agents],
        help="the HTTP API with server-sent events (docs/http-api.md)",
        description="Serve POST /runs, GET /runs/ID, GET /runs/ID/events (server-sent events) "
        "and POST /runs/ID/cancel until SIGINT or SIGTERM.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    workers = serve.add_mutually_exclusive_group()
    workers.add_argument(
        "--with-worker",
        dest="in_process_worker",
        action="store_true",
        default=None,
        help="run a worker and an outbox publisher in this process (the default where any of "
        "the bus, queue or store is memory://)",
    )
    workers.add_argument(
        "--without-worker",
        dest="in_process_worker",
        action="store_false",
        help="serve only; workers and publishers run as their own processes (the default where "
        "the bus, queue and store are all shared servers)",
    )
    serve.add_argument(
        "--grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with the in-process worker: after SIGTERM, how long runs in progress may go on "
        "before they stop at their next step; a second signal stops them at once (default 10)",
    )
    serve.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        metavar="N",
        help="with the in-process worker: how many runs it executes at once (default 4)",
    )
    serve.add_argument(
        "--max-finished-runs",
        type=_non_negative_int,
        default=10_000,
        metavar="N",
        help="with the in-memory store: how many ended runs it keeps, the oldest forgotten "
        "first (default 10000)",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name the server answers for (repeatable; '*' for any); default the "
        "loopback names when bound to loopback, else required",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin that browsers may call the API from (repeatable); default none",
    )
    serve.set_defaults(handler=_serve)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _lease_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 3600], got {text!r}")
    return seconds


def _orphan_age(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds >= MIN_ORPHAN_AFTER or math.isinf(seconds):
        raise argparse.ArgumentTypeError(
            f"expected finite seconds >= {MIN_ORPHAN_AFTER:g}, got {text!r}: a run is saved before "
            "its job is enqueued, so a shorter age could end a run whose job is still being added"
        )
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in {"worker", "publisher"}:
        hold_signals()  # a SIGTERM while importing agents or connecting drains once started
    # The long-running processes log a line per run; the one-shot commands only what went wrong.
    long_running = args.command in {"worker", "publisher", "serve"}
    logging.basicConfig(
        level=logging.INFO if long_running else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "guardrails":  # file work only: no agents, no infra
            return guardrails.run(args)
        _import_agent_modules(getattr(args, "agents", ""))
        if args.command == "serve":
            load_infra_for_serving(max_finished_runs=args.max_finished_runs)
        else:
            load_infra_from_config()

        async def run() -> int:
            try:
                code: int = await args.handler(args)
                return code
            finally:
                await get_infra().aclose()

        code = asyncio.run(run())
        sys.stdout.flush()  # here, so that a reader gone away is noticed below, not at exit
        return code
    except AgentsRunError as error:
        print(f"agents-run {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`agents-run tail RUN | head`): stop quietly, as `cat` would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
