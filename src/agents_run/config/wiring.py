"""Which adapter a URL builds: for each port, a table of adapters chosen by the URL's scheme.

An adapter is added here, in one entry of its port's table: its schemes, the form its URL takes
(configuration errors list it), its builder, and the extra that installs its drivers. The
adapters are imported inside the builders, so a process loads only the drivers its
configuration names, and a driver that is not installed is a configuration error that names the
extra to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agents_run.adapters.memory import InMemoryEventBus, InMemoryQueue, InMemoryRunStore
from agents_run.application.infra import Infra
from agents_run.config.settings import BUS_URL, MEMORY_URL, QUEUE_URL, STORE_URL, InfraConfig
from agents_run.errors import InfraConfigError, InvalidArgument
from agents_run.ids_and_time import ManualClock, SequentialIds
from agents_run.ports import EventBusPort, QueuePort, RunStorePort
from agents_run.redaction import redact, scrub, secrets_of

if TYPE_CHECKING:
    from agents_run.adapters.postgres_store import PostgresRunStore

PortT_co = TypeVar("PortT_co", covariant=True)
PortT = TypeVar("PortT")


@dataclass(frozen=True)
class Adapter(Generic[PortT_co]):
    """One way to provide a port, for URLs with one of ``schemes``."""

    name: str
    schemes: tuple[str, ...]
    form: str  # how its URL is written, as configuration errors show it
    build: Callable[[str, InfraConfig], PortT_co]  # the URL and the whole configuration; no I/O
    extra: str | None = None  # the agents-run extra that installs its drivers


def _redis_bus(url: str, config: InfraConfig) -> EventBusPort:
    from agents_run.adapters.redis_bus import RedisEventBus  # noqa: PLC0415 - see the docstring

    return RedisEventBus(url, key_prefix=config.key_prefix, connect_timeout=config.connect_timeout)


def _bullmq_queue(url: str, config: InfraConfig) -> QueuePort:
    from agents_run.adapters.bullmq_queue import BullMQQueue  # noqa: PLC0415

    return BullMQQueue(url, key_prefix=config.key_prefix, connect_timeout=config.connect_timeout)


def postgres_store(url: str, config: InfraConfig) -> PostgresRunStore:
    # psycopg alone costs about 60 ms to import, which in-memory users need not pay.
    from agents_run.adapters.postgres_store import (  # noqa: PLC0415
        DEFAULT_SCHEMA,
        PostgresRunStore,
    )

    conninfo, schema = split_postgres_schema(url)
    return PostgresRunStore(
        conninfo,
        schema=schema or DEFAULT_SCHEMA,
        connect_timeout=config.connect_timeout,
        max_payload_bytes=config.max_payload_bytes,
    )


def _sqlite_store(url: str, config: InfraConfig) -> RunStorePort:
    from agents_run.adapters.sqlite_store import SqliteRunStore  # noqa: PLC0415

    return SqliteRunStore(
        sqlite_path(url),
        busy_timeout=config.connect_timeout,
        max_payload_bytes=config.max_payload_bytes,
    )


_REDIS_FORM = "redis://[:password@]host[:port][/db]"

BUS_ADAPTERS: tuple[Adapter[EventBusPort], ...] = (
    Adapter("memory", ("memory",), MEMORY_URL, lambda url, config: InMemoryEventBus()),
    Adapter("redis", ("redis", "rediss"), _REDIS_FORM, _redis_bus, extra="redis"),
)
QUEUE_ADAPTERS: tuple[Adapter[QueuePort], ...] = (
    Adapter("memory", ("memory",), MEMORY_URL, lambda url, config: InMemoryQueue()),
    Adapter(
        "bullmq",
        ("redis", "rediss"),
        f"{_REDIS_FORM} (BullMQ on that Redis)",
        _bullmq_queue,
        extra="redis",
    ),
)
STORE_ADAPTERS: tuple[Adapter[RunStorePort], ...] = (
    Adapter(
        "memory",
        ("memory",),
        MEMORY_URL,
        lambda url, config: InMemoryRunStore(max_payload_bytes=config.max_payload_bytes),
    ),
    Adapter(
        "postgres",
        ("postgresql", "postgres"),
        "postgresql://user@host[:port]/database[?schema=NAME]",
        postgres_store,
        extra="postgres",
    ),
    Adapter("sqlite", ("sqlite",), "sqlite:///absolute/path/to/file.db", _sqlite_store),
)

# The variable that configures each port, and the adapters it may name.
ADAPTERS: Mapping[str, Sequence[Adapter[object]]] = {
    BUS_URL: BUS_ADAPTERS,
    QUEUE_URL: QUEUE_ADAPTERS,
    STORE_URL: STORE_ADAPTERS,
}


def accepted_forms(variable: str) -> str:
    """``memory://, postgresql://... or sqlite:///...``: what ``variable`` may hold."""
    *others, last = (adapter.form for adapter in ADAPTERS[variable])
    return f"{', '.join(others)} or {last}" if others else last


def find_adapter(variable: str, adapters: Sequence[Adapter[PortT]], url: str) -> Adapter[PortT]:
    """The adapter of ``adapters`` for ``url``'s scheme; ``InfraConfigError`` where none is."""
    scheme = url.split("://", 1)[0].lower()
    for adapter in adapters:
        if scheme in adapter.schemes:
            return adapter
    raise InfraConfigError(
        f"{variable}={redact(url)!r} is malformed: accepted forms are {accepted_forms(variable)}"
    )


def build_adapter(
    variable: str, adapters: Sequence[Adapter[PortT]], url: str, config: InfraConfig
) -> PortT:
    """Build the adapter ``url`` names. A value its adapter refuses is an ``InfraConfigError``
    (redis-py, for one, parses a URL's options only when a client is built)."""
    adapter = find_adapter(variable, adapters, url)
    with refusal_as_config_error(variable, adapter, url):
        return adapter.build(url, config)


@contextmanager
def refusal_as_config_error(variable: str, adapter: Adapter[object], url: str) -> Iterator[None]:
    """What ``adapter`` raises for ``url``, said as an ``InfraConfigError``: a malformed value,
    or a driver that is not installed (with the extra to install)."""
    try:
        yield
    except InfraConfigError:
        raise
    except ModuleNotFoundError as error:
        driver = (error.name or "agents_run").split(".")[0]
        if adapter.extra is None or driver == "agents_run":
            raise  # not a driver: a module of ours is missing
        raise InfraConfigError(
            f"{variable}={redact(url)!r} needs the module {driver!r}, which is not installed: "
            f"pip install 'agents-run[{adapter.extra}]'"
        ) from error
    except ValueError as error:  # InvalidArgument included
        raise InfraConfigError(
            f"{variable}={redact(url)!r} is malformed: {scrub(str(error), secrets_of(url))}; "
            f"accepted forms are {accepted_forms(variable)}"
        ) from None


def configured_adapters(config: InfraConfig) -> list[tuple[str, Adapter[object], str]]:
    """The variable, the adapter and the URL of the bus, of the queue and of the store."""
    urls = ((BUS_URL, config.bus_url), (QUEUE_URL, config.queue_url), (STORE_URL, config.store_url))
    return [
        (variable, find_adapter(variable, ADAPTERS[variable], url), url) for variable, url in urls
    ]


def build_store(config: InfraConfig) -> RunStorePort:
    return build_adapter(STORE_URL, STORE_ADAPTERS, config.store_url, config)


def build_infra(config: InfraConfig) -> Infra:
    """The ``Infra`` that ``config`` describes, without making it current.

    Constructors do no I/O: a server that does not answer raises ``InfraUnavailable`` from the
    first operation that needs it, within ``config.connect_timeout`` seconds.
    """
    bus = build_adapter(BUS_URL, BUS_ADAPTERS, config.bus_url, config)
    queue = build_adapter(QUEUE_URL, QUEUE_ADAPTERS, config.queue_url, config)
    store = build_store(config)
    if config.is_all_memory:  # nothing outlives the process: ids and time as in Infra.in_memory()
        return Infra(
            bus=bus,
            queue=queue,
            store=store,
            ids=SequentialIds(),
            clock=ManualClock(),
            lease_seconds=config.lease_seconds,
            outbox_retention_seconds=config.outbox_retention_seconds,
        )
    # Random ids, the system clock.
    return Infra(
        bus=bus,
        queue=queue,
        store=store,
        lease_seconds=config.lease_seconds,
        outbox_retention_seconds=config.outbox_retention_seconds,
    )


def build_served_infra(config: InfraConfig, *, max_finished_runs: int | None) -> Infra:
    """``build_infra`` for a server (``agents-run serve``): random ids and the system clock in
    every mode (run ids travel in URLs and must not be guessable), and an in-memory store that
    keeps at most ``max_finished_runs`` ended runs (None: all)."""
    built = build_infra(config)
    store = (
        InMemoryRunStore(
            max_finished_runs=max_finished_runs, max_payload_bytes=config.max_payload_bytes
        )
        if config.store_url == MEMORY_URL
        else built.store
    )
    return Infra(bus=built.bus, queue=built.queue, store=store)  # random ids, the system clock


def sqlite_path(url: str) -> str:
    """``sqlite:///abs/file.db`` is ``/abs/file.db``; ``sqlite://file.db`` is relative."""
    path = url[len("sqlite://") :].split("?", 1)[0].split("#", 1)[0]
    if not path or path.endswith("/"):
        raise InvalidArgument(f"{path!r} names no file")
    return path


def split_postgres_schema(url: str) -> tuple[str, str | None]:
    """The URL without its ``schema`` query parameter (ours, not libpq's), and the schema."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), (schemas[-1] if schemas else None)
