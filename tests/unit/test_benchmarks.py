"""The benchmarks' own arithmetic, and a smoke run of the in-memory figure (P5): benchmarks time
nothing here; they must only keep running (``make bench`` measures)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from benchmarks.many_sse_clients import sse_client
from benchmarks.measure import Figure, alternate, ratios, table
from benchmarks.p5_in_memory import harness, pipeline


def figure(values: list[float], *, higher_is_better: bool, limit: float | None) -> Figure:
    return Figure(
        "P0", "a measure", "an anchor", values, "a target",
        higher_is_better=higher_is_better, limit=limit,
    )  # fmt: skip


def test_a_figure_quotes_the_median_and_spread_and_judges_its_target() -> None:
    faster = figure([0.6, 0.4, 0.9], higher_is_better=True, limit=0.5)
    assert faster.median == 0.6
    assert faster.meets_target is True
    assert "| 0.60x | 0.40x to 0.90x | 3 |" in faster.row()
    assert figure([1.2, 1.3], higher_is_better=False, limit=1.1).meets_target is False
    assert figure([1.0], higher_is_better=False, limit=None).meets_target is None
    assert table([faster]).splitlines()[2] == faster.row()


def test_paired_sides_take_turns_going_first() -> None:
    order: list[str] = []

    def side(name: str) -> float:
        order.append(name)
        return float(len(order))

    first, second = alternate(3, lambda: side("a"), lambda: side("b"))
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert ratios(first, second) == [1 / 2, 4 / 3, 5 / 6]


@pytest.mark.parametrize("contender", [harness, pipeline])
async def test_the_in_memory_figure_runs_start_to_stream(
    contender: Callable[[int], Awaitable[float]],
) -> None:
    assert await contender(20) > 0  # each checks that every event was streamed


async def serve_sse(seqs: list[int]) -> tuple[asyncio.Server, int]:
    """A server answering any request with a chunked stream of these seqs, the last finished."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for seq in seqs:
            kind = "RunFinished" if seq == seqs[-1] else "RunStep"
            event = f"id: {seq}\nevent: {kind}\ndata: {{}}\n\n".encode()
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_an_sse_client_of_the_many_clients_benchmark_checks_every_seq_once_in_order() -> None:
    for seqs, complete in [([1, 2, 3], True), ([1, 3, 2], False), ([1, 2, 2, 3], False)]:
        server, port = await serve_sse(seqs)
        async with server:
            reading = sse_client(port, "run-1", 3, asyncio.Event())
            if complete:
                assert await reading == 3
            else:
                with pytest.raises(AssertionError, match="run-1: seqs"):
                    await reading
