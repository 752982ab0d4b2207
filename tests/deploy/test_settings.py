"""Secrets read from files, as containers receive them, and settings that
cannot be used stopping ``certd`` at start without printing a secret."""

import os
import socket
import subprocess
from pathlib import Path

import pytest

from service.settings import Settings
from tests.projections.steps import CERTD

TOKEN = "operator-token-never-printed"


def certd_with(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
    return subprocess.run(
        [str(CERTD), *args],
        env=env | variables,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tokens_and_database_url_are_read_from_their_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens, url = tmp_path / "tokens", tmp_path / "url"
    tokens.write_text(f"operator:{TOKEN}\n")
    url.write_text("postgresql://certd:pw@db:5432/certd\n")
    for name in [name for name in os.environ if name.startswith("CERTD_")]:
        monkeypatch.delenv(name)  # make exports tokens for `make run`
    monkeypatch.setenv("CERTD_API_TOKENS_FILE", str(tokens))
    monkeypatch.setenv("CERTD_DATABASE_URL_FILE", str(url))

    settings = Settings()

    assert settings.api_tokens.get_secret_value() == f"operator:{TOKEN}"
    assert settings.database_url == "postgresql://certd:pw@db:5432/certd"


def test_a_setting_given_both_ways_stops_certd_and_prints_neither(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"operator:{TOKEN}")

    refused = certd_with(
        "list",
        CERTD_API_TOKENS=f"operator:{TOKEN}",
        CERTD_API_TOKENS_FILE=str(tokens),
    )

    assert refused.returncode == 2
    assert "CERTD_API_TOKENS or CERTD_API_TOKENS_FILE, not both" in refused.stderr
    assert TOKEN not in refused.stderr + refused.stdout


def test_a_secret_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    refused = certd_with("list", CERTD_DATABASE_URL_FILE=str(tmp_path / "missing"))

    assert refused.returncode == 2
    assert "CERTD_DATABASE_URL_FILE: cannot read" in refused.stderr


def test_a_metrics_port_in_use_stops_the_role_with_a_message(sqlite_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        refused = certd_with(
            "project",
            "--metrics-port",
            str(port),
            CERTD_DATABASE_URL=sqlite_url,
            CERTD_LOG_FORMAT="json",
        )

    assert refused.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr
