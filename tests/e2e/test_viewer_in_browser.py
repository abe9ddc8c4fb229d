"""The run viewer at ``/`` in a real headless Chromium: it starts a run, the connection is cut
mid-run, ``EventSource`` reconnects by itself with ``Last-Event-ID``, and the page shows every
event exactly once, in order, and the terminal state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agents_run import Infra, register_agent
from agents_run.application.agents import unregister_agent
from agents_run.application.supervision import InProcessWorkers
from agents_run.domain.json_data import JsonObject
from agents_run.http import HttpLimits, create_app
from agents_run.http.serving import running_server
from tests.e2e.chromium import open_page
from tests.tcp_proxy import TcpProxy

LIMITS = HttpLimits(keepalive_interval=0.2, poll_interval=0.05)


RENDERED_EVENTS = (
    "[...document.querySelectorAll('#events li')].map(li => [li.dataset.seq, li.dataset.type])"
)


async def test_the_viewer_resumes_after_a_cut_and_shows_every_event_once(infra: Infra) -> None:
    release = asyncio.Event()

    @register_agent("pauses-for-a-cut")
    async def agent(input: JsonObject) -> AsyncIterator[JsonObject]:
        for word in ("one", "two"):
            yield {"text": word}
        await release.wait()
        for word in ("three", "four"):
            yield {"text": word}

    app = create_app(infra, limits=LIMITS, allow_guessable_ids=True)
    try:
        async with (
            InProcessWorkers(idle_poll=0.01, grace=0),
            running_server(app, "127.0.0.1", 0, LIMITS) as running,
        ):
            proxy = TcpProxy("127.0.0.1", running.port)
            await proxy.start()
            try:
                async with open_page(f"http://127.0.0.1:{proxy.port}/") as page:
                    await page.wait_for(
                        "document.querySelector('#agent option[value=\"pauses-for-a-cut\"]')"
                        " !== null",
                        "the page listed the registered agents",
                    )
                    await page.evaluate(
                        "document.getElementById('agent').value = 'pauses-for-a-cut';"
                        "document.getElementById('start').click(); true"
                    )
                    await page.wait_for(
                        "document.querySelectorAll('#events li').length === 3",
                        "RunStarted and the first two steps are shown",
                    )
                    await proxy.stop()  # the connection is cut mid-run
                    release.set()  # and the run goes on meanwhile
                    await page.wait_for(
                        "document.getElementById('connection').textContent === 'reconnecting'",
                        "the page noticed the cut",
                    )
                    await proxy.start()
                    await page.wait_for(
                        "document.getElementById('status').dataset.state === 'RunFinished'",
                        "the terminal state is shown",
                    )
                    events = await page.evaluate(RENDERED_EVENTS)
                    opens = await page.evaluate("document.getElementById('opens').textContent")
            finally:
                await proxy.stop()
    finally:
        unregister_agent("pauses-for-a-cut")
    assert events == [
        ["1", "RunStarted"],
        ["2", "RunStep"],
        ["3", "RunStep"],
        ["4", "RunStep"],
        ["5", "RunStep"],
        ["6", "RunFinished"],
    ]
    assert int(opens) >= 2  # it did reconnect
