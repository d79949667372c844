"""The pump's collection policy: automatic collection off, explicit collections that freeze their survivors."""

from __future__ import annotations

import gc
import weakref

from statepump.core.collector import Collector, paused


def test_explicit_collection_frees_cycles_and_freezes_survivors() -> None:
    was_enabled = gc.isenabled()
    c = Collector(interval=1e-9)
    c.start()
    try:
        assert not gc.isenabled()
        survivor = [object() for _ in range(100)]
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert c.maybe_collect()
        assert c.collections == 1
        assert gc.get_freeze_count() > 0  # the survivors are out of the next collection's way
        assert survivor
    finally:
        c.stop()
    assert gc.get_freeze_count() == 0
    assert gc.isenabled() == was_enabled


def test_paused_nests_and_restores() -> None:
    was_enabled = gc.isenabled()
    with paused():
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() == was_enabled


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_a_cycle_that_survived_a_collection_is_freed_by_the_next_full_one() -> None:
    collector = Collector(interval=1e-9, full_every=3)  # due at every call
    collector.start()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        assert collector.maybe_collect()  # collection 1: the cycle is still referenced, then frozen
        del a, b
        assert collector.maybe_collect()  # collection 2: frozen objects are out of sight
        assert alive() is not None
        assert collector.maybe_collect()  # collection 3 unfreezes first: the cycle goes
        assert alive() is None
    finally:
        collector.stop()


def test_stop_hands_what_was_made_to_the_oldest_generation_without_a_collection() -> None:
    collector = Collector(interval=0)
    collector.start()
    try:
        made = [[i] for i in range(50_000)]  # tracked objects, all in the youngest generation
        assert len(gc.get_objects(generation=0)) >= 50_000
        collections_before = gc.get_stats()[0]["collections"]
    finally:
        collector.stop()
    assert len(gc.get_objects(generation=0)) < 1_000  # not left for the first automatic collection to walk
    assert gc.get_stats()[0]["collections"] == collections_before  # moved, not examined
    assert gc.get_freeze_count() == 0
    assert len(made) == 50_000
