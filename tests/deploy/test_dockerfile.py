"""deploy/Dockerfile: a small multi-stage image that runs certd as a user
without rights and checks its own health.

No Docker engine runs here, so the image is not built; its instructions are
read, and its HEALTHCHECK command is run against each role that uses it,
started as compose starts it.
"""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service.embedded_broker import free_port
from tests.deploy.conftest import LaunchRole
from tests.deploy.test_compose import certd_services, parse_certd
from tests.stream.payment_steps import create_topics, stream_settings

ROOT = Path(__file__).parents[2]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments out."""
    joined: list[str] = []
    pending = ""
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [
        (keyword.upper(), rest.strip())
        for keyword, _, rest in (line.strip().partition(" ") for line in joined)
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def healthcheck_command() -> list[str]:
    (check,) = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    _, _, exec_form = check.partition("CMD ")
    command: list[str] = json.loads(exec_form)
    return command


def test_the_image_is_built_in_a_builder_stage_and_run_from_a_slim_one() -> None:
    froms = [rest for keyword, rest in instructions() if keyword == "FROM"]
    arguments = dict(
        rest.partition("=")[::2] for keyword, rest in instructions() if keyword == "ARG"
    )

    assert len(froms) == 2
    assert froms[0].endswith("AS builder")
    assert "slim" in arguments["PYTHON_IMAGE"]
    copied_from_builder = [
        rest for keyword, rest in final_stage() if "from=builder" in rest
    ]
    assert copied_from_builder, "the final stage installs the builder's wheels"


def test_the_final_stage_runs_as_a_user_that_is_not_root() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]

    assert users
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_entry_point_is_the_certd_command_of_the_package() -> None:
    (entrypoint,) = [rest for keyword, rest in final_stage() if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    assert json.loads(entrypoint) == ["certd"]
    assert "certd" in scripts


def test_the_default_command_is_a_certd_command_line_that_parses() -> None:
    (cmd,) = [rest for keyword, rest in final_stage() if keyword == "CMD"]

    assert callable(parse_certd(json.loads(cmd)).run)


def roles_with_the_healthcheck() -> list[str]:
    """The compose services that keep the image's HEALTHCHECK."""
    return sorted(
        name
        for name, service in certd_services().items()
        if not service.get("healthcheck", {}).get("disable", False)
    )


def test_every_long_running_role_keeps_the_healthcheck() -> None:
    assert roles_with_the_healthcheck() == [
        "api",
        "consume",
        "project",
        "publish",
        "schedule",
    ]


def composed_command(name: str) -> list[str]:
    """The service's command, on a free port where it names one."""
    command = [str(part) for part in certd_services()[name]["command"]]
    if "--port" in command:
        command[command.index("--port") + 1] = str(free_port())
    return command


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", roles_with_the_healthcheck())
def test_the_healthcheck_passes_on_each_live_role_and_fails_without_one(
    name: str, launch: LaunchRole, sqlite_url: str, kafka_bootstrap: str
) -> None:
    stream = stream_settings(sqlite_url, kafka_bootstrap)
    create_topics(stream)
    role = launch(
        *composed_command(name),
        database_url=sqlite_url,
        api_tokens="operator:op-token",
        kafka_bootstrap=kafka_bootstrap,
        kafka_topic=stream.kafka_topic,
        kafka_payments_topic=stream.kafka_payments_topic,
        kafka_dlq_topic=stream.kafka_dlq_topic,
        kafka_consumer_group=stream.kafka_consumer_group,
    )
    python, *rest = healthcheck_command()
    assert python == "python"

    def check(port: int) -> int:
        return subprocess.run(
            [sys.executable, *rest],
            env={"CERTD_METRICS_PORT": str(port)},
            capture_output=True,
            timeout=30,
            check=False,
        ).returncode

    assert check(role.metrics_port) == 0
    assert check(free_port()) != 0
