"""deploy/compose.yaml: a deployment the service accepts, role by role.

No Docker engine runs here, so the file is checked for what certd itself
decides: each container runs a command line that certd parses, with settings
that the Settings model accepts, secrets included, and all of them together
fit in the database's connections.
"""

import argparse
import os
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.auth import TokenTable
from service.cli import _parser as certd_parser
from service.settings import Settings
from service.store import persistence_env

DEPLOY = Path(__file__).parents[2] / "deploy"
SECRETS_MOUNT = "/run/secrets/"
# What each secret file would hold; the tests write these in its place.
SECRET_EXAMPLES = {
    "certd_database_url": "postgresql://certd:s3cret@postgres:5432/certd",
    "certd_api_tokens": "operator:op-token,applicant:app-token,billing:bill-token",
    "postgres_password": "s3cret",
}
# What one certd process may hold besides the store's pool, at worst (the
# formula in deploy/README.md, "Database connections"): the status views'
# pool (4), the publisher's position pool (2), a LISTEN connection and the
# lock taken while setting up the tables.
CONNECTIONS_BESIDE_THE_STORE = 4 + 2 + 1 + 1
# Beside the roles and a `run project replay`: an operator's psql and
# pg_dump, and PostgreSQL's superuser_reserved_connections (3 by default).
OPERATOR_CONNECTIONS = 2
RESERVED_CONNECTIONS = 3


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    )
    return document


def certd_services() -> dict[str, dict[str, Any]]:
    """The services that run the certd image, by name."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("certd")
    }


def verb_of(command: list[str]) -> list[str]:
    """The verb (and sub-verb) at the head of a certd command, before its options."""
    verb: list[str] = []
    for part in command:
        if part.startswith("-"):
            break
        verb.append(part)
    return verb


def test_compose_runs_kafka_in_kraft_mode_postgres_and_every_role() -> None:
    services = compose()["services"]

    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == (
        "broker,controller"
    )
    assert services["postgres"]["image"].startswith("postgres:")
    roles = {name: verb_of(s["command"]) for name, s in certd_services().items()}
    assert roles == {
        "topics": ["topics", "ensure"],
        "api": ["api"],
        "project": ["project"],
        "publish": ["publish"],
        "consume": ["consume"],
        "schedule": ["schedule"],
    }


def test_two_api_replicas_and_two_schedulers_share_one_database() -> None:
    services = certd_services()

    assert services["api"]["deploy"]["replicas"] == 2
    assert services["schedule"]["deploy"]["replicas"] == 2
    urls = {
        service["environment"].get("CERTD_DATABASE_URL_FILE")
        for name, service in services.items()
        if name != "topics"
    }
    assert urls == {"/run/secrets/certd_database_url"}


def test_every_role_waits_for_the_topics_and_a_healthy_database() -> None:
    services = certd_services()

    assert services["topics"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"}
    }
    for name, service in services.items():
        if name == "topics":
            continue
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name


def parse_certd(command: list[str]) -> argparse.Namespace:
    """``command`` as certd parses it; the test fails where certd would stop."""
    try:
        return certd_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"certd refuses the command line {command}")


@pytest.mark.parametrize("name", sorted(certd_services()))
def test_each_role_runs_a_certd_command_line_that_parses(name: str) -> None:
    command = certd_services()[name]["command"]

    parsed = parse_certd(command)

    assert callable(parsed.run)


def test_the_api_listens_on_the_port_compose_publishes() -> None:
    api = certd_services()["api"]

    parsed = parse_certd(api["command"])

    published = {mapping.rpartition(":")[2] for mapping in api["ports"]}
    assert published == {str(parsed.port)}
    # Reachable through the published port, not only from inside.
    assert parsed.host == "0.0.0.0"  # noqa: S104


def worst_case_connections(service: dict[str, Any]) -> int:
    """The database connections one process of ``service`` may hold at once."""
    default = Settings.model_fields["postgres_pool_size"].default
    pool_size = int(service["environment"].get("CERTD_POSTGRES_POOL_SIZE", default))
    store = persistence_env(SECRET_EXAMPLES["certd_database_url"], pool_size)
    pooled = int(store["POSTGRES_POOL_SIZE"]) + int(store["POSTGRES_MAX_OVERFLOW"])
    return pooled + CONNECTIONS_BESIDE_THE_STORE


def max_connections() -> int:
    """PostgreSQL's max_connections, as the postgres service's command sets it."""
    command = compose()["services"]["postgres"]["command"]
    options = dict(
        value.split("=", 1) for flag, value in pairwise(command) if flag == "-c"
    )
    return int(options["max_connections"])


def test_every_role_at_its_worst_fits_in_the_database_connections() -> None:
    services = certd_services()
    roles = sum(
        worst_case_connections(service) * service.get("deploy", {}).get("replicas", 1)
        for name, service in services.items()
        if name != "topics"
    )
    replay = worst_case_connections(services["project"])
    total = roles + replay + OPERATOR_CONNECTIONS + RESERVED_CONNECTIONS

    assert "CERTD_DATABASE_URL_FILE" not in services["topics"]["environment"]
    assert total <= max_connections()
    # The runbook's room to scale: a third API replica and three more consumers.
    more = worst_case_connections(services["api"]) + 3 * worst_case_connections(
        services["consume"]
    )
    assert total + more <= max_connections()


@pytest.mark.parametrize("name", sorted(certd_services()))
def test_each_role_has_settings_that_certd_accepts(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = certd_services()[name]
    environment = {key: str(value) for key, value in service["environment"].items()}
    mounted = mount_secrets(service.get("secrets", []), tmp_path)
    for key in [key for key in os.environ if key.startswith("CERTD_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, mounted.get(value, value))

    settings = Settings()

    unknown = [
        key
        for key in environment
        if key.removeprefix("CERTD_").lower() not in Settings.model_fields
    ]
    assert unknown == []
    if name == "topics":
        assert settings.kafka_bootstrap == "kafka:9092"
        return
    assert settings.metrics_port == 9100
    # Published to the deployment's network, so that Prometheus reaches it.
    assert settings.metrics_host == "0.0.0.0"  # noqa: S104
    assert persistence_env(settings.database_url)["POSTGRES_HOST"] == "postgres"
    if name == "api":
        tokens = TokenTable.parse(settings.api_tokens.get_secret_value())
        assert tokens.authenticate("op-token")


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    environments = [
        service.get("environment", {}) for service in compose()["services"].values()
    ]

    for environment in environments:
        assert "CERTD_API_TOKENS" not in environment
        assert "CERTD_DATABASE_URL" not in environment
        assert "POSTGRES_PASSWORD" not in environment
    assert "postgresql://" not in text
    for name, secret in compose()["secrets"].items():
        assert set(secret) == {"file"}, name
        assert secret["file"].startswith("./secrets/")
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()
    assert "secrets/" in ignored


def mount_secrets(names: list[str], folder: Path) -> dict[str, str]:
    """Write each secret where the test can read it; map its mount path there."""
    mounted = {}
    for name in names:
        path = folder / name
        path.write_text(SECRET_EXAMPLES[name] + "\n", encoding="utf-8")
        mounted[SECRETS_MOUNT + name] = str(path)
    return mounted
