"""Every EventBusPort adapter behaves alike."""

from __future__ import annotations

import asyncio
import itertools

from agents_run import RunEvent
from agents_run.ports import EventBusPort

_ids = itertools.count(1)
WAIT = 2.0


def run_id() -> str:
    return f"contract-bus-run-{next(_ids)}"


def step(run: str, seq: int) -> RunEvent:
    return RunEvent(run_id=run, seq=seq, type="RunStep", data={"n": seq})


async def test_a_subscriber_gets_events_published_after_it_subscribed_in_order(
    bus: EventBusPort,
) -> None:
    run = run_id()
    await bus.publish(step(run, 1))  # before the subscription: not delivered
    subscription = await bus.subscribe(run)
    for seq in (2, 3, 4):
        await bus.publish(step(run, seq))
    received = [await subscription.next_event(WAIT) for _ in range(3)]
    assert received == [step(run, 2), step(run, 3), step(run, 4)]
    await subscription.aclose()


async def test_each_subscriber_gets_each_event_exactly_once(bus: EventBusPort) -> None:
    run = run_id()
    first = await bus.subscribe(run)
    second = await bus.subscribe(run)
    await bus.publish(step(run, 1))
    for subscription in (first, second):
        assert await subscription.next_event(WAIT) == step(run, 1)
        assert await subscription.next_event(0.2) is None
        await subscription.aclose()


async def test_a_subscriber_sees_only_its_own_run(bus: EventBusPort) -> None:
    mine, other = run_id(), run_id()
    subscription = await bus.subscribe(mine)
    await bus.publish(step(other, 1))
    await bus.publish(step(mine, 1))
    assert await subscription.next_event(WAIT) == step(mine, 1)
    assert await subscription.next_event(0.2) is None
    await subscription.aclose()


async def test_waiting_on_a_quiet_run_ends_at_the_timeout(bus: EventBusPort) -> None:
    subscription = await bus.subscribe(run_id())
    assert await subscription.next_event(0.05) is None
    await subscription.aclose()


async def test_a_closed_subscription_receives_nothing_and_closes_twice(bus: EventBusPort) -> None:
    run = run_id()
    subscription = await bus.subscribe(run)
    await subscription.aclose()
    await bus.publish(step(run, 1))
    assert await subscription.next_event(0.05) is None
    await subscription.aclose()


async def test_event_data_survives_the_trip(bus: EventBusPort) -> None:
    run = run_id()
    subscription = await bus.subscribe(run)
    event = RunEvent(run, 1, "RunFailed", {"error_type": "E", "message": "é ✓", "n": [1.5]})
    await bus.publish(event)
    assert await subscription.next_event(WAIT) == event
    await subscription.aclose()


async def test_many_events_reach_every_subscriber_in_order_exactly_once(bus: EventBusPort) -> None:
    run = run_id()
    subscriptions = [await bus.subscribe(run) for _ in range(3)]
    events = [step(run, seq) for seq in range(1, 101)]
    for event in events:
        await bus.publish(event)
    for subscription in subscriptions:
        assert [await subscription.next_event(WAIT) for _ in events] == events
        assert await subscription.next_event(0.1) is None
        await subscription.aclose()


async def test_closing_one_subscription_leaves_the_others_receiving(bus: EventBusPort) -> None:
    run = run_id()
    closed, open_ = await bus.subscribe(run), await bus.subscribe(run)
    await closed.aclose()
    await bus.publish(step(run, 1))
    assert await open_.next_event(WAIT) == step(run, 1)
    assert await closed.next_event(0.05) is None
    await open_.aclose()


async def test_async_for_yields_the_events_in_order(bus: EventBusPort) -> None:
    run = run_id()
    subscription = await bus.subscribe(run)
    for seq in (1, 2, 3):
        await bus.publish(step(run, seq))
    received: list[RunEvent] = []
    async with asyncio.timeout(WAIT):
        async for event in subscription:
            received.append(event)
            if len(received) == 3:
                break
    assert received == [step(run, 1), step(run, 2), step(run, 3)]
    await subscription.aclose()


async def test_closing_the_bus_closes_its_subscriptions_and_is_idempotent(
    bus: EventBusPort,
) -> None:
    subscription = await bus.subscribe(run_id())
    await bus.aclose()
    assert await subscription.next_event(0.05) is None
    await bus.aclose()


async def test_a_batch_reaches_each_run_s_subscribers_in_order_as_single_publishes_do(
    bus: EventBusPort,
) -> None:
    mine, other = run_id(), run_id()
    subscription = await bus.subscribe(mine)
    await bus.publish_batch([step(mine, 1), step(other, 1), step(mine, 2), step(mine, 3)])
    await bus.publish_batch([])
    received = [await subscription.next_event(WAIT) for _ in range(3)]
    assert received == [step(mine, 1), step(mine, 2), step(mine, 3)]
    assert await subscription.next_event(0.2) is None
    await subscription.aclose()
