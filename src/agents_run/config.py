"""The composition root: builds the ``Infra`` that the environment describes.

The only module that may import the production adapters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.application.infra import Infra, set_infra
from agents_run.errors import InfraConfigError

BUS_URL = "AGENTS_RUN_BUS_URL"
QUEUE_URL = "AGENTS_RUN_QUEUE_URL"
STORE_URL = "AGENTS_RUN_STORE_URL"
KEY_PREFIX = "AGENTS_RUN_KEY_PREFIX"

DEFAULT_KEY_PREFIX = "agents-run"
_KEY_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class InfraConfig:
    """The configuration, checked: each URL in an accepted form."""

    bus_url: str
    queue_url: str
    store_url: str
    key_prefix: str


_ACCEPTED = {
    BUS_URL: ("memory", "redis", "rediss"),
    QUEUE_URL: ("memory", "redis", "rediss"),
    STORE_URL: ("memory", "postgresql", "postgres", "sqlite"),
}
_FORMS = {
    BUS_URL: "memory:// or redis://[:password@]host[:port][/db]",
    QUEUE_URL: "memory:// or redis://[:password@]host[:port][/db] (BullMQ on that Redis)",
    STORE_URL: "memory://, postgresql://user@host[:port]/database or sqlite:///path/to/file.db",
}


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for errors and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def read_config(env: Mapping[str, str] = os.environ) -> InfraConfig:
    """Read and check the ``AGENTS_RUN_*`` variables; unset means ``memory://``."""
    urls = {name: _check_url(name, env.get(name, "") or "memory://") for name in _ACCEPTED}
    key_prefix = env.get(KEY_PREFIX, "") or DEFAULT_KEY_PREFIX
    if not _KEY_PREFIX_PATTERN.match(key_prefix):
        raise InfraConfigError(
            f"{KEY_PREFIX}={key_prefix!r} is malformed: use 1 to 64 letters, digits or . _ : -"
        )
    return InfraConfig(
        bus_url=urls[BUS_URL],
        queue_url=urls[QUEUE_URL],
        store_url=urls[STORE_URL],
        key_prefix=key_prefix,
    )


def _check_url(name: str, url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _ACCEPTED[name]:
        raise InfraConfigError(
            f"{name}={redact(url)!r} is malformed: accepted forms are {_FORMS[name]}"
        )
    if scheme == "memory" and url.lower() != "memory://":
        raise InfraConfigError(f"{name}={redact(url)!r} is malformed: write exactly memory://")
    return url


def build_infra(config: InfraConfig) -> Infra:
    """The ``Infra`` that ``config`` describes, without making it current."""
    for name, url in (
        (BUS_URL, config.bus_url),
        (QUEUE_URL, config.queue_url),
        (STORE_URL, config.store_url),
    ):
        if not url.startswith("memory://"):
            raise InfraConfigError(
                f"{name}={redact(url)!r}: this build of agents-run supports only memory:// so far"
            )
    return Infra(bus=InMemoryEventBus(), queue=InMemoryQueue(), store=InMemoryRunStore())


def load_infra_from_config(env: Mapping[str, str] = os.environ) -> Infra:
    """Build the ``Infra`` that ``env`` describes, make it current
    with ``set_infra`` and return it. Raises ``InfraConfigError`` for a malformed value."""
    infra = build_infra(read_config(env))
    set_infra(infra)
    return infra
