"""``certd serve`` killed with SIGKILL at random moments during a load, ten
times, and started again each time on the same database and broker.

After each restart the views and the topic catch up with the store by
themselves and agree with it; over all the rounds, every answer a client got
is true of the store and no command is stored twice or lost.
"""

import random
import time
from pathlib import Path

import pytest

from tests.reliability.agreement import (
    judge,
    store_of,
    stored_events,
    topic_disagreements,
    views_disagreements,
    wait_until_caught_up,
)
from tests.reliability.deployment import Deployment
from tests.reliability.load import Load, Tally

pytestmark = pytest.mark.timeout(240)

KILLS = 10


def test_serve_killed_ten_times_under_load_comes_back_agreeing_with_the_store(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, kafka_bootstrap, tmp_path)
    (server,) = deployment.servers
    everything = Tally()
    disagreements: list[object] = []
    with deployment:
        for _ in range(KILLS):
            with Load(deployment.targets(), workers=3) as load:
                time.sleep(random.uniform(0.3, 1.5))
                server.kill()
                server.start()
            everything.answers += load.tally.answers
            everything.failures += load.tally.failures
            wait_until_caught_up(server.base_url)
            disagreements += agreement_now(postgres_url, kafka_bootstrap, deployment)

    assert disagreements == []
    verdict = judge(postgres_url, everything)
    stored = verdict.stored
    assert everything.failures == []
    assert set(everything.statuses()) <= {0, 200, 201, 409, 503}
    assert verdict.problems == []
    print(
        f"kill -9: {KILLS} kills, {len(everything.answers)} commands "
        f"{everything.statuses()}, {len(stored)} events, all agreeing"
    )


def agreement_now(
    database_url: str, bootstrap: str, deployment: Deployment
) -> list[object]:
    """Whatever the views or the topic say that the store does not."""
    with store_of(database_url) as runtime:
        stored = stored_events(runtime.service)
        views = views_disagreements(runtime)
    found: list[object] = [views] if views else []
    return found + topic_disagreements(stored, bootstrap, deployment.topic)
