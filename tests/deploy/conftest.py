"""Fixtures of the deployment tests: role processes that never outlive a test."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy.roles import RoleProcess

LaunchRole = Callable[..., RoleProcess]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[LaunchRole]:
    """Make (and start) ``certd`` role processes; kill any left at the end."""
    made: list[RoleProcess] = []

    def launch_role(*args: str, start: bool = True, **settings: str) -> RoleProcess:
        role = RoleProcess(args, tmp_path, settings)
        made.append(role)
        if start:
            role.start()
        return role

    yield launch_role
    for role in made:
        role.kill()
