"""The collector is spared the objects alive before a long run of work, and
gets them back after it, garbage included."""

import gc
import weakref

import pytest

from projections.collector import LONG_RUN_EVENTS, collector_spared, spared_for


class Node:
    def __init__(self) -> None:
        self.itself = self  # a cycle: only the collector frees it


def test_objects_alive_before_are_frozen_in_the_block_and_handed_back() -> None:
    assert gc.get_freeze_count() == 0
    with collector_spared():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_garbage_frozen_in_the_block_is_freed_after_it() -> None:
    node = Node()
    alive = weakref.ref(node)
    with collector_spared():
        del node
        gc.collect()
        assert alive() is not None  # frozen: the collector does not look at it
    gc.collect()
    assert alive() is None


def test_objects_are_handed_back_when_the_work_fails() -> None:
    with pytest.raises(RuntimeError), collector_spared():
        raise RuntimeError("the work failed")
    assert gc.get_freeze_count() == 0


def test_only_a_long_run_spares_the_collector() -> None:
    with spared_for(LONG_RUN_EVENTS - 1):
        assert gc.get_freeze_count() == 0
    with spared_for(LONG_RUN_EVENTS):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
