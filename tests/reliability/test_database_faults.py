"""PostgreSQL ends every connection of the service, again and again, in the
middle of a command load.

The service recovers by itself: no command is half applied, a client gets 503
when its command may not have been stored, never a 409 for one that was, and
never a 200 the store does not bear out. Afterwards the views and the topic
agree with the store.
"""

import json
import random
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.databases import ADMIN_URL
from tests.reliability.agreement import (
    judge,
    topic_disagreements,
    wait_until_caught_up,
)
from tests.reliability.deployment import Deployment
from tests.reliability.load import Load

pytestmark = pytest.mark.timeout(150)

LOAD_SECONDS = 12
# 503 when the store could not say whether a command was stored. Never 409:
# nothing else writes, and an insert retried after its first try committed
# answers as stored.
ALLOWED = {200, 201, 503}
# A client waits no longer than this for any answer, even while the database
# keeps ending connections: the store gives up on it and answers 503 sooner.
MOST_SECONDS_PER_ANSWER = 10.0
# The error lines of a background worker that lost its connection and tries
# again (the views' runner, the scheduler); any other error line is a failure.
RETRIED_BY_WORKERS = frozenset({"projection_batch_failed", "scheduler_pass_failed"})
LOST_CONNECTION = ("OperationalError", "InterfaceError", "ViewsUnavailableError")


class ConnectionKiller:
    """Ends every connection to one database at random moments, until stopped."""

    def __init__(self, database_url: str, every: tuple[float, float]) -> None:
        self.database = urlsplit(database_url).path.lstrip("/")
        self.every = every
        self.kills: list[int] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-killer")

    def __enter__(self) -> "ConnectionKiller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            while not self._stopping.wait(random.uniform(*self.every)):
                ended = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.database,),
                ).fetchall()
                self.kills.append(len(ended))


def test_connections_ended_under_load_cost_no_wrong_answer_and_no_half_command(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = Deployment(postgres_url, kafka_bootstrap, tmp_path)
    with deployment:
        with Load(deployment.targets(), workers=4) as load:
            time.sleep(1)
            with ConnectionKiller(postgres_url, every=(0.2, 0.8)) as killer:
                time.sleep(LOAD_SECONDS)
            time.sleep(2)  # the load goes on once the database is left alone
        tally = load.tally
        wait_until_caught_up(deployment.servers[0].base_url)
        errors = deployment.errors_logged(expected=frozenset({503}))

    verdict = judge(postgres_url, tally)
    statuses = tally.statuses()
    assert tally.failures == []
    assert set(statuses) <= ALLOWED, statuses
    assert tally.slowest() < MOST_SECONDS_PER_ANSWER
    assert len(killer.kills) >= 10
    assert sum(killer.kills) > 0
    assert verdict.problems == []
    assert unexpected_errors(errors) == []
    assert topic_disagreements(verdict.stored, kafka_bootstrap, deployment.topic) == []
    print(
        f"connection kills: {len(killer.kills)} rounds ended {sum(killer.kills)} "
        f"connections; {len(tally.answers)} commands {statuses}; "
        f"slowest answer {tally.slowest():.2f} s; {len(errors)} error lines"
    )


def unexpected_errors(lines: list[str]) -> list[str]:
    """The error lines that are not a worker retrying after a lost connection."""
    return [line for line in lines if not is_lost_connection_retried(line)]


def is_lost_connection_retried(line: str) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False  # not a log line: a crash
    exception = str(entry.get("exception", "")).strip()
    raised = exception.splitlines()[-1] if exception else ""
    return entry.get("event") in RETRIED_BY_WORKERS and any(
        name in raised for name in LOST_CONNECTION
    )
