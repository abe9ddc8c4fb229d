"""Many concurrent SSE clients of one ``agents-run serve`` process, on Redis and PostgreSQL.

    .venv/bin/python -m benchmarks.many_sse_clients [--runs 100] [--clients-per-run 10]
        [--words 50] [--worker-loops 4]

Starts ``agents-run serve --without-worker`` in a subprocess on a throwaway namespace, starts the
runs, opens every client's ``GET /runs/ID/events`` (raw HTTP/1.1 over loopback) and waits until
the server holds all of them live; then the worker and the outbox publisher run in this process
until the last stream has ended. Every client checks it received each seq once, in order, up to
the run's ``RunFinished``. Reports the events delivered per second to all clients together, the
server's resident set before and after the clients opened (and the growth per client), and the
Redis Pub/Sub connections the server holds (only the server subscribes; this process publishes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path

from agents_run import Infra, start_run, use_infra
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.config import build_infra, create_namespace, isolated, read_config, remove_namespace
from agents_run.config.settings import BUS_URL, KEY_PREFIX, QUEUE_URL, STORE_URL, InfraConfig
from benchmarks.many_streams import POSTGRES, REDIS, subscriber_connections, work_until_streamed

DEADLINE = 600.0
_EVENT = re.compile(rb"id: (\d+)\nevent: (\w+)\n")


def raise_file_limit(needed: int) -> None:
    """Each client is one socket here and one in the server: lift the soft limit to the hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status (Linux only)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def server_process(config: InfraConfig, port: int) -> AsyncIterator[Process]:
    env = {
        **{name: value for name, value in os.environ.items() if name != "AGENTS_RUN_HTTP_TOKEN"},
        STORE_URL: config.store_url,
        BUS_URL: config.bus_url,
        QUEUE_URL: config.queue_url,
        KEY_PREFIX: config.key_prefix,
    }
    command = [str(Path(sys.executable).with_name("agents-run")), "serve", "--without-worker"]
    server = await asyncio.create_subprocess_exec(  # inherits this process's file limit
        *command, "--port", str(port), env=env, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):  # up to 30 s to listen
            if server.returncode is not None:
                raise RuntimeError(f"agents-run serve exited with {server.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("agents-run serve did not listen within 30 s")
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:
            server.kill()
            await asyncio.wait_for(server.wait(), 10)


async def read_chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        yield await reader.readexactly(size)
        await reader.readexactly(2)


async def sse_client(port: int, run_id: str, events: int, opened: asyncio.Event) -> int:
    """Reads the run's stream to its end; checks each seq arrives once, in order."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET /runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise RuntimeError(f"GET events answered {head[:60]!r}")
        opened.set()
        buffer, seqs, last = b"", [], b""
        async for chunk in read_chunked(reader):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n\n")
            for message in complete:
                if found := _EVENT.match(message + b"\n"):
                    seqs.append(int(found[1]))
                    last = found[2]
        if seqs != list(range(1, events + 1)) or last != b"RunFinished":
            raise AssertionError(f"{run_id}: seqs {seqs[:5]}...{seqs[-5:]}, last {last!r}")
        return len(seqs)
    finally:
        writer.close()


async def measure(infra: Infra, config: InfraConfig, args: argparse.Namespace) -> None:
    bus = infra.bus
    assert isinstance(bus, RedisEventBus)
    events = args.words + 2
    text = " ".join(f"w{i}" for i in range(args.words))
    port = free_port()
    async with server_process(config, port) as server:
        run_ids = [await start_run("echo", {"text": text}) for _ in range(args.runs)]
        await asyncio.sleep(1.0)  # the server settled after its start
        before = resident_kib(server.pid)
        opened = [asyncio.Event() for _ in range(args.runs * args.clients_per_run)]
        pairs = zip([r for r in run_ids for _ in range(args.clients_per_run)], opened, strict=True)
        clients = [asyncio.create_task(sse_client(port, r, events, o)) for r, o in pairs]
        await asyncio.gather(*(o.wait() for o in opened))
        await asyncio.sleep(1.0)  # every stream past its (empty) backfill, waiting on the bus
        during = resident_kib(server.pid)
        connections = await subscriber_connections(bus)
        began = time.perf_counter()
        await work_until_streamed(clients, args.worker_loops)
        elapsed = time.perf_counter() - began
        delivered = sum(client.result() for client in clients)
        after = resident_kib(server.pid)
    count = len(clients)
    print(f"{count} SSE clients ({args.runs} runs x {args.clients_per_run}), {events} events a run")
    print(f"  server Pub/Sub connections: {connections}")
    print(f"  server RSS (MiB): {before / 1024:.1f} before the clients, {during / 1024:.1f} with")
    print(f"    them open, {after / 1024:.1f} after they ended")
    print(f"  server memory per open client: {(during - before) / count:.1f} KiB")
    print(f"  events delivered: {delivered:,} of {count * events:,} in {elapsed:.2f}s")
    print(f"  delivered/s (all clients): {delivered / elapsed:,.0f}")


async def main(args: argparse.Namespace) -> None:
    raise_file_limit(2 * args.runs * args.clients_per_run + 256)
    env = {STORE_URL: POSTGRES, BUS_URL: REDIS, QUEUE_URL: REDIS}
    config = isolated(read_config(env), f"bench_{uuid.uuid4().hex[:12]}")
    await create_namespace(config)
    infra = build_infra(config)
    try:
        with use_infra(infra):
            await asyncio.wait_for(measure(infra, config, args), DEADLINE)
    finally:
        await infra.aclose()
        await remove_namespace(config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--clients-per-run", type=int, default=10)
    parser.add_argument("--words", type=int, default=50)
    parser.add_argument("--worker-loops", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
