"""One or more complete ``certd serve`` processes on one database and one
broker, with topics of their own, sharing their tokens."""

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

from service.kafka_admin import ensure_topics, topic_specs
from service.settings import Settings
from tests.api.server import ServerProcess
from tests.reliability.load import Servers
from tests.stream.topic import wait_for

PARTITIONS = 3


class Deployment:
    """``count`` servers of the whole service (API, views, publisher, payment
    consumer, scheduler) over one database and one broker."""

    def __init__(
        self,
        database_url: str,
        bootstrap: str,
        workdir: Path,
        count: int = 1,
        **settings: str,
    ) -> None:
        suffix = uuid4().hex[:10]
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.topic = f"certification.events.{suffix}"
        self.settings = {
            "kafka_bootstrap": bootstrap,
            "kafka_topic": self.topic,
            "kafka_payments_topic": f"billing.payments.{suffix}",
            "kafka_dlq_topic": f"billing.payments.dlq.{suffix}",
            "kafka_consumer_group": f"certd-payments-{suffix}",
            "kafka_partitions": str(PARTITIONS),
            **settings,
        }
        self.servers = [
            ServerProcess(database_url, _folder(workdir / f"server-{n}"), self.settings)
            for n in range(count)
        ]
        for server in self.servers[1:]:
            server.tokens = self.servers[0].tokens

    def stream_settings(self) -> Settings:
        """The settings of the servers' topics and consumer group."""
        return Settings.model_validate(
            {**self.settings, "database_url": self.database_url}
        )

    def create_topics(self) -> None:
        ensure_topics(self.bootstrap, topic_specs(self.stream_settings()))

    def wait_until_consuming(self, timeout: float = 60.0) -> None:
        """Wait until every server's payment consumer has joined its group."""
        wait_for(
            lambda: all(
                self.events(server, "payment_consumer_started")
                for server in self.servers
            ),
            timeout,
            "every payment consumer to join its group",
        )

    @staticmethod
    def events(server: ServerProcess, name: str) -> list[dict[str, Any]]:
        """The JSON lines of a server's log whose event is ``name``."""
        lines = (line for line in server.log().splitlines() if line.startswith("{"))
        return [entry for entry in map(json.loads, lines) if entry.get("event") == name]

    def __enter__(self) -> "Deployment":
        self.create_topics()
        for server in self.servers:
            server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            if server.is_running:
                server.stop()

    def targets(self) -> Servers:
        return Servers(
            [server.base_url for server in self.servers], self.servers[0].tokens
        )

    def errors_logged(self, expected: frozenset[int] = frozenset()) -> list[str]:
        """Every error line or 5xx answer the servers logged, but ``expected``."""
        return [
            line
            for server in self.servers
            for line in server.server_errors_since(0, expected)
        ]


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
