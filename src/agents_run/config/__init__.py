"""The composition root: builds the ``Infra`` that the environment describes.

The only package that may import the adapters. Each of its modules answers one question:
``settings`` what a configuration is, ``environment`` how it is read from ``AGENTS_RUN_*``,
``wiring`` which adapter each URL builds, ``namespaces`` how tests keep their data apart on
shared servers, ``deployment`` that two deployments never share a key prefix or a store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from agents_run.application.infra import Infra, set_infra
from agents_run.config.deployment import check_deployment
from agents_run.config.environment import config_env, read_config
from agents_run.config.namespaces import create_namespace, isolated, remove_namespace
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
from agents_run.config.wiring import build_infra, build_served_infra

__all__ = [
    "BUS_URL",
    "CONNECT_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KEY_PREFIX",
    "KEY_PREFIX",
    "LEASE_SECONDS",
    "MAX_PAYLOAD_BYTES",
    "MEMORY_URL",
    "OUTBOX_RETENTION_SECONDS",
    "QUEUE_URL",
    "STORE_URL",
    "InfraConfig",
    "build_infra",
    "check_deployment",
    "config_env",
    "create_namespace",
    "isolated",
    "load_infra_for_serving",
    "load_infra_from_config",
    "read_config",
    "remove_namespace",
]


def load_infra_from_config(env: Mapping[str, str] = os.environ) -> Infra:
    """Build the ``Infra`` that ``env`` describes, make it current
    with ``set_infra`` and return it. Raises ``InfraConfigError`` for a malformed value."""
    infra = build_infra(read_config(env))
    set_infra(infra)
    return infra


def load_infra_for_serving(
    env: Mapping[str, str] = os.environ, *, max_finished_runs: int | None
) -> Infra:
    """``load_infra_from_config`` for ``agents-run serve`` (see ``build_served_infra``)."""
    infra = build_served_infra(read_config(env), max_finished_runs=max_finished_runs)
    set_infra(infra)
    return infra
