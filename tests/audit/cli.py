"""``certd`` run in-process, as an auditor would run it at a terminal."""

from dataclasses import dataclass

import pytest

from service.cli import main


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def run_certd(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str | None,
    *args: str,
) -> Ran:
    """Run one verb on the store (or, without a URL, on no store at all)."""
    capsys.readouterr()
    with monkeypatch.context() as patched:
        if database_url is None:
            patched.setenv("CERTD_DATABASE_URL", "unusable://no-store-here")
        else:
            patched.setenv("CERTD_DATABASE_URL", database_url)
        patched.setenv("CERTD_LOG_LEVEL", "warning")
        code = main(list(args))
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)
