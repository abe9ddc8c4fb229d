"""Reading the configuration from the environment: the ``AGENTS_RUN_*`` variables, checked."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from agents_run.application.infra import DEFAULT_LEASE_SECONDS, DEFAULT_OUTBOX_RETENTION_SECONDS
from agents_run.config.settings import (
    BUS_URL,
    CONNECT_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEY_PREFIX,
    KEY_PREFIX,
    LEASE_SECONDS,
    MAX_PAYLOAD_BYTES,
    MEMORY_URL,
    OUTBOX_RETENTION_SECONDS,
    QUEUE_URL,
    STORE_URL,
    InfraConfig,
)
from agents_run.config.wiring import ADAPTERS, accepted_forms, find_adapter
from agents_run.domain.json_data import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_MAX_PAYLOAD_BYTES,
    MIN_MAX_PAYLOAD_BYTES,
)
from agents_run.errors import InfraConfigError
from agents_run.redaction import redact

_KEY_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def read_config(env: Mapping[str, str] = os.environ) -> InfraConfig:
    """Read and check the ``AGENTS_RUN_*`` variables; unset means ``memory://``."""
    urls = {name: _check_url(name, env.get(name, "") or MEMORY_URL) for name in ADAPTERS}
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
        connect_timeout=_read_seconds(env, CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, most=300),
        lease_seconds=_read_seconds(env, LEASE_SECONDS, DEFAULT_LEASE_SECONDS, most=3600),
        outbox_retention_seconds=_read_seconds(
            env, OUTBOX_RETENTION_SECONDS, DEFAULT_OUTBOX_RETENTION_SECONDS, most=365 * 86_400
        ),
        max_payload_bytes=_read_payload_limit(env),
    )


def config_env(config: InfraConfig) -> dict[str, str]:
    """The environment variables that describe ``config`` (for starting processes on it)."""
    return {
        BUS_URL: config.bus_url,
        QUEUE_URL: config.queue_url,
        STORE_URL: config.store_url,
        KEY_PREFIX: config.key_prefix,
        CONNECT_TIMEOUT: str(config.connect_timeout),
        LEASE_SECONDS: str(config.lease_seconds),
        OUTBOX_RETENTION_SECONDS: str(config.outbox_retention_seconds),
        MAX_PAYLOAD_BYTES: str(config.max_payload_bytes),
    }


def _read_seconds(env: Mapping[str, str], name: str, default: float, *, most: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= most:
        raise InfraConfigError(
            f"{name}={raw!r} is malformed: give seconds as a number in (0, {most:g}]"
        )
    return seconds


def _read_payload_limit(env: Mapping[str, str]) -> int:
    raw = env.get(MAX_PAYLOAD_BYTES, "")
    if not raw:
        return DEFAULT_MAX_PAYLOAD_BYTES
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else -1
    if not MIN_MAX_PAYLOAD_BYTES <= value <= MAX_MAX_PAYLOAD_BYTES:
        raise InfraConfigError(
            f"{MAX_PAYLOAD_BYTES}={raw[:40]!r} is malformed: give a whole number of bytes from "
            f"{MIN_MAX_PAYLOAD_BYTES} to {MAX_MAX_PAYLOAD_BYTES}"
        )
    return value


def _check_url(name: str, url: str) -> str:
    if "://" not in url:
        # Not a URL, so no password can be found in it to redact: the value is not repeated.
        raise InfraConfigError(
            f"{name} is malformed (its value is not shown: it may hold a password): accepted "
            f"forms are {accepted_forms(name)}"
        )
    if find_adapter(name, ADAPTERS[name], url).name == "memory":
        if url.lower() != MEMORY_URL:
            raise InfraConfigError(
                f"{name}={redact(url)!r} is malformed: write exactly {MEMORY_URL}"
            )
        return MEMORY_URL
    try:
        urlsplit(url).port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise InfraConfigError(
            f"{name}={redact(url)!r} is malformed: the port must be a number from 0 to 65535"
        ) from None
    return url
