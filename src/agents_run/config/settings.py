"""What a configuration is: the variables that hold it, and the checked value they give."""

from __future__ import annotations

from dataclasses import dataclass

from agents_run.application.infra import DEFAULT_LEASE_SECONDS, DEFAULT_OUTBOX_RETENTION_SECONDS
from agents_run.domain.json_data import DEFAULT_MAX_PAYLOAD_BYTES, PAYLOAD_LIMIT_SETTING

BUS_URL = "AGENTS_RUN_BUS_URL"
QUEUE_URL = "AGENTS_RUN_QUEUE_URL"
STORE_URL = "AGENTS_RUN_STORE_URL"
KEY_PREFIX = "AGENTS_RUN_KEY_PREFIX"
CONNECT_TIMEOUT = "AGENTS_RUN_CONNECT_TIMEOUT"
LEASE_SECONDS = "AGENTS_RUN_LEASE_SECONDS"
OUTBOX_RETENTION_SECONDS = "AGENTS_RUN_OUTBOX_RETENTION_SECONDS"
MAX_PAYLOAD_BYTES = PAYLOAD_LIMIT_SETTING

MEMORY_URL = "memory://"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_KEY_PREFIX = "agents-run"


@dataclass(frozen=True)
class InfraConfig:
    """The configuration, checked: each URL in an accepted form."""

    bus_url: str
    queue_url: str
    store_url: str
    key_prefix: str
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    outbox_retention_seconds: float = DEFAULT_OUTBOX_RETENTION_SECONDS
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    @property
    def is_all_memory(self) -> bool:
        return self.bus_url == self.queue_url == self.store_url == MEMORY_URL
