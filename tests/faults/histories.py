"""Every stream checked against the store, Jepsen-style: the store's history of a run is the
truth (gap-free seqs, exactly one terminal event, last); a stream from ``from_seq`` must have
yielded exactly that history's suffix, each event once, in order, equal to the stored one."""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Iterable
from pathlib import Path

from agents_run import RunEvent
from agents_run.ports import RunStorePort

TERMINAL_TYPES = {"RunFinished", "RunFailed", "RunCancelled"}


@dataclasses.dataclass
class Checked:
    """What the check saw, for the figures of docs/reliability.md."""

    runs: int = 0
    streams: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.runs} runs, {self.streams} streams, {self.events} streamed events checked: "
            f"lost {self.lost}, duplicated {self.duplicated}, reordered {self.reordered}"
        )


@dataclasses.dataclass(frozen=True)
class Streamed:
    """What one client received of ``run_id``, having asked from ``from_seq``."""

    run_id: str
    from_seq: int
    events: list[RunEvent]


def _check_history(run_id: str, stored: list[RunEvent], checked: Checked) -> None:
    seqs = [event.seq for event in stored]
    if seqs != list(range(1, len(stored) + 1)):
        checked.problems.append(f"{run_id}: stored seqs are not 1..{len(stored)}: {seqs}")
    terminals = [event.seq for event in stored if event.type in TERMINAL_TYPES]
    if terminals != [len(stored)]:
        checked.problems.append(f"{run_id}: terminal events at seqs {terminals}, of {len(stored)}")


def _check_stream(stream: Streamed, stored: list[RunEvent], checked: Checked) -> None:
    expected = [event for event in stored if event.seq >= stream.from_seq]
    got = [event.seq for event in stream.events]
    counts = collections.Counter(got)
    lost = [event.seq for event in expected if event.seq not in counts]
    duplicated = sorted(seq for seq, count in counts.items() if count > 1)
    reordered = sum(1 for before, after in itertools.pairwise(got) if after < before)
    checked.streams += 1
    checked.events += len(got)
    checked.lost += len(lost)
    checked.duplicated += sum(counts[seq] - 1 for seq in duplicated)
    checked.reordered += reordered
    by_seq = {event.seq: event for event in stored}
    unknown = [seq for seq in counts if seq not in by_seq]
    changed = [e.seq for e in stream.events if e.seq in by_seq and e != by_seq[e.seq]]
    where = f"{stream.run_id} from seq {stream.from_seq}"
    for what, seqs in [
        ("lost", lost),
        ("duplicated", duplicated),
        ("not in the store", unknown),
        ("different from the store", changed),
    ]:
        if seqs:
            checked.problems.append(f"{where}: seqs {what}: {seqs[:20]}")
    if reordered:
        checked.problems.append(f"{where}: {reordered} events out of order: {got[:40]}")


async def check_against_store(store: RunStorePort, streams: Iterable[Streamed]) -> Checked:
    """Compare every stream with its run's stored history; raise AssertionError naming every
    problem (stored history broken, events lost, duplicated, reordered or changed)."""
    checked = Checked()
    histories: dict[str, list[RunEvent]] = {}
    for stream in streams:
        if stream.run_id not in histories:
            histories[stream.run_id] = await store.read_events(stream.run_id)
            _check_history(stream.run_id, histories[stream.run_id], checked)
        _check_stream(stream, histories[stream.run_id], checked)
    checked.runs = len(histories)
    assert not checked.problems, f"{checked}:\n" + "\n".join(checked.problems[:50])
    return checked


def step_executions(log: Path) -> collections.Counter[tuple[str, int]]:
    """How many times each (run id, step index) of ``counted-steps`` executed, from its log."""
    executions: collections.Counter[tuple[str, int]] = collections.Counter()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            run_id, index, _pid = line.split()
            executions[(run_id, int(index))] += 1
    return executions


def counted_steps_problems(
    runs: Iterable[Streamed], log: Path, steps: int, *, kills_per_run: int = 1
) -> list[str]:
    """What breaks, in runs of ``counted-steps`` with ``steps`` steps whose workers were killed,
    "the run finished, its stream got each step once in order, and each step executed once,
    except the one in flight at each kill, which may have run twice"."""
    executions = step_executions(log)
    problems = []
    for run in runs:
        if not run.events or run.events[-1].type != "RunFinished":
            last = run.events[-1] if run.events else None
            problems.append(f"{run.run_id}: did not finish: {last}")
        yielded = [event.data["step"] for event in run.events if event.type == "RunStep"]
        if yielded != list(range(steps)):
            problems.append(f"{run.run_id}: streamed steps {yielded}")
        counts = [executions[(run.run_id, index)] for index in range(steps)]
        again = sum(count - 1 for count in counts if count > 1)
        if 0 in counts or again > kills_per_run:
            problems.append(f"{run.run_id}: executions per step {counts}")
    return problems
