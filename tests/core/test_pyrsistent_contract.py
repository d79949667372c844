"""The private parts of pyrsistent that :mod:`statepump.core.pyrsistent_internals` relies on, pinned down.

Each test states one assumption about ``PMap``'s layout in the installed
pyrsistent release. When a release changes one, the test that fails names
it, and ``statepump/core/pyrsistent_internals.py`` is the file to open (it is
the only module that touches these internals). The functions there are
also checked against the public API for equality in ``test_map_set.py`` and
``test_transient.py``; these tests check the layout itself, so that a maps
built either way stay interchangeable (same buckets, same growth).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import PMap, pmap, pvector

from statepump.core import pyrsistent_internals as internals

# Small integers hash to themselves: buckets collide and vectors must grow.
keys = st.one_of(st.integers(-30, 30), st.text(max_size=2))
maps = st.dictionaries(keys, st.integers(), max_size=40)


def buckets(m: Any) -> Any:
    """``m._buckets``, untyped (pyrsistent's stubs describe only the public API)."""
    return m._buckets


def size(m: Any) -> int:
    """``m._size``."""
    result: int = m._size
    return result


def test_a_pmap_is_a_size_and_a_pvector_of_buckets() -> None:
    m = pmap({"a": 1, "b": 2})
    assert type(m) is PMap, "pmap() no longer returns the PMap class itself"
    assert size(m) == 2
    vector = buckets(m)
    assert type(vector) is type(pvector()), "PMap._buckets is no longer a pvector"
    entries: list[Any] = list(vector)
    assert all(b is None or (type(b) is list and all(type(kv) is tuple and len(kv) == 2 for kv in b)) for b in entries)


@given(maps)
@settings(max_examples=200, deadline=None)
def test_a_key_lives_in_the_bucket_its_hash_picks(d: dict[Any, int]) -> None:
    m = pmap(d)
    width = len(buckets(m))
    for key, value in d.items():
        bucket = buckets(m)[hash(key) % width]
        assert bucket is not None and (key, value) in bucket


@given(maps)
@settings(max_examples=200, deadline=None)
def test_pmap_is_built_from_a_size_and_buckets(d: dict[Any, int]) -> None:
    m = pmap(d)
    rebuilt: PMap[Any, int] = PMap(size(m), buckets(m))  # type: ignore[call-arg]
    assert rebuilt == m
    assert dict(rebuilt.items()) == d
    assert rebuilt.set("new-key", 1)["new-key"] == 1


@given(maps)
@settings(max_examples=200, deadline=None)
def test_pmap_of_a_dict_has_twice_as_many_buckets_in_dict_order(d: dict[Any, int]) -> None:
    # small_pmap builds what pmap(dict) builds, bucket for bucket.
    m = pmap(d)
    if d:
        assert len(buckets(m)) == 2 * len(d)
    assert buckets(internals.small_pmap(d)) == buckets(m)


def test_set_puts_a_new_key_first_in_its_bucket() -> None:
    # Integer keys 0, w, 2w... all land in bucket 0 of a w-bucket map.
    m = pmap({0: "a"})
    width = len(buckets(m))
    assert buckets(m.set(width, "b"))[0] == [(width, "b"), (0, "a")]


def test_set_doubles_the_buckets_when_a_new_key_finds_fewer_than_0_67_per_key() -> None:
    # map_set and map_update grow at the same load as PMap.set, so either can follow the other.
    m: PMap[str, int] = pmap()
    for i in range(200):
        width, count = len(buckets(m)), len(m)
        m = m.set(f"k{i}", i)
        expected = 2 * width if width < 0.67 * count else width
        assert len(buckets(m)) == expected, f"adding key {count + 1} to {width} buckets"


def test_remove_leaves_none_where_a_bucket_empties() -> None:
    m = pmap({"a": 1, "b": 2})
    index = hash("a") % len(buckets(m))
    removed = m.remove("a")
    assert buckets(removed)[index] in (None, [("b", 2)])
    if buckets(removed)[index] is not None:
        return  # "a" and "b" share the bucket: nothing empties
    assert size(removed) == 1


@given(maps, st.dictionaries(keys, st.one_of(st.integers(), st.just(internals.DELETED)), max_size=40))
@settings(max_examples=200, deadline=None)
def test_the_bulk_update_leaves_maps_interchangeable_with_public_ones(
    d: dict[Any, int], changes: dict[Any, Any]
) -> None:
    updated = internals.map_update(pmap(d), changes)
    public = pmap(d)
    for key, value in changes.items():
        public = public.discard(key) if value is internals.DELETED else public.set(key, value)
    assert updated == public and len(updated) == len(public)
    # Further public updates on the fast path's map behave as on the public one.
    assert updated.set("not-a-key", 0).discard("not-a-key") == public  # longer than any generated key


@given(maps)
@settings(max_examples=200, deadline=None)
def test_map_pairs_and_map_from_flat_round_trip(d: dict[Any, int]) -> None:
    m = pmap(d)
    pairs = internals.map_pairs(m)
    assert sorted(pairs, key=repr) == sorted(d.items(), key=repr)
    flat = [x for kv in pairs for x in kv]
    assert internals.map_from_flat(flat) == m
