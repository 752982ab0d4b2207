"""Replicas starting together on one PostgreSQL database."""

import threading

from service.application import CertificationService
from service.composition import build_service
from service.settings import Settings


def test_three_services_starting_at_once_on_one_database_all_start(
    postgres_url: str,
) -> None:
    settings = Settings(database_url=postgres_url)
    barrier = threading.Barrier(3)
    started: list[CertificationService] = []
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            started.append(build_service(settings))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert len(started) == 3
    for service in started:
        assert service.ping_store() == 0
        service.close()
