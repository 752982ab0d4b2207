"""Fixtures of the deployment tests: role processes that never outlive a test."""

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.deploy.roles import RoleProcess
from tests.deploy.test_compose import certd_services
from tests.projections.steps import CERTD

LaunchRole = Callable[..., RoleProcess]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[LaunchRole]:
    """Make (and start) ``certd`` role processes; kill any left at the end.

    A role gets the database pool that compose gives it, unless told.
    """
    made: list[RoleProcess] = []

    def launch_role(
        *args: str,
        start: bool = True,
        program: Sequence[str] = (str(CERTD),),
        **settings: str,
    ) -> RoleProcess:
        if "postgres_pool_size" not in settings:
            settings["postgres_pool_size"] = composed_pool_size(args[0])
        role = RoleProcess(args, tmp_path, settings, program)
        made.append(role)
        if start:
            role.start()
        return role

    yield launch_role
    for role in made:
        role.kill()


def composed_pool_size(verb: str) -> str:
    """CERTD_POSTGRES_POOL_SIZE of the compose service that runs ``verb``."""
    environment: dict[str, str] = certd_services()[verb]["environment"]
    return environment["CERTD_POSTGRES_POOL_SIZE"]
