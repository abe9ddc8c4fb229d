"""Headless Chromium driven through the DevTools protocol over its websocket: just enough to open
a page and evaluate JavaScript in it. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from tests.services import REQUIRE_SERVICES, services_required

DEADLINE = 20.0
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
]


def chromium_path() -> str:
    """Debian's chromium, or skip (fail where CI requires it: .ci/run installs it)."""
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if services_required():
            pytest.fail(f"{reason}, and {REQUIRE_SERVICES}=1 requires it", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_SERVICES}=1 to fail instead")
    return path


class Page:
    """One tab, attached with a flat session on the browser's connection."""

    def __init__(self, connection: websockets.ClientConnection, session_id: str) -> None:
        self._connection = connection
        self._session_id = session_id
        self._ids = itertools.count(1_000)

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited if a promise), or raise with the page's error."""
        result = await call(
            self._connection,
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session_id=self._session_id,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"the page raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = DEADLINE) -> Any:
        async def poll() -> Any:
            while not (value := await self.evaluate(expression)):  # noqa: ASYNC110 - a page
                await asyncio.sleep(0.05)
            return value

        try:
            return await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            pytest.fail(f"still not true after {timeout}s: {what}")


_call_ids = itertools.count(1)


async def call(
    connection: websockets.ClientConnection,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    session_id: str | None = None,
) -> Any:
    """Send one command and return its result, skipping the events that arrive meanwhile."""
    call_id = next(_call_ids)
    message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
    if session_id is not None:
        message["sessionId"] = session_id
    await connection.send(json.dumps(message))
    async with asyncio.timeout(DEADLINE):
        while True:
            answer = json.loads(await connection.recv())
            if answer.get("id") == call_id:
                if "error" in answer:
                    raise AssertionError(f"{method} failed: {answer['error']}")
                return answer.get("result", {})


@contextlib.asynccontextmanager
async def open_page(url: str) -> AsyncIterator[Page]:
    """A fresh headless Chromium (its own profile) showing ``url``; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="agents-run-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium_path(),
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            endpoint = await asyncio.wait_for(_devtools_url(process.stderr), DEADLINE)
            # Read what else it says, so that a full pipe never blocks it.
            draining = asyncio.create_task(_drain(process.stderr))
            async with websockets.connect(endpoint, max_size=None) as connection:
                target = await call(connection, "Target.createTarget", {"url": url})
                attached = await call(
                    connection,
                    "Target.attachToTarget",
                    {"targetId": target["targetId"], "flatten": True},
                )
                yield Page(connection, attached["sessionId"])
            draining.cancel()
        finally:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), DEADLINE)


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    while line := await stderr.readline():
        found = re.search(rb"DevTools listening on (ws://\S+)", line)
        if found:
            return found[1].decode()
    raise AssertionError("chromium exited before it said where DevTools listens")


async def _drain(stderr: asyncio.StreamReader) -> None:
    while await stderr.read(65536):
        pass
