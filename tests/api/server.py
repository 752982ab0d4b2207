"""A real ``certd serve`` process, and the HTTP steps the API tests share.

Nothing here is mocked: the server is the installed ``certd`` command on a
real store, and every step is an HTTP request with a role's bearer token.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.factories import application_body, submission_body

HOST = "127.0.0.1"
ROLES = ("applicant", "operator", "billing", "auditor")
READY_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 15.0
CERTD = Path(sys.executable).with_name("certd")
POSITION = "Store-Position"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def one_year_after(day: date) -> date:
    """Return the same day a year later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


class ServerProcess:
    """``certd serve`` as a subprocess on a free port, logging to a file.

    Stopping and starting again keeps the database and the port, so clients
    made before a restart keep working after it.
    """

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        settings: dict[str, str] | None = None,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        """``settings`` are more ``CERTD_*`` variables (without the prefix,
        lower case); ``serve_args`` more arguments of ``certd serve``."""
        self.database_url = database_url
        self.workdir = workdir
        self.settings = settings or {}
        self.serve_args = serve_args
        self.log_path = workdir / "certd.log"
        self.tokens = {role: secrets.token_urlsafe(24) for role in ROLES}
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CERTD_")
        }
        env |= {
            "CERTD_DATABASE_URL": self.database_url,
            "CERTD_API_TOKENS": ",".join(
                f"{role}:{token}" for role, token in self.tokens.items()
            ),
            "CERTD_LOG_FORMAT": "json",
        }
        env |= {f"CERTD_{name.upper()}": value for name, value in self.settings.items()}
        command = [
            str(CERTD),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            *self.serve_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_ready()

    def stop(self) -> int:
        """Ask the server to stop (SIGTERM), kill it if it will not; return its code."""
        process = self._process
        if process is None:
            msg = "the server was never started"
            raise RuntimeError(msg)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): nothing is finished or closed."""
        if self._process is None:
            msg = "the server was never started"
            raise RuntimeError(msg)
        self._process.kill()
        self._process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def server_errors_since(
        self, offset: int, expected: frozenset[int] = frozenset()
    ) -> list[str]:
        """Return the log lines since ``offset`` of errors or 5xx answers.

        A status in ``expected`` is one the test asked for on purpose.
        """
        with self.log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        failures = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                failures.append(line)  # anything but a JSON line is a crash
                continue
            status = entry.get("status")
            too_bad = (
                isinstance(status, int) and status >= 500 and status not in expected
            )
            if too_bad or entry.get("level") in {"error", "critical"}:
                failures.append(line)
        return failures

    def client(self, role: str | None = None) -> httpx.Client:
        """Return a client that sends the role's token, or none without a role."""
        headers = {} if role is None else self.bearer(self.tokens[role])
        return httpx.Client(
            base_url=self.base_url, headers=headers, timeout=30.0, trust_env=False
        )

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                pytest.fail(
                    f"certd serve exited with {self._process.returncode} before "
                    f"it was ready; its log:\n{self.log()}"
                )
            try:
                ready = httpx.get(
                    f"{self.base_url}/readyz", timeout=2.0, trust_env=False
                )
            except httpx.TransportError:
                ready = None
            if ready is not None and ready.status_code == 200:
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"certd serve was not ready within {READY_TIMEOUT_SECONDS:.0f} s; "
            f"its log:\n{self.log()}"
        )


class Api:
    """One server's clients, one per role, and the lifecycle steps over HTTP.

    Each step checks its own answer, so a test fails at the step that broke.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients = {role: server.client(role) for role in ROLES}
        self.anonymous = server.client()
        # Read-your-writes: queries wait for the last position a command stored.
        self.last_position = 0
        for client in self.clients.values():
            client.event_hooks["response"].append(self.note_position)
        self.applicant = self.clients["applicant"]
        self.operator = self.clients["operator"]
        self.billing = self.clients["billing"]
        self.auditor = self.clients["auditor"]

    def close(self) -> None:
        for client in [*self.clients.values(), self.anonymous]:
            client.close()

    # Commands, answered as they come.

    def apply(self, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.applicant.post(
            "/v1/certifications", json=body or application_body()
        )

    def submit(self, cid: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.applicant.post(
            f"/v1/certifications/{cid}/submission", json=body or submission_body()
        )

    def pay(
        self, cid: str, kind: str, amount: str | int, reference: str | None = None
    ) -> httpx.Response:
        body = {
            "kind": kind,
            "amount_usd": str(amount),
            "reference": reference or f"pay-{uuid4()}",
        }
        return self.billing.post(f"/v1/certifications/{cid}/payments", json=body)

    def pay_due(self, cid: str, reference: str | None = None) -> httpx.Response:
        """Pay the one fee the certification has due, in full."""
        (due,) = self.view(cid)["fees"]["due"]
        return self.pay(cid, due["kind"], due["amount_usd"], reference)

    def request_info(self, cid: str, *questions: str) -> httpx.Response:
        body = {"questions": list(questions or ["Which contract covers the news?"])}
        return self.operator.post(f"/v1/certifications/{cid}/info-requests", json=body)

    def provide_info(self, cid: str, request_id: str) -> httpx.Response:
        body = {"request_id": request_id, "answers": ["Agreement AGR-2026-001."]}
        return self.applicant.post(
            f"/v1/certifications/{cid}/info-responses", json=body
        )

    def decide(self, cid: str, outcome: str = "approved") -> httpx.Response:
        body = {"outcome": outcome, "reason": f"{outcome} after review"}
        return self.operator.post(f"/v1/certifications/{cid}/decision", json=body)

    def operate(
        self, cid: str, action: str, client: httpx.Client | None = None
    ) -> httpx.Response:
        """Send a command whose body is only a reason (suspension, revocation...)."""
        body = {"reason": f"{action} for the test"}
        return (client or self.operator).post(
            f"/v1/certifications/{cid}/{action}", json=body
        )

    # Queries, checked.

    def note_position(self, response: httpx.Response) -> None:
        position = response.headers.get("store-position")
        if position is not None:
            self.last_position = max(self.last_position, int(position))

    def view(self, cid: str) -> dict[str, Any]:
        answer = self.auditor.get(
            f"/v1/certifications/{cid}", params={"min_position": self.last_position}
        )
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        return view

    def history(self, cid: str) -> list[dict[str, Any]]:
        answer = self.auditor.get(f"/v1/certifications/{cid}/history")
        assert answer.status_code == 200, answer.text
        history: list[dict[str, Any]] = answer.json()
        return history

    def event_types(self, cid: str) -> list[str]:
        return [entry["type"] for entry in self.history(cid)]

    # Getting a certification to a status, each step checked.

    def start(self, body: dict[str, Any] | None = None) -> str:
        answer = self.apply(body)
        assert answer.status_code == 201, answer.text
        cid: str = answer.json()["id"]
        return cid

    def bring_to(
        self,
        status: str,
        body: dict[str, Any] | None = None,
        submission: dict[str, Any] | None = None,
    ) -> str:
        """Start a certification and take it to ``status`` by the usual path.

        ``body`` is the application and ``submission`` the written submission,
        when the test needs its own.
        """
        cid = self.start(body)
        path = STEPS_TO[status]
        for step in path:
            answer = self._take(step, cid, submission)
            assert answer.status_code == 200, f"{step}: {answer.text}"
        assert self.view(cid)["status"] == status
        return cid

    def _take(
        self, step: str, cid: str, submission: dict[str, Any] | None = None
    ) -> httpx.Response:
        if step == "submit":
            return self.submit(cid, submission)
        if step == "pay":
            return self.pay_due(cid)
        if step == "request_info":
            return self.request_info(cid)
        if step in {"approved", "rejected"}:
            return self.decide(cid, step)
        return self.operate(cid, step)


_TO_REVIEW = ("submit", "pay")
_TO_CERTIFIED = (*_TO_REVIEW, "approved", "pay")
STEPS_TO: dict[str, tuple[str, ...]] = {
    "applied": (),
    "submitted": ("submit",),
    "in_review": _TO_REVIEW,
    "awaiting_info": (*_TO_REVIEW, "request_info"),
    "approved": (*_TO_REVIEW, "approved"),
    "rejected": (*_TO_REVIEW, "rejected"),
    "certified": _TO_CERTIFIED,
    "suspended": (*_TO_CERTIFIED, "suspension"),
    "revoked": (*_TO_CERTIFIED, "revocation"),
    "withdrawn": ("withdrawal",),
}
