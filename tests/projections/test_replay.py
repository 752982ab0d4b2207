"""A replay rebuilds the status views from the first event, says where the
live ones differ, and can swap the rebuilt rows in while the service runs."""

from uuid import UUID

from domain.certification import Status
from projections.replay import REBUILD_TABLE, compare, rebuild, swap
from projections.views import SearchFilters
from service.composition import Runtime
from tests.projections.steps import (
    START,
    Steps,
    certd,
    disagreements,
    last_positions,
    one_lifecycle,
)

LEAD_DAYS = 60


def projected_lifecycles(runtime: Runtime, steps: Steps, count: int) -> list[UUID]:
    ids = [one_lifecycle(steps, index) for index in range(count)]
    runtime.runner.catch_up()
    return ids


def tamper(runtime: Runtime, cert_id: UUID, status: Status) -> None:
    """Change a live row behind the runner's back, column and JSON alike."""
    row = runtime.views.get(cert_id)
    assert row is not None
    with runtime.views.db.transaction() as cursor:
        cursor.execute(
            "UPDATE certification_status SET status = :status, row_json = :row_json "
            "WHERE id = :id",
            {
                "id": str(cert_id),
                "status": status.value,
                "row_json": row.model_copy(update={"status": status}).model_dump_json(),
            },
        )


def test_a_replay_of_a_view_that_matches_its_history_finds_no_differences(
    runtime: Runtime, steps: Steps, database_url: str
) -> None:
    projected_lifecycles(runtime, steps, 6)

    replay = certd(database_url, "replay")

    assert replay.returncode == 0, replay.stderr
    assert "rebuilt 6 certifications" in replay.stdout
    assert "0 differences" in replay.stdout
    tracked = runtime.views.db.query("SELECT name FROM view_tracking")
    assert [row["name"] for row in tracked] == ["certification_status"]


def test_a_replay_names_the_certification_and_field_of_a_tampered_row(
    runtime: Runtime, steps: Steps, database_url: str
) -> None:
    ids = projected_lifecycles(runtime, steps, 6)
    certified = ids[1]
    tamper(runtime, certified, Status.REVOKED)

    replay = certd(database_url, "replay")

    assert replay.returncode == 1, replay.stderr
    assert f"{certified} status: live 'revoked', rebuilt 'certified'" in replay.stdout
    # The tamper left the columns as they were, which the column check sees:
    # holds_certificate, and the registry entry a revoked row has not.
    assert f"{certified} column holds_certificate: live 1" in replay.stdout
    assert f"{certified} column registry_entry: live '{{" in replay.stdout
    assert "3 differences" in replay.stdout


def test_a_replay_finds_a_filter_column_changed_without_its_row(
    runtime: Runtime, steps: Steps
) -> None:
    ids = projected_lifecycles(runtime, steps, 3)
    with runtime.views.db.transaction() as cursor:
        cursor.execute(
            "UPDATE certification_status SET valid_until = '2099-01-01' WHERE id = :id",
            {"id": str(ids[1])},
        )

    rebuilt, position = rebuild(runtime.service, runtime.views, LEAD_DAYS)
    report = compare(runtime.views, rebuilt, position)

    assert [(d.certification_id, d.field) for d in report.differences] == [
        (ids[1], "column valid_until")
    ]
    assert report.differences[0].live == "2099-01-01"


def test_a_replay_reports_a_row_missing_from_the_live_view(
    runtime: Runtime, steps: Steps, database_url: str
) -> None:
    ids = projected_lifecycles(runtime, steps, 3)
    with runtime.views.db.transaction() as cursor:
        cursor.execute(
            "DELETE FROM certification_status WHERE id = :id", {"id": str(ids[0])}
        )

    replay = certd(database_url, "replay")

    assert replay.returncode == 1, replay.stderr
    assert f"{ids[0]} row: live 'missing', rebuilt 'present'" in replay.stdout


def test_a_swap_puts_the_rebuilt_rows_back_and_the_next_replay_is_clean(
    runtime: Runtime, steps: Steps, database_url: str
) -> None:
    ids = projected_lifecycles(runtime, steps, 6)
    certified = ids[1]
    tamper(runtime, certified, Status.REVOKED)

    swapped = certd(database_url, "replay", "--swap")
    again = certd(database_url, "replay")

    assert swapped.returncode == 0, swapped.stderr
    assert f"{certified} status" in swapped.stdout
    assert again.returncode == 0, again.stderr
    assert "0 differences" in again.stdout
    row = runtime.views.get(certified)
    assert row is not None
    assert row.status is Status.CERTIFIED
    listed, _ = runtime.views.search(
        SearchFilters(status=Status.CERTIFIED), START.date(), limit=50
    )
    assert certified in {row.id for row in listed}
    # The name index knows the swapped rows.
    for name in (row.organisation_name for row in runtime.views.all_rows()):
        found, _ = runtime.views.search(SearchFilters(q=name), START.date(), 50)
        assert [row.organisation_name for row in found] == [name]


def test_a_rebuild_while_events_arrive_compares_only_rows_not_moved_on(
    runtime: Runtime, steps: Steps
) -> None:
    ids = projected_lifecycles(runtime, steps, 6)
    moved_on: list[UUID] = []

    def meanwhile(_: int) -> None:
        """Change two certifications and start one while the rebuild runs."""
        if moved_on:
            return
        steps.suspend(ids[1])
        steps.withdraw(ids[4])
        moved_on.extend([ids[1], ids[4], steps.start("Latecomer Co")])
        runtime.runner.catch_up()

    rebuilt, position = rebuild(
        runtime.service, runtime.views, LEAD_DAYS, progress=meanwhile
    )
    report = compare(runtime.views, rebuilt, position)

    assert moved_on
    assert runtime.views.position() > position == rebuilt.position()
    assert report.differences == []
    assert (report.rows, report.moved_on) == (6, 3)
    rebuilt.drop()


def test_a_swap_while_events_arrive_loses_none_of_them(
    runtime: Runtime, steps: Steps
) -> None:
    ids = projected_lifecycles(runtime, steps, 6)
    rebuilt, position = rebuild(runtime.service, runtime.views, LEAD_DAYS)
    steps.suspend(ids[1])
    latecomer = steps.start("Latecomer Co")
    runtime.runner.catch_up()

    swap(runtime.views, rebuilt)
    swapped_at = runtime.views.position()
    runtime.runner.catch_up()

    assert swapped_at == position
    tracked = runtime.views.db.query("SELECT name FROM view_tracking")
    assert REBUILD_TABLE not in {row["name"] for row in tracked}
    positions = last_positions(runtime.service)
    rows = {row.id: row for row in runtime.views.all_rows()}
    assert rows.keys() == {*ids, latecomer}
    assert rows[ids[1]].status is Status.SUSPENDED
    assert {
        cert_id: found
        for cert_id, row in rows.items()
        if (
            found := disagreements(
                row, runtime.service.get(cert_id), positions[cert_id], START
            )
        )
    } == {}
