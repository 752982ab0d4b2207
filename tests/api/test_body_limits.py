"""Oversized and deeply nested bodies are refused before they are parsed,
with the limit named in the answer, and nothing is stored."""

import json
import socket
from collections.abc import Iterator

import pytest

from api.limits import json_depth_exceeds
from tests.api.server import HOST, Api, ServerProcess
from tests.factories import application_body, submission_body

MAX_BYTES = 64 * 1024
MAX_DEPTH = 8


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server on SQLite with small limits, so the tests send little."""
    workdir = tmp_path_factory.mktemp("limited")
    server = ServerProcess(
        f"sqlite:///{workdir / 'certd.sqlite'}",
        workdir,
        settings={"max_body_bytes": str(MAX_BYTES), "max_json_depth": str(MAX_DEPTH)},
    )
    server.start()
    api = Api(server)
    yield api
    api.close()
    server.stop()


def nested(depth: int) -> bytes:
    """A reason body whose extra field nests ``depth`` levels in all."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"reason": "r", "extra": ' + inner + b"}"


def read_until_closed(raw: socket.socket) -> str:
    received = b""
    while chunk := raw.recv(4096):
        received += chunk
    return received.decode()


def test_a_body_over_the_limit_is_refused_with_413_naming_it(limited: Api) -> None:
    cid = limited.start()
    padding = "x" * MAX_BYTES

    answer = limited.operator.post(
        f"/v1/certifications/{cid}/revocation", json={"reason": padding}
    )

    assert answer.status_code == 413, answer.text
    assert f"{MAX_BYTES:,} bytes" in answer.json()["detail"]
    assert limited.event_types(cid) == ["ApplicationStarted"]


def test_a_body_that_lies_about_its_length_is_refused_before_it_is_sent(
    limited: Api,
) -> None:
    request = (
        "POST /v1/certifications HTTP/1.1\r\n"
        f"Host: {HOST}\r\n"
        f"Authorization: Bearer {limited.server.tokens['applicant']}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {100 * MAX_BYTES}\r\n\r\n"
    ).encode()

    with socket.create_connection((HOST, limited.server.port), timeout=10) as raw:
        raw.sendall(request + b"{")  # the rest of the body never comes
        answer = read_until_closed(raw)

    assert answer.startswith("HTTP/1.1 413"), answer
    assert f"{MAX_BYTES:,} bytes" in answer


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(limited: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"reason": "'
        for _ in range(4 * MAX_BYTES // 1024):
            yield b"y" * 1024
        yield b'"}'

    answer = limited.applicant.post(
        "/v1/certifications",
        content=chunks(),
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 413, answer.text


def test_a_body_nested_past_the_limit_is_refused_with_422_naming_it(
    limited: Api,
) -> None:
    cid = limited.start()

    answer = limited.operator.post(
        f"/v1/certifications/{cid}/revocation",
        content=nested(MAX_DEPTH + 1),
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 422, answer.text
    assert f"at most {MAX_DEPTH} levels" in answer.json()["detail"]
    assert limited.event_types(cid) == ["ApplicationStarted"]


def test_a_body_nested_to_the_limit_is_parsed_and_judged_by_its_fields(
    limited: Api,
) -> None:
    cid = limited.start()

    answer = limited.operator.post(
        f"/v1/certifications/{cid}/revocation",
        content=nested(MAX_DEPTH),
        headers={"content-type": "application/json"},
    )

    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == "extra: Extra inputs are not permitted"


def test_real_bodies_are_well_within_the_default_limits() -> None:
    for body in (application_body(), submission_body()):
        assert not json_depth_exceeds(json.dumps(body).encode(), 8)


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b'{"a": "[[[[[[[[[[[[["}', False),
        (b'{"a": "\\"[[[[[[[[[[["}', False),
        (b"[[[[[[[[[]]]]]]]]]", True),
        (b'[{"a": [{"b": [{"c": [{"d": [1]}]}]}]}]', True),
        (b"[[[[[[[[]]]]]]]]", False),
        # An escaped backslash ends its string's escapes; the brackets after
        # the string count.
        (b'{"a": "\\\\", "b": [[[[[[[[]]]]]]]]}', True),
    ],
)
def test_brackets_inside_strings_do_not_count_as_nesting(
    body: bytes, deep: bool
) -> None:
    assert json_depth_exceeds(body, 8) is deep


def test_a_megabyte_of_escaped_quotes_in_an_unterminated_string_is_judged() -> None:
    """Each quote of an unterminated string once made the scan read the rest
    of the body again: a body of this size took hours."""
    body = b'"' + b'\\"' * 500_000

    assert json_depth_exceeds(body, 32) is False
