"""A load of real HTTP commands on one or more ``certd serve``, every answer kept.

Each worker takes certifications from application to certified, one command
after the other, sending each to the next server in turn, so consecutive
commands of one certification go through different processes. A command that
gets no clear answer (503, no answer at all) is not assumed either way: the
worker reads the certification's stored history and carries on from the
status it really has, as it does after a 409 (another command came first and
this one stored nothing). Starts carry an ``Idempotency-Key`` and payments a
fixed reference, so a command sent again after an unclear answer changes
nothing.

Every answer is kept, so a test can hold each one against the store.
"""

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import uuid4

import httpx

from tests.factories import application_body, submission_body

# revenue 250,000 USD: submission fee 150, annual fee 1,000
FEES = {"submission_fee": "150", "annual_fee": "1000"}

# The events a command may record, by command.
EVENTS_OF = {
    "start": {"ApplicationStarted"},
    "submit": {"SubmissionReceived"},
    "pay": {"SubmissionFeePaid", "AnnualFeePaid"},
    "approve": {"Approved"},
}
# The events the load records at most once per certification: it takes each
# one through its first year once, and never renews it.
ONCE_PER_CERTIFICATION = frozenset().union(*EVENTS_OF.values())
# The status each history ends in, by its last event, as far as the load goes.
STATUS_AFTER = {
    "ApplicationStarted": "applied",
    "SubmissionReceived": "submitted",
    "SubmissionFeePaid": "in_review",
    "Approved": "approved",
    "AnnualFeePaid": "certified",
    "ReevaluationDue": "certified",  # the scheduler's: the load is done with it
}
NEXT_COMMAND = {
    "applied": "submit",
    "submitted": "pay",
    "in_review": "approve",
    "approved": "pay",
}
# Answers that leave open whether the command was stored. 0: the connection
# broke before any answer.
UNCLEAR = frozenset({0, 503})
# Answers after which a worker waits a moment before it reads and goes on.
BACK_OFF = UNCLEAR | {409}
ATTEMPTS_PER_CERTIFICATION = 60
# How long a worker keeps sending an application that gets no clear answer,
# long enough for a killed server to be started again.
PATIENCE_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    """One command and what the server answered to it."""

    command: str
    cid: str | None
    server: str
    status: int  # 0 when no answer came
    position: int | None  # the Store-Position header
    version: int | None  # the certification's version in the answer's body
    text: str
    seconds: float = 0.0  # how long the answer took

    @property
    def succeeded(self) -> bool:
        return self.status in {200, 201}


@dataclass
class Tally:
    """Every answer of a load, in the order they came, across workers."""

    answers: list[Answer] = field(default_factory=list)
    certifications: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def slowest(self) -> float:
        return max((answer.seconds for answer in self.answers), default=0.0)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for answer in self.answers:
            counts[answer.status] = counts.get(answer.status, 0) + 1
        return counts


class Servers:
    """The base URLs of the servers and their tokens (the same on each)."""

    def __init__(self, base_urls: list[str], tokens: dict[str, str]) -> None:
        self.base_urls = base_urls
        self.tokens = tokens
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def next_url(self) -> str:
        with self._lock:
            return self.base_urls[next(self._turn) % len(self.base_urls)]


class Worker:
    """One client thread's lifecycles, each command to the next server."""

    def __init__(self, servers: Servers, tally: Tally) -> None:
        self.servers = servers
        self.tally = tally
        self.client = httpx.Client(timeout=30.0, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def certify_one(self) -> str | None:
        """Take one new certification to certified; return its id."""
        key = f"load-{uuid4()}"
        cid = self._start(key)
        for _ in range(ATTEMPTS_PER_CERTIFICATION):
            if cid is None:
                return None
            status = self.status_of(cid)
            if status not in NEXT_COMMAND:
                self.read(cid)
                return cid
            self._command(NEXT_COMMAND[status], cid, status)
        return cid

    def submitted_one(self) -> str:
        """A new certification waiting for its submission fee."""
        path = "/v1/certifications"
        started = self.send("start", None, "applicant", path, application_body())
        assert started.status == 201, started.text
        cid = str(started.cid)
        path = f"/v1/certifications/{cid}/submission"
        answer = self.send("submit", cid, "applicant", path, submission_body())
        assert answer.status == 200, answer.text
        return cid

    def pay(self, cid: str, kind: str, reference: str) -> Answer:
        """Pay a fee of ``kind`` in full over HTTP, as billing does."""
        body = {"kind": kind, "amount_usd": FEES[kind], "reference": reference}
        return self.send(
            "pay", cid, "billing", f"/v1/certifications/{cid}/payments", body
        )

    def _start(self, key: str) -> str | None:
        """Send the application until it is answered; the key keeps it one.

        The answers are kept once the id is known, so that a start stored
        behind an unclear answer counts for its certification.
        """
        answers = []
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            answer = self.send(
                "start",
                None,
                "applicant",
                "/v1/certifications",
                application_body(),
                headers={"Idempotency-Key": key},
                keep=False,
            )
            answers.append(answer)
            if answer.succeeded:
                break
        cid = answers[-1].cid
        for answer in answers:
            self.tally.add(replace(answer, cid=cid))
        if cid is not None:
            with self.tally.lock:
                self.tally.certifications.append(cid)
        return cid

    def _command(self, command: str, cid: str, status: str) -> Answer:
        one = f"/v1/certifications/{cid}"
        if command == "submit":
            body = submission_body()
            return self.send(command, cid, "applicant", f"{one}/submission", body)
        if command == "approve":
            body = {"outcome": "approved", "reason": "approved under load"}
            return self._race(command, cid, "operator", f"{one}/decision", body)
        kind = "submission_fee" if status == "submitted" else "annual_fee"
        return self.pay(cid, kind, f"{kind}-{cid}")

    def _race(
        self, command: str, cid: str, role: str, path: str, body: dict[str, Any]
    ) -> Answer:
        """Send the same command to every server at once; one may win."""
        urls = self.servers.base_urls
        if len(urls) == 1:
            return self.send(command, cid, role, path, body)
        start = threading.Barrier(len(urls))

        def one(base: str) -> Answer:
            start.wait(timeout=30)
            return self.send(command, cid, role, path, body, base=base)

        with ThreadPoolExecutor(max_workers=len(urls)) as pool:
            answers = list(pool.map(one, urls))
        return next((a for a in answers if a.succeeded), answers[0])

    def read(self, cid: str) -> Answer:
        """Read the certification's status view, as a client of the views."""
        base = self.servers.next_url()
        auth = {"Authorization": f"Bearer {self.servers.tokens['auditor']}"}
        started = time.monotonic()
        try:
            response = self.client.get(f"{base}/v1/certifications/{cid}", headers=auth)
        except httpx.TransportError as error:
            answer = Answer("read", cid, base, 0, None, None, repr(error))
        else:
            answer = _answer_of("read", cid, base, response)
        answer = replace(answer, seconds=time.monotonic() - started)
        self.tally.add(answer)
        return answer

    def send(
        self,
        command: str,
        cid: str | None,
        role: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        base: str | None = None,
        keep: bool = True,
    ) -> Answer:
        base = base or self.servers.next_url()
        auth = {"Authorization": f"Bearer {self.servers.tokens[role]}"}
        started = time.monotonic()
        try:
            response = self.client.post(
                base + path, json=body, headers=auth | (headers or {})
            )
        except httpx.TransportError as error:
            answer = Answer(command, cid, base, 0, None, None, repr(error))
        else:
            answer = _answer_of(command, cid, base, response)
        answer = replace(answer, seconds=time.monotonic() - started)
        if keep:
            self.tally.add(answer)
        if answer.status in BACK_OFF:
            time.sleep(random.uniform(0.01, 0.1))
        return answer

    def status_of(self, cid: str) -> str:
        """The status the stored history says, from any server that answers."""
        auth = {"Authorization": f"Bearer {self.servers.tokens['auditor']}"}
        for _ in range(100):
            base = self.servers.next_url()
            try:
                response = self.client.get(
                    f"{base}/v1/certifications/{cid}/history", headers=auth
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return STATUS_AFTER.get(response.json()[-1]["type"], "elsewhere")
            time.sleep(0.1)
        msg = f"no server told the history of {cid} in 100 tries"
        raise AssertionError(msg)


def _answer_of(
    command: str, cid: str | None, base: str, response: httpx.Response
) -> Answer:
    version = None
    if response.status_code in {200, 201}:
        body = response.json()
        version = body.get("version")
        cid = cid or body.get("id")
    position = response.headers.get("store-position")
    return Answer(
        command,
        cid,
        base,
        response.status_code,
        int(position) if position else None,
        version,
        response.text[:300],
    )


class Load:
    """``workers`` threads certifying certifications until stopped."""

    def __init__(self, servers: Servers, workers: int = 4) -> None:
        self.servers = servers
        self.tally = Tally()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{n}") for n in range(workers)
        ]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Tally:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=120)
        return self.tally

    def _run(self) -> None:
        worker = Worker(self.servers, self.tally)
        try:
            while not self._stopping.is_set():
                worker.certify_one()
        except BaseException as error:  # reported by the test, not lost
            with self.tally.lock:
                self.tally.failures.append(error)
        finally:
            worker.close()
