"""The scheduler tests use the status view tests' fixtures: the whole runtime
on a real store, with one clock that the test moves and every part reads."""

from tests.projections.conftest import clock, runtime, steps

__all__ = ["clock", "runtime", "steps"]
