from __future__ import annotations

import pytest

from agents_run import (
    InfraConfigError,
    InMemoryRunStore,
    InvalidArgument,
    get_infra,
    load_infra_from_config,
)
from agents_run.adapters.bullmq_queue import BullMQQueue
from agents_run.adapters.postgres_store import PostgresRunStore
from agents_run.adapters.redis_bus import RedisEventBus
from agents_run.adapters.sqlite_store import SqliteRunStore
from agents_run.config import config_env, isolated, read_config
from agents_run.config.wiring import ADAPTERS, accepted_forms
from agents_run.redaction import redact

# load_infra_from_config makes its infra current: the fixture restores a fresh one afterwards.
pytestmark = pytest.mark.usefixtures("infra")


def test_unset_means_in_memory_and_the_infra_becomes_current() -> None:
    infra = load_infra_from_config({})
    assert isinstance(infra.store, InMemoryRunStore)
    assert get_infra() is infra


def test_empty_values_mean_unset() -> None:
    config = read_config({"AGENTS_RUN_BUS_URL": "", "AGENTS_RUN_KEY_PREFIX": ""})
    assert (config.bus_url, config.key_prefix) == ("memory://", "agents-run")


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("AGENTS_RUN_BUS_URL", "kafka://broker:9092", "memory:// or redis://"),
        ("AGENTS_RUN_QUEUE_URL", "redis-host:6379", "BullMQ on that Redis"),
        ("AGENTS_RUN_STORE_URL", "mysql://db/test", "postgresql://user@host"),
        ("AGENTS_RUN_STORE_URL", "memory://somewhere", "write exactly memory://"),
    ],
)
def test_a_malformed_url_names_the_variable_and_the_accepted_forms(
    name: str, value: str, accepted: str
) -> None:
    with pytest.raises(InfraConfigError, match=name) as raised:
        load_infra_from_config({name: value})
    assert accepted in str(raised.value)


@pytest.mark.parametrize(
    "value", ["redis:/:hunter2@host", "postgresql//app:hunter2@db/test", "hunter2"]
)
def test_a_value_that_is_no_url_is_not_repeated(value: str) -> None:
    with pytest.raises(InfraConfigError, match="value is not shown") as raised:
        read_config({"AGENTS_RUN_BUS_URL": value})
    assert "hunter2" not in str(raised.value)


def test_a_port_that_is_no_number_is_a_config_error() -> None:
    with pytest.raises(InfraConfigError, match="the port must be a number") as raised:
        read_config({"AGENTS_RUN_QUEUE_URL": "redis://:pw@host:notaport"})
    assert ":pw@" not in str(raised.value)


def test_passwords_never_appear_in_errors() -> None:
    with pytest.raises(InfraConfigError) as raised:
        read_config({"AGENTS_RUN_STORE_URL": "mysql://admin:s3cret@db/test"})
    assert "s3cret" not in str(raised.value)
    assert "admin:***@db" in str(raised.value)


def test_redact_keeps_urls_without_a_password() -> None:
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://:pw@host:6379") == "redis://:***@host:6379"


@pytest.mark.parametrize("prefix", ["has space", "x" * 65, "a/b"])
def test_a_malformed_key_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(InfraConfigError, match="AGENTS_RUN_KEY_PREFIX"):
        read_config({"AGENTS_RUN_KEY_PREFIX": prefix})


@pytest.mark.parametrize("timeout", ["soon", "0", "-1", "301"])
def test_a_malformed_connect_timeout_is_refused(timeout: str) -> None:
    with pytest.raises(InfraConfigError, match="AGENTS_RUN_CONNECT_TIMEOUT"):
        read_config({"AGENTS_RUN_CONNECT_TIMEOUT": timeout})


def test_connect_timeout_is_read_in_seconds() -> None:
    assert read_config({"AGENTS_RUN_CONNECT_TIMEOUT": "1.5"}).connect_timeout == 1.5


@pytest.mark.parametrize("seconds", ["soon", "0", "-1", "3601", "nan"])
def test_a_malformed_lease_is_refused(seconds: str) -> None:
    with pytest.raises(InfraConfigError, match=r"AGENTS_RUN_LEASE_SECONDS=.* \(0, 3600\]"):
        read_config({"AGENTS_RUN_LEASE_SECONDS": seconds})


@pytest.mark.parametrize("seconds", ["never", "0", "-5", "31536001"])
def test_a_malformed_outbox_retention_is_refused(seconds: str) -> None:
    with pytest.raises(InfraConfigError, match=r"AGENTS_RUN_OUTBOX_RETENTION_SECONDS=.* \(0, "):
        read_config({"AGENTS_RUN_OUTBOX_RETENTION_SECONDS": seconds})


def test_the_outbox_retention_defaults_to_a_day_and_reaches_the_infra() -> None:
    name = "AGENTS_RUN_OUTBOX_RETENTION_SECONDS"
    assert read_config({}).outbox_retention_seconds == 86_400
    assert load_infra_from_config({name: "600"}).outbox_retention_seconds == 600
    assert config_env(read_config({name: "600"}))[name] == "600.0"


def test_the_lease_is_read_in_seconds_and_reaches_the_infra() -> None:
    assert read_config({}).lease_seconds == 4.0
    infra = load_infra_from_config({"AGENTS_RUN_LEASE_SECONDS": "2.5"})
    assert infra.lease_seconds == 2.5
    assert (
        config_env(read_config({"AGENTS_RUN_LEASE_SECONDS": "2.5"}))["AGENTS_RUN_LEASE_SECONDS"]
        == "2.5"
    )


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
async def test_redis_urls_build_the_redis_bus_and_the_bullmq_queue_without_connecting(
    scheme: str,
) -> None:
    url = f"{scheme}://:pw@127.0.0.1:1/0"  # nothing listens there: building must not connect
    infra = load_infra_from_config(
        {
            "AGENTS_RUN_BUS_URL": url,
            "AGENTS_RUN_QUEUE_URL": url,
            "AGENTS_RUN_KEY_PREFIX": "team-a",
            "AGENTS_RUN_CONNECT_TIMEOUT": "1.5",
        }
    )
    assert isinstance(infra.bus, RedisEventBus)
    assert (infra.bus.key_prefix, infra.bus.connect_timeout) == ("team-a", 1.5)
    assert isinstance(infra.queue, BullMQQueue)
    assert (infra.queue.name, infra.queue.key_prefix) == ("team-a-runs", "team-a")
    await infra.aclose()


def test_a_sqlite_url_builds_a_sqlite_store_on_that_file() -> None:
    infra = load_infra_from_config({"AGENTS_RUN_STORE_URL": "sqlite:///var/lib/agents/runs.db"})
    assert isinstance(infra.store, SqliteRunStore)
    assert str(infra.store.path) == "/var/lib/agents/runs.db"
    relative = load_infra_from_config({"AGENTS_RUN_STORE_URL": "sqlite://runs.db"})
    assert str(relative.store.path) == "runs.db"  # type: ignore[attr-defined]


def test_a_postgres_url_builds_a_postgres_store_in_the_named_schema() -> None:
    infra = load_infra_from_config(
        {"AGENTS_RUN_STORE_URL": "postgresql://app:pw@db:5432/prod?schema=runs_v1&sslmode=require"}
    )
    assert isinstance(infra.store, PostgresRunStore)
    assert infra.store.schema == "runs_v1"
    assert repr(infra.store) == (
        "PostgresRunStore('postgresql://app:***@db:5432/prod?sslmode=require', schema='runs_v1')"
    )
    default = load_infra_from_config({"AGENTS_RUN_STORE_URL": "postgres://app@db/prod"})
    assert default.store.schema == "agents_run"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite://", "names no file"),
        ("sqlite:///var/lib/", "names no file"),
        ("postgresql://app:pw@db/prod?schema=Runs-V1", "schema name 'Runs-V1' is malformed"),
    ],
)
def test_a_malformed_store_url_is_refused_without_its_password(url: str, reason: str) -> None:
    with pytest.raises(InfraConfigError, match="AGENTS_RUN_STORE_URL") as raised:
        load_infra_from_config({"AGENTS_RUN_STORE_URL": url})
    assert reason in str(raised.value)
    assert ":pw@" not in str(raised.value)


def test_redact_hides_passwords_given_as_query_parameters() -> None:
    assert redact("postgresql://db/prod?user=app&password=pw") == (
        "postgresql://db/prod?user=app&password=***"
    )
    assert redact("sqlite:///tmp/runs.db") == "sqlite:///tmp/runs.db"


def test_isolated_puts_keys_and_tables_in_a_namespace_of_their_own() -> None:
    config = read_config(
        {
            "AGENTS_RUN_BUS_URL": "redis://127.0.0.1:6379/0",
            "AGENTS_RUN_QUEUE_URL": "redis://127.0.0.1:6379/0",
            "AGENTS_RUN_STORE_URL": "postgresql://app:pw@db/prod?schema=live&sslmode=require",
        }
    )
    mine = isolated(config, "t_gw1_0a1b")
    assert mine.key_prefix == "t_gw1_0a1b"
    assert mine.store_url == "postgresql://app:pw@db/prod?sslmode=require&schema=t_gw1_0a1b"
    assert (mine.bus_url, mine.queue_url) == (config.bus_url, config.queue_url)
    assert read_config(config_env(mine)) == mine


def test_isolated_names_an_sqlite_file_after_the_namespace() -> None:
    config = read_config({"AGENTS_RUN_STORE_URL": "sqlite:///var/lib/agents/runs.db"})
    assert isolated(config, "t_1").store_url == "sqlite:///var/lib/agents/runs-t_1.db"


@pytest.mark.parametrize("namespace", ["", "Upper", "1st", "has-dash", "x" * 57])
def test_a_malformed_namespace_is_refused(namespace: str) -> None:
    with pytest.raises(InvalidArgument, match="namespace"):
        isolated(read_config({}), namespace)


def test_an_sqlite_namespace_changes_the_file_name_only() -> None:
    config = read_config({"AGENTS_RUN_STORE_URL": "sqlite:///srv/app.v2/runs"})
    assert isolated(config, "t_1").store_url == "sqlite:///srv/app.v2/runs-t_1"


def test_a_redis_option_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(InfraConfigError, match="AGENTS_RUN_BUS_URL") as raised:
        load_infra_from_config({"AGENTS_RUN_BUS_URL": "redis://:pw@h:6379/0?socket_timeout=x"})
    assert ":pw@" not in str(raised.value)


def test_memory_is_memory_however_it_is_spelled() -> None:
    config = read_config({"AGENTS_RUN_BUS_URL": "MEMORY://", "AGENTS_RUN_STORE_URL": "Memory://"})
    assert (config.bus_url, config.store_url) == ("memory://", "memory://")
    assert config.is_all_memory


@pytest.mark.parametrize("variable", sorted(ADAPTERS))
def test_every_adapter_of_a_variable_is_listed_in_its_errors(variable: str) -> None:
    with pytest.raises(InfraConfigError) as raised:
        read_config({variable: "nosuchscheme://host"})
    assert str(raised.value).endswith(f"accepted forms are {accepted_forms(variable)}")
    for adapter in ADAPTERS[variable]:
        assert adapter.form in str(raised.value)
