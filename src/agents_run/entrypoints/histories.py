"""``agents-run replay`` and ``agents-run export``: check a run's history against the agent code
installed now, and save it as a file for CI (docs/durability.md, "Replaying histories in CI")."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from agents_run.application.replay_history import (
    DEFAULT_REPLAY_TIMEOUT,
    load_history,
    read_history,
    replay_history,
)
from agents_run.errors import InvalidArgument, NondeterministicReplay, ReplayTimedOut

# Exit codes of replay: 0 reproduced, 1 departed (or timed out), 2 bad usage or unknown run/agent.
DEPARTED = 1


def add_commands(commands: Any, with_agents: argparse.ArgumentParser) -> None:
    """The ``replay`` and ``export`` subcommands (``commands``: the CLI's subparsers)."""
    replay = commands.add_parser(
        "replay",
        parents=[with_agents],
        help="replay a stored run (or a saved history) against the installed agent code",
        description="Run the agent of a stored run (RUN_ID) or of a history file (--file) "
        "against its record, writing nothing. Exit 0 where it reproduces the record (up to its "
        "end, or where a running run's record stops), 1 with the first difference where it "
        "does not, 2 for bad usage or an unknown run or agent.",
    )
    replay.add_argument("run_id", nargs="?", metavar="RUN_ID")
    replay.add_argument(
        "--file", metavar="FILE", help="a history written by agents-run export, instead of RUN_ID"
    )
    replay.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_REPLAY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up (exit 1) after this long (default {DEFAULT_REPLAY_TIMEOUT:g})",
    )
    replay.set_defaults(handler=_replay)

    export = commands.add_parser(
        "export",
        help="write a stored run's history as JSON, for agents-run replay --file and CI",
    )
    export.add_argument("run_id", metavar="RUN_ID")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write it there instead of standard output"
    )
    export.set_defaults(handler=_export)


async def _replay(args: argparse.Namespace) -> int:
    if (args.run_id is None) == (args.file is None):
        raise InvalidArgument("give a RUN_ID or --file FILE (one of them)")
    source = load_history(args.file) if args.file else await read_history(args.run_id)
    try:
        report = await replay_history(source, timeout=args.timeout)
    except (NondeterministicReplay, ReplayTimedOut) as error:
        print(f"agents-run replay: {type(error).__name__}: {error}", file=sys.stderr)
        return DEPARTED
    print(report.summary())
    return 0


async def _export(args: argparse.Namespace) -> int:
    history = await read_history(args.run_id)
    text = json.dumps(history.to_json(), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
    except OSError as error:
        raise InvalidArgument(f"--output: cannot write {args.output!r}: {error}") from None
    print(f"run {history.run_id}: {len(history.events)} events written to {args.output}")
    return 0
