"""The HTTP API beside a minimal Starlette + uvicorn app doing the same work, in one run.

    .venv/bin/python -m benchmarks.http_api [--starts 2000] [--events 2000] [--rounds 3]

Both serve the same in-memory infra on loopback; the same raw HTTP/1.1 client drives both:

- ``POST /runs``: ``--starts`` requests from 10 keep-alive connections at once.
- SSE replay: 10 clients read a finished run of ``--events`` steps from the store.
- SSE live: 50 clients subscribe to a queued run, then a worker and a publisher run it.

The minimal app has none of the guards (Host, content type, JSON limits, deadlines, keep-alive
comments, read-ahead): the ratio is what they cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agents_run import (
    Infra,
    publish_pending_outbox_events_once,
    register_agent,
    run_until_idle,
    run_worker_once,
    start_run,
    stream_run,
    use_infra,
)
from agents_run.domain.json_data import JsonObject
from agents_run.http import create_app
from agents_run.http.serving import running_server
from agents_run.http.sse import format_sse

DEADLINE = 120.0


def minimal_app() -> Starlette:
    """The same endpoints done the obvious way: no guards, one send per event."""

    async def start(request: Request) -> Response:
        body = json.loads(await request.body())
        run_id = await start_run(body["agent"], body.get("input", {}))
        return JSONResponse({"run_id": run_id}, status_code=201)

    async def events(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            async for event in stream_run(request.path_params["run_id"], poll_interval=0.05):
                yield format_sse(event)

        return StreamingResponse(body(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/runs", start, methods=["POST"]),
            Route("/runs/{run_id}/events", events, methods=["GET"]),
        ]
    )


async def post_runs(port: int, starts: int, connections: int = 10) -> float:
    body = json.dumps({"agent": "echo", "input": {"text": "a"}}).encode()
    head = (
        f"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def client(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(count):
                writer.write(head + body)
                answer = await reader.readuntil(b"\r\n\r\n")
                if not answer.startswith(b"HTTP/1.1 201"):
                    raise RuntimeError(f"POST /runs answered {answer[:40]!r}")
                length = int(answer.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(starts // connections) for _ in range(connections)))
    return (starts // connections * connections) / (time.perf_counter() - started)


async def read_stream(port: int, run_id: str, subscribed: asyncio.Event | None = None) -> int:
    """The number of events of the run's stream, read to its end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        if subscribed is not None:
            subscribed.set()
        received = bytearray()
        while chunk := await reader.read(1 << 16):
            received += chunk
        return received.count(b"\nevent: ")
    finally:
        writer.close()


async def replay(port: int, run_id: str, events: int, clients: int = 10) -> float:
    started = time.perf_counter()
    counts = await asyncio.gather(*(read_stream(port, run_id) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    if any(count != events + 2 for count in counts):
        raise RuntimeError(f"a replay lost events: {counts}")
    return sum(counts) / elapsed


async def live(port: int, events: int, clients: int = 50) -> float:
    run_id = await start_run("bench-steps", {"steps": events})
    ready = [asyncio.Event() for _ in range(clients)]
    readers = [asyncio.create_task(read_stream(port, run_id, event)) for event in ready]
    await asyncio.gather(*(event.wait() for event in ready))
    await asyncio.sleep(0.2)  # every stream past its backfill, waiting on the bus
    started = time.perf_counter()
    worker = asyncio.create_task(run_worker_once())
    while not worker.done():
        await publish_pending_outbox_events_once()
        await asyncio.sleep(0)
    await worker
    await publish_pending_outbox_events_once()
    counts = await asyncio.gather(*readers)
    elapsed = time.perf_counter() - started
    if any(count != events + 2 for count in counts):
        raise RuntimeError(f"a live stream lost events: {counts}")
    return sum(counts) / elapsed


@contextlib.asynccontextmanager
async def plain_uvicorn(app: Starlette) -> AsyncIterator[int]:
    """``app`` on uvicorn as its docs start it (h11, no deadlines); yields the port."""
    config = uvicorn.Config(app, port=0, lifespan="off", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    serving = asyncio.create_task(server.main_loop())
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        await server.shutdown()


@contextlib.asynccontextmanager
async def served(name: str, infra: Infra) -> AsyncIterator[int]:
    if name == "agents-run":
        app = create_app(infra, allow_guessable_ids=True)
        async with running_server(app, "127.0.0.1", 0) as running:
            yield running.port
    else:
        async with plain_uvicorn(minimal_app()) as port:
            yield port


async def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    infra = Infra.in_memory()
    with use_infra(infra):
        async with served(name, infra) as port:
            posts = await post_runs(port, args.starts)
            await run_until_idle(max_steps=10 * args.starts + 100)
            finished = await start_run("echo", {"text": " ".join(["w"] * args.events)})
            await run_until_idle()
            replayed = await replay(port, finished, args.events)
            lived = await live(port, args.events)
    return {"POST /runs per s": posts, "replay events/s": replayed, "live events/s": lived}


async def timed(coroutine: Awaitable[dict[str, float]]) -> dict[str, float]:
    return await asyncio.wait_for(coroutine, DEADLINE)


def register_bench_agent() -> None:
    @register_agent("bench-steps")
    async def steps(input: JsonObject) -> AsyncIterator[JsonObject]:
        for step in range(int(str(input["steps"]))):
            yield {"step": step}


async def main(args: argparse.Namespace) -> None:
    register_bench_agent()
    contenders = ["agents-run", "minimal Starlette"]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name in contenders:  # interleaved, so load on the machine hits both alike
            results[name].append(await timed(measure(name, args)))
    measures = list(results["agents-run"][0])
    print(f"{args.rounds} rounds; best of each; {args.starts} starts, {args.events} events per run")
    print("| measure | agents-run | minimal Starlette | ratio |")
    print("|---|---:|---:|---:|")
    for measure_name in measures:
        ours = max(round_[measure_name] for round_ in results["agents-run"])
        theirs = max(round_[measure_name] for round_ in results["minimal Starlette"])
        print(f"| {measure_name} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=2000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
