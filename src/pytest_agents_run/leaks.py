"""What a test left behind in its infra: jobs not done, outbox rows not published, subscriptions
not closed."""

from __future__ import annotations

from agents_run import Infra
from pytest_agents_run.recording import open_subscription_run_ids
from pytest_agents_run.wording import counted


class InfraLeakWarning(UserWarning):
    """A passing test left work in its infra. Filter it like any warning, e.g.
    ``@pytest.mark.filterwarnings("ignore::pytest_agents_run.InfraLeakWarning")``."""


async def find_leaks(infra: Infra) -> list[str]:
    """One line per kind of leftover, each saying how to deal with it; empty where none."""
    leaks = []
    counts = await infra.queue.counts()
    if counts.total:
        leaks.append(
            f"{counted(counts.total, 'job')} not done ({counts.waiting} waiting, "
            f"{counts.active} active; run them: await run_until_idle())"
        )
    pending = await infra.store.count_pending_outbox()
    if pending:
        leaks.append(
            f"{counted(pending, 'outbox row')} unpublished "
            "(await publish_pending_outbox_events_once())"
        )
    subscribed = open_subscription_run_ids(infra)
    if subscribed:
        leaks.append(
            f"{counted(len(subscribed), 'subscription')} open on {', '.join(sorted(subscribed))} "
            "(read the stream to its end, or close it: contextlib.aclosing(stream_run(...)))"
        )
    return leaks
