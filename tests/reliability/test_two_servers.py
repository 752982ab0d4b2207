"""Two complete ``certd serve`` on one PostgreSQL database, taking commands at
once: consecutive commands of each certification go to alternate servers, and
every decision is sent to both at the same moment.

No update is lost or doubled, every answer is true of the store (the 409 of
each raced decision explains no stored event), the views and the topic agree
with the store, and the two schedulers raise each re-evaluation exactly once.
"""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.server import one_year_after
from tests.reliability.agreement import (
    Stored,
    judge,
    store_of,
    stored_events,
    topic_disagreements,
    wait_until_caught_up,
)
from tests.reliability.deployment import Deployment
from tests.reliability.load import Load, Tally
from tests.stream.topic import wait_for

pytestmark = pytest.mark.timeout(150)

LOAD_SECONDS = 10
LEAD_DAYS = 365  # a certification falls due for re-evaluation the day it is paid


def test_two_servers_at_once_lose_no_update_and_agree_with_the_store(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(
        postgres_url,
        kafka_bootstrap,
        tmp_path,
        count=2,
        reevaluation_lead_days=str(LEAD_DAYS),
        scheduler_interval="1",
    )
    with deployment:
        with Load(deployment.targets(), workers=4) as load:
            time.sleep(LOAD_SECONDS)
        tally = load.tally
        wait_until_every_due_one_is_raised(postgres_url)
        time.sleep(2.5)  # two more passes of each scheduler, to raise any twice
        for server in deployment.servers:
            wait_until_caught_up(server.base_url)

    verdict = judge(postgres_url, tally)
    stored = verdict.stored
    assert tally.failures == []
    assert set(tally.statuses()) <= {200, 201, 409}, tally.statuses()
    assert conflicted_commands(tally) == {"approve"}
    assert len(tally.certifications) >= 10
    assert verdict.problems == []
    assert each_decision_won_once(tally)
    assert topic_disagreements(stored, kafka_bootstrap, deployment.topic) == []
    assert reevaluations_raised(stored) == certified_and_due(stored)
    assert deployment.errors_logged() == []
    print(
        f"two servers: {len(tally.answers)} commands in {LOAD_SECONDS} s "
        f"{dict(tally.statuses())}, {len(tally.certifications)} certifications, "
        f"{sum(reevaluations_raised(stored).values())} re-evaluations raised once"
    )


def each_decision_won_once(tally: Tally) -> bool:
    """Of the decisions sent to both servers at once, one per certification won."""
    won: dict[str, int] = {}
    for answer in tally.answers:
        if answer.command == "approve" and answer.succeeded and answer.cid:
            won[answer.cid] = won.get(answer.cid, 0) + 1
    return bool(won) and set(won.values()) == {1}


def conflicted_commands(tally: Tally) -> set[str]:
    """The commands answered 409: only the decisions sent to both at once."""
    return {answer.command for answer in tally.answers if answer.status == 409}


def reevaluations_raised(stored: dict[int, Stored]) -> Counter[str]:
    return Counter(
        event.cid for event in stored.values() if event.type == "ReevaluationDue"
    )


def wait_until_every_due_one_is_raised(database_url: str) -> None:
    with store_of(database_url) as runtime:
        wait_for(
            lambda: (
                set(reevaluations_raised(stored_events(runtime.service)))
                >= set(certified_and_due(stored_events(runtime.service)))
            ),
            30,
            "the schedulers to raise every re-evaluation due",
        )


def certified_and_due(stored: dict[int, Stored]) -> Counter[str]:
    """Each certification paid up whose re-evaluation falls due by today: once."""
    today = datetime.now(UTC).date()
    due_on = one_year_after(today) - timedelta(days=LEAD_DAYS)
    if due_on > today:  # a 29 February within the year puts it off a day
        return Counter()
    return Counter(
        event.cid for event in stored.values() if event.type == "AnnualFeePaid"
    )
