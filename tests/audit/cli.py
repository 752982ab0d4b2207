"""``certd`` run in-process, as an auditor would run it at a terminal."""

from dataclasses import dataclass

import pytest

from service import cli


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Certd:
    """``certd`` for one test: on the test's store, on another, or offline."""

    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    database_url: str

    def __call__(self, *args: str) -> Ran:
        return self.on(self.database_url, *args)

    def offline(self, *args: str) -> Ran:
        """With no store at all, as on an auditor's own machine."""
        return self.on(None, *args)

    def on(self, database_url: str | None, *args: str) -> Ran:
        return run_certd(self.capsys, self.monkeypatch, database_url, *args)


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
        # The process's logging stays as the test run set it: configured by
        # ``certd``, structlog would cache loggers filtered at its level and
        # later tests would capture nothing.
        patched.setattr(cli, "configure_logging", _leave_logging_alone)
        code = cli.main(list(args))
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def _leave_logging_alone(*args: object, **kwargs: object) -> None:
    """Stand in for ``configure_logging`` in an in-process ``certd``."""
