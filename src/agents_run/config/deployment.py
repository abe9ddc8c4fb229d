"""One deployment per Redis key prefix and per store: each names the other, checked at start.

Two deployments that share a Redis key prefix take each other's jobs; two that share a store's
tables end each other's runs. So the store records the key prefix of its deployment (a row in
its ``deployment`` table) and a random token, and the queue's Redis keeps that token under the
prefix. ``check_deployment`` (``agents-run worker``, ``publisher`` and ``serve`` call it at
start) claims both where they are free and refuses a process whose store already names another
prefix, or whose prefix already names another store. Memory parts share nothing across
processes: nothing to check.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Protocol, runtime_checkable

from agents_run.application.infra import Infra
from agents_run.config.settings import KEY_PREFIX, STORE_URL
from agents_run.errors import InfraConfigError, InfraUnavailable

log = logging.getLogger("agents_run.config")


@runtime_checkable
class _MarkedStore(Protocol):
    async def claim_deployment(self, key_prefix: str, token: str) -> tuple[str, str]: ...


@runtime_checkable
class _MarkedQueue(Protocol):
    key_prefix: str

    async def claim_deployment(self, marker: str) -> str: ...


async def check_deployment(infra: Infra) -> None:
    """Claim the store and the key prefix for one deployment; ``InfraConfigError`` where either
    belongs to another. A server down or a schema without the table (``agents-run db init``
    adds it) skips the check with one warning: the process starts as it did before."""
    store, queue = infra.store, infra.queue
    if not isinstance(store, _MarkedStore) or not isinstance(queue, _MarkedQueue):
        return
    prefix = queue.key_prefix
    try:
        claimed_prefix, token = await store.claim_deployment(prefix, uuid.uuid4().hex)
        if claimed_prefix == prefix:
            marker = json.dumps({"token": token, "store": repr(store)})
            claimed = _read_marker(await queue.claim_deployment(marker))
    except (InfraUnavailable, InfraConfigError) as error:
        log.warning("deployment check skipped: %s", error)
        return
    if claimed_prefix != prefix:
        raise InfraConfigError(
            f"{store!r} belongs to the deployment whose Redis key prefix is "
            f"{claimed_prefix!r}, not {prefix!r}: two deployments sharing one store end each "
            f"other's runs. Set {KEY_PREFIX}={claimed_prefix} to join that deployment, or give "
            f"this one a store of its own ({STORE_URL} with another ?schema= or database)"
        )
    if claimed.get("token") != token:
        raise InfraConfigError(
            f"the Redis key prefix {prefix!r} belongs to the deployment whose store is "
            f"{claimed.get('store', 'unknown')}, not {store!r}: two deployments sharing one "
            f"prefix take each other's jobs. Set {STORE_URL} to that store to join that "
            f"deployment, or give this one a prefix of its own ({KEY_PREFIX})"
        )


def _read_marker(text: str) -> dict[str, str]:
    try:
        marker = json.loads(text)
    except ValueError:
        return {}
    return marker if isinstance(marker, dict) else {}
