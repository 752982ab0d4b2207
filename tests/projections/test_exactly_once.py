"""Every stored event reaches the status views exactly once, whatever happens
to the runners: two at once, or one killed in the middle of a batch."""

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO
from uuid import UUID

import pytest
from structlog.testing import capture_logs

from domain.certification import Certification
from projections.replay import compare, rebuild
from projections.runner import ProjectionRunner
from projections.status_view import Draft, StatusRow
from projections.views import StatusViews, ViewMovedError
from service.application import CertificationService
from service.composition import Runtime
from service.store import view_database
from tests.projections.steps import CERTD, Steps, certd_env, one_lifecycle

LEAD_DAYS = 60
KILLS = 5


class ViewsOvertakenWhileLoading(StatusViews):
    """Views on which a rival runner projects the same batch at the worst
    moment: after this runner chose its events, before it read its rows."""

    def __init__(self, db_views: StatusViews, rival: ProjectionRunner) -> None:
        super().__init__(db_views.db, db_views.table)
        self.rival: ProjectionRunner | None = rival

    def load(self, ids: Iterable[UUID]) -> dict[UUID, StatusRow]:
        rival, self.rival = self.rival, None
        if rival is not None:
            rival.run_once()
        return super().load(ids)


def paid_in_history(service: CertificationService, cert_id: UUID) -> list[Decimal]:
    paid = (Certification.SubmissionFeePaid, Certification.AnnualFeePaid)
    return [
        event.amount_usd
        for event in service.history(cert_id)
        if isinstance(event, paid)
    ]


def assert_fees_match_the_history(runtime: Runtime) -> None:
    rows = list(runtime.views.all_rows())
    assert rows
    mismatched = {
        row.id: ([payment.amount_usd for payment in row.payments], paid)
        for row in rows
        if (paid := paid_in_history(runtime.service, row.id))
        != [payment.amount_usd for payment in row.payments]
        or row.fees_paid_usd != sum(paid, Decimal(0))
    }
    assert mismatched == {}


def assert_the_view_is_its_own_rebuild(runtime: Runtime) -> int:
    """Rebuild to the live position; return how many rows were compared."""
    rebuilt, position = rebuild(runtime.service, runtime.views, LEAD_DAYS)
    report = compare(runtime.views, rebuilt, position)
    rebuilt.drop()
    assert [str(difference) for difference in report.differences] == []
    assert report.moved_on == 0
    return report.rows


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.005)


def reached(
    views: StatusViews, position: int, failures: list[BaseException]
) -> Callable[[], bool]:
    """Whether the view has reached ``position``, or the traffic failed."""
    return lambda: bool(failures) or views.position() >= position


def test_a_save_from_a_position_the_view_has_left_writes_nothing(
    runtime: Runtime, steps: Steps
) -> None:
    steps.certify("Moved Co")
    runtime.runner.catch_up()
    position = runtime.views.position()
    (row,) = runtime.views.all_rows()
    doubled = row.model_copy(update={"fees_paid_usd": row.fees_paid_usd * 2})

    with pytest.raises(ViewMovedError, match=f"at position {position}"):
        runtime.views.save([doubled], position - 1, position + 1)

    assert runtime.views.position() == position
    assert runtime.views.get(row.id) == row


def test_a_runner_overtaken_mid_batch_by_another_projects_nothing_twice(
    runtime: Runtime, steps: Steps
) -> None:
    cert_id = steps.certify("Overtaken Co")
    rival = ProjectionRunner(runtime.service, runtime.views, LEAD_DAYS)
    overtaken = ProjectionRunner(
        runtime.service, ViewsOvertakenWhileLoading(runtime.views, rival), LEAD_DAYS
    )

    projected = overtaken.run_once()

    row = runtime.views.get(cert_id)
    assert projected == 0
    assert row is not None
    assert row.fees_paid_usd == 150 + 1_000
    assert len(row.payments) == 2
    assert runtime.views.position() == runtime.service.ping_store()


def test_two_runners_at_once_project_every_event_exactly_once(
    runtime: Runtime, steps: Steps, database_url: str
) -> None:
    rival_db = view_database(database_url)
    runners = [
        ProjectionRunner(runtime.service, runtime.views, LEAD_DAYS, batch_size=2),
        ProjectionRunner(runtime.service, StatusViews(rival_db), LEAD_DAYS, 3),
    ]
    stopping = threading.Event()
    failures: list[BaseException] = []

    def keep_projecting(runner: ProjectionRunner) -> None:
        try:
            while not stopping.is_set():
                if not runner.run_once():
                    time.sleep(0.001)
        except BaseException as error:  # reported by the test, not lost
            failures.append(error)

    threads = [
        threading.Thread(target=keep_projecting, args=(runner,)) for runner in runners
    ]
    for thread in threads:
        thread.start()
    try:
        with capture_logs() as logs:
            ids = [one_lifecycle(steps, index) for index in range(40)]
    finally:
        stopping.set()
        for thread in threads:
            thread.join(timeout=30)
        rival_db.close()
    runtime.runner.catch_up()

    assert failures == []
    # The runners did collide, so the race was run, not just hoped for.
    assert any(entry["event"] == "views_moved_under_runner" for entry in logs)
    assert runtime.views.position() == runtime.service.ping_store()
    assert assert_the_view_is_its_own_rebuild(runtime) == len(ids)
    assert_fees_match_the_history(runtime)


def start_projector(env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CERTD), "project"], env=env, stdout=log, stderr=log, text=True
    )


def test_a_projector_killed_at_random_moments_resumes_where_it_stopped(
    runtime: Runtime, steps: Steps, database_url: str, tmp_path: Path
) -> None:
    env = certd_env(database_url, projection_batch="3")
    log_path = tmp_path / "project.log"
    stopping = threading.Event()
    failures: list[BaseException] = []
    issued: list[UUID] = []

    def keep_issuing_commands() -> None:
        try:
            while not stopping.wait(0.05):
                issued.append(one_lifecycle(steps, len(issued)))
        except BaseException as error:  # reported by the test, not lost
            failures.append(error)

    traffic = threading.Thread(target=keep_issuing_commands)
    last_stored = runtime.service.ping_store
    moment = random.Random()
    kills_at: list[int] = []
    backlogs: list[int] = []
    with log_path.open("w") as log:
        traffic.start()
        try:
            for _ in range(KILLS):
                # Somewhere in the backlog, with batches still to go after it.
                after = runtime.views.position() + 1
                kill_at = moment.randint(after, max(after, last_stored() - 30))
                projector = start_projector(env, log)
                try:
                    wait_for(
                        reached(runtime.views, kill_at, failures),
                        timeout=20,
                        what=f"the restarted projector to reach {kill_at}",
                    )
                    backlogs.append(runtime.runner.lag())
                finally:
                    projector.kill()
                    projector.wait(timeout=10)
                kills_at.append(runtime.views.position())
                # The killed batch left nothing half-written.
                assert_the_view_is_its_own_rebuild(runtime)
        finally:
            stopping.set()
            traffic.join(timeout=30)
        assert failures == []

        last = runtime.service.ping_store()
        projector = start_projector(env, log)
        try:
            wait_for(
                reached(runtime.views, last, failures),
                timeout=30,
                what="the last projector to catch up",
            )
        finally:
            projector.send_signal(signal.SIGTERM)
            exit_code = projector.wait(timeout=15)

    logged = [
        json.loads(line)["event"]
        for line in log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert len(kills_at) == KILLS
    assert kills_at == sorted(kills_at)
    assert kills_at[-1] < last
    # Every kill came while the projector still had events to project.
    assert min(backlogs) > 0, backlogs
    assert exit_code == 0
    assert logged.count("projection_started") == KILLS + 1
    assert "projection_batch_failed" not in logged
    assert runtime.views.position() == last
    assert assert_the_view_is_its_own_rebuild(runtime) == len(issued)
    assert_fees_match_the_history(runtime)


class ViewsStoppingAfterOneSave(StatusViews):
    """Views that ask their runner to stop once a batch is written."""

    def __init__(self, db_views: StatusViews, stopping: threading.Event) -> None:
        super().__init__(db_views.db, db_views.table)
        self.stopping = stopping

    def save_drafts(
        self, drafts: Sequence[Draft], from_position: int, to_position: int
    ) -> None:
        super().save_drafts(drafts, from_position, to_position)
        self.stopping.set()


def test_a_catch_up_asked_to_stop_ends_after_the_batch_in_hand(
    runtime: Runtime, steps: Steps
) -> None:
    for number in range(3):
        steps.certify(f"Stopped {number} Co")
    stopping = threading.Event()
    views = ViewsStoppingAfterOneSave(runtime.views, stopping)
    runner = ProjectionRunner(runtime.service, views, LEAD_DAYS, batch_size=4)

    assert runner.catch_up(stopping) == 4
    assert views.position() == 4
    assert runner.lag() > 0

    stopping.clear()
    views.stopping = threading.Event()
    runner.catch_up(stopping)
    assert runner.lag() == 0
    assert_the_view_is_its_own_rebuild(runtime)
