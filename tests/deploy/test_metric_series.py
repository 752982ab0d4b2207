"""Every counter shows from a process's start, each of its labels at 0, so
that Prometheus' ``increase()`` and ``rate()`` see the first rise, and an
alert on an outcome that never happened yet reads 0, not nothing.

The commands and outcomes are those the service reports: read from the
calls in service/application.py that report them, so that a command added
there without its zero series here fails this test."""

import ast
from itertools import product
from pathlib import Path

import service.application
from service.metrics import Metrics
from tests.deploy.roles import Scrape

APPLICATION = Path(service.application.__file__)


def literal_strings(node: ast.AST) -> set[str]:
    return {
        found.value
        for found in ast.walk(node)
        if isinstance(found, ast.Constant) and isinstance(found.value, str)
    }


def reported(method: str, argument: int) -> set[str]:
    """The literal strings the service passes as ``argument`` of ``method``."""
    tree = ast.parse(APPLICATION.read_text(encoding="utf-8"))
    return {
        text
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == method
        and len(call.args) > argument
        for text in literal_strings(call.args[argument])
    }


def outcomes_of_errors() -> set[str]:
    tree = ast.parse(APPLICATION.read_text(encoding="utf-8"))
    (outcome_of,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "_outcome_of"
    ]
    return literal_strings(outcome_of)


def test_a_new_process_shows_every_command_and_outcome_at_0() -> None:
    commands = reported("_execute", 1) | reported("_log_command", 1)
    outcomes = reported("_log_command", 2) | outcomes_of_errors()

    scrape = Scrape(Metrics().exposition().decode())

    assert len(commands) >= 10
    assert {"accepted", "repeat", "refused", "conflict", "store_unavailable"} <= (
        outcomes
    )
    for command, outcome in product(commands, outcomes):
        assert (
            scrape.value("certd_commands_total", command=command, outcome=outcome) == 0
        ), (command, outcome)


def test_a_new_process_shows_every_counter_at_0() -> None:
    scrape = Scrape(Metrics().exposition().decode())
    counters = [
        (name, value)
        for (name, _), value in scrape.samples.items()
        if name.endswith("_total")
    ]

    assert {name for name, _ in counters} == {
        "certd_commands_total",
        "certd_payments_total",
        "certd_dead_letters_total",
        "certd_scheduler_raised_total",
        "certd_scheduler_skipped_total",
        "certd_scheduler_passes_total",
    }
    assert {value for _, value in counters} == {0}
