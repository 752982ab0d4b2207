"""Fixtures of the deployment tests: role processes that never outlive a test."""

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.deploy.roles import RoleProcess
from tests.projections.steps import CERTD

LaunchRole = Callable[..., RoleProcess]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[LaunchRole]:
    """Make (and start) ``certd`` role processes; kill any left at the end."""
    made: list[RoleProcess] = []

    def launch_role(
        *args: str,
        start: bool = True,
        program: Sequence[str] = (str(CERTD),),
        **settings: str,
    ) -> RoleProcess:
        role = RoleProcess(args, tmp_path, settings, program)
        made.append(role)
        if start:
            role.start()
        return role

    yield launch_role
    for role in made:
        role.kill()
