"""A ``certd`` role as the deployment runs it: a process of its own, asked for
its health and scraped for its metrics over HTTP, stopped with SIGTERM."""

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.embedded_broker import free_port
from tests.projections.steps import CERTD

READY_TIMEOUT_SECONDS = 30.0
# A role must be gone this soon after SIGTERM; the deployment's grace period
# before SIGKILL is 30 s.
STOP_TIMEOUT_SECONDS = 10.0


class Scrape:
    """One scrape of a metrics endpoint, parsed by prometheus-client."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; a KeyError names a sample that is not there."""
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str) -> bool:
        return any(found == name for found, _ in self.samples)


class RoleProcess:
    """``certd VERB ...`` with ``CERTD_*`` settings and a metrics port of its
    own, logging JSON lines to a file that outlives each run."""

    def __init__(
        self,
        args: tuple[str, ...],
        workdir: Path,
        settings: dict[str, str],
        program: Sequence[str] = (str(CERTD),),
    ) -> None:
        """``settings`` are ``CERTD_*`` variables without the prefix, lower
        case; ``program`` runs in place of ``certd`` (a script that slows a
        part down, then calls ``service.cli.main`` with the arguments)."""
        self.args = args
        self.program = tuple(program)
        self.metrics_port = free_port()
        self.log_path = workdir / f"{args[0]}-{self.metrics_port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CERTD_")},
            "CERTD_LOG_FORMAT": "json",
            "CERTD_METRICS_PORT": str(self.metrics_port),
            **{f"CERTD_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, wait: bool = True) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.program, *self.args], env=self.env, stdout=log, stderr=log
            )
        if wait:
            self.wait_until_healthy()

    def wait_until_healthy(self) -> None:
        wait_until(
            lambda: self.health_status() == 200,
            READY_TIMEOUT_SECONDS,
            f"{self.args[0]} to be healthy",
        )

    def health_status(self) -> int | None:
        """The status /healthz answers; None while nothing listens."""
        self._fail_if_exited()
        try:
            return self.healthz().status_code
        except httpx.TransportError:
            return None

    def healthz(self) -> httpx.Response:
        return httpx.get(f"{self.metrics_url}/healthz", timeout=5, trust_env=False)

    def scrape(self) -> Scrape:
        answer = httpx.get(f"{self.metrics_url}/metrics", timeout=10, trust_env=False)
        assert answer.status_code == 200, answer.text
        return Scrape(answer.text)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> tuple[int, float]:
        """SIGTERM; return the exit code and the seconds it took to exit.

        A role still running after ``timeout`` seconds is killed and the
        test fails.
        """
        process = self.process
        assert process is not None
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"{self.args[0]} ignored SIGTERM; its log:\n{self.log()}")
        return process.returncode, time.monotonic() - sent

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = (line for line in self.log().splitlines() if line.startswith("{"))
        return [entry for entry in map(json.loads, lines) if entry.get("event") == name]

    def errors(self) -> list[str]:
        """Log lines at error level, or not JSON (a crash's traceback)."""
        found = []
        for line in self.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                found.append(line)
                continue
            if entry.get("level") in {"error", "critical"}:
                found.append(line)
        return found

    def _fail_if_exited(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(
                f"certd {' '.join(self.args)} exited with {self.process.returncode}; "
                f"its log:\n{self.log()}"
            )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)
