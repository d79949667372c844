"""Fast paths over pyrsistent's private map layout: the one module that relies on it.

A ``PMap`` is a ``pvector`` of buckets (``_buckets``, one list of
``(key, value)`` pairs per slot, ``None`` where empty, the slot being
``hash(key) % len(buckets)``) and a count (``_size``); ``PMap(size, buckets)``
builds one from them. pyrsistent's public API updates a map one key at a time
through two evolvers, and iterates it through Python-level generators; the
fold and the snapshot codec need whole-map work, so they come here:

* :func:`map_set`: one key, with one C ``pvector.set``;
* :func:`map_update`: a batch of keys in one pass (``Transient.result`` of the
  ``config`` reducer), :data:`DELETED` marking a removal;
* :func:`small_pmap`: ``pmap(dict)`` without its general-purpose checks;
* :func:`map_pairs` and :func:`map_from_flat`: a map's pairs out, and a map
  built from a flat ``[k0, v0, k1, v1, ...]`` array, for the snapshot codec.

Every function gives a map equal to what the public API would build, with
the same bucket rules (so maps from either are interchangeable).
``pyrsistent`` is pinned to 0.20.x, and ``tests/core/test_pyrsistent_contract.py``
checks each assumption above against the installed release: when a new
pyrsistent comes out, this file and that test are the ones to open. No other
module touches ``_buckets`` or builds a ``PMap`` from buckets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

from pyrsistent import PMap, PVector, _pvector, pmap, pvector

_PMAP_TYPE: type = type(pmap())


def c_extension() -> bool:
    """Whether pyrsistent's vectors are its C extension (``pvectorc``) or its pure-Python fallback.

    >>> isinstance(c_extension(), bool)
    True
    """
    return pvector is not _pvector.python_pvector


def c_extension_crashes(python: tuple[int, ...], with_c_extension: bool) -> bool:
    """Whether pyrsistent 0.20's C extension is known to crash the process on ``python``.

    pyrsistent 0.20.0 publishes no compiled wheel for Python 3.13, and the one its
    sdist builds there segfaults at once: ``pvector().evolver().extend([1])`` kills
    the interpreter (measured on CPython 3.13.5; pyrsistent's own pure-Python
    vectors run the whole suite). The fold and the snapshot codec extend evolvers on
    every batch, so such a pump would die on its first catch-up.

    >>> c_extension_crashes((3, 13, 5), True), c_extension_crashes((3, 11, 7), True)
    (True, False)
    """
    return with_c_extension and python >= (3, 13)


if c_extension_crashes(sys.version_info[:3], c_extension()):
    raise ImportError(
        "pyrsistent 0.20's C extension (pvectorc) crashes Python 3.13 (a pvector evolver's extend "
        "segfaults), so statepump will not run on it: reinstall pyrsistent's pure-Python wheel "
        "(pip install --force-reinstall --only-binary pyrsistent 'pyrsistent==0.20.0') "
        "or set PYRSISTENT_NO_C_EXTENSION=1"
    )


def map_set(node: PMap[Any, Any], key: object, value: object) -> PMap[Any, Any]:
    """``node.set(key, value)``, several times faster for the common cases.

    ``PMap.set`` builds an evolver for the map and another for its bucket
    vector on every call; for one key that is most of the fold's time (see
    ``bench/figures/fold.py``). Replacing a key or filling a bucket here does
    the same bucket update with one C ``pvector.set``. Anything else (a
    subclass, a map that must grow its bucket vector) goes through ``set``.

    >>> map_set(pmap({"a": 1}), "a", 2) == pmap({"a": 2})
    True
    """
    if type(node) is not _PMAP_TYPE:
        return node.set(key, value)
    buckets = node._buckets
    index = hash(key) % len(buckets)
    bucket = buckets[index]
    if bucket:
        for i, (k, v) in enumerate(bucket):
            if k == key:
                if v is value:
                    return node
                new_bucket = list(bucket)
                new_bucket[i] = (k, value)
                return PMap(node._size, buckets.set(index, new_bucket))  # type: ignore[call-arg]
        if len(buckets) < 0.67 * node._size:
            return node.set(key, value)  # PMap.set reallocates the buckets at this load
        return PMap(node._size + 1, buckets.set(index, [(key, value), *bucket]))  # type: ignore[call-arg]
    if len(buckets) < 0.67 * node._size:
        return node.set(key, value)
    return PMap(node._size + 1, buckets.set(index, [(key, value)]))  # type: ignore[call-arg]


def small_pmap(d: dict[Any, Any]) -> PMap[Any, Any]:
    """``pmap(d)``: the same buckets in the same order, without its general-purpose checks.

    >>> small_pmap({"a": 1, "b": 2}) == pmap({"a": 1, "b": 2})
    True
    """
    if not d:
        return pmap()
    width = 2 * len(d)  # as pmap() sizes a map made from a dict
    table: list[Any] = [None] * width
    _redistribute(d.items(), table, width)
    return PMap(len(d), pvector(table))  # type: ignore[call-arg]


class Deleted:
    """The pending value of a top-level key deleted in the current batch."""

    __slots__ = ()


DELETED = Deleted()


def map_update(node: PMap[Any, Any], changes: Mapping[Any, Any]) -> PMap[Any, Any]:
    """``node`` with each key of ``changes`` set to its value, or removed where the value is :data:`DELETED`.

    One pass for the whole batch, in one of two ways:

    - A batch small beside the map updates the bucket vector through one
      evolver: each touched bucket is copied once, and the vector's C nodes
      on its path (a few, shared between keys near each other) instead of a
      path copy and a new map per key.
    - A batch that may outgrow the vector, or touches a sizeable share of
      it, is applied to the buckets as a Python list, which is then frozen
      into a new vector in one pass (:func:`_rebuilt`). Per key that is a
      list index instead of a vector lookup and an evolver set; the price is
      a pass over every bucket, about 85 ns each.

    >>> map_update(pmap({"a": 1, "b": 2}), {"a": 3, "b": DELETED, "c": 4}) == pmap({"a": 3, "c": 4})
    True
    """
    buckets = node._buckets
    width = len(buckets)
    size = node._size
    most = size + len(changes)
    if width < 0.67 * most:  # the load at which PMap.set reallocates
        return _rebuilt(node, changes, _wider(width, most))
    if len(changes) * _REBUILD_SHARE >= width:
        return _rebuilt(node, changes, width)
    touched: dict[int, list[tuple[Any, Any]]] = {}
    for key, value in changes.items():
        index = hash(key) % width
        bucket = touched.get(index)
        if bucket is None:
            old = buckets[index]
            if not old:  # the commonest case at the loads PMap keeps: nothing to copy or search
                if value is not DELETED:
                    touched[index] = [(key, value)]
                    size += 1
                continue
            if len(old) == 1 and value is not DELETED and old[0][0] == key:  # the next: the key, alone
                touched[index] = [(key, value)]
                continue
            bucket = touched[index] = list(old)
        size += _change(bucket, key, value)
    evolver = buckets.evolver()
    for index, bucket in touched.items():
        evolver[index] = bucket or None  # PMap.remove leaves None where a bucket empties
    return PMap(size, evolver.persistent())  # type: ignore[call-arg]


# A batch of at least one key per 8 buckets rebuilds the vector. Measured on the
# 2M buckets of a 1M-key map (updates of random keys, freeing the result included):
# the rebuild costs about 180 ms plus 1.9 µs a key, the evolver 2.5 µs a key;
# even at 260k keys, the evolver 4.8x faster at 16k, the rebuild ahead beyond.
_REBUILD_SHARE = 8


def _change(bucket: list[tuple[Any, Any]], key: Any, value: Any) -> int:
    """Set ``key`` to ``value`` (or remove it) in a bucket we own; the change in the map's size."""
    for i, (k, v) in enumerate(bucket):
        if k == key:
            if value is DELETED:
                del bucket[i]
                return -1
            if v is not value:
                bucket[i] = (k, value)
            return 0
    if value is DELETED:
        return 0
    bucket.insert(0, (key, value))  # PMap.set puts a new key first in its bucket
    return 1


def _rebuilt(node: PMap[Any, Any], changes: Mapping[Any, Any], width: int) -> PMap[Any, Any]:
    """:func:`map_update` by way of a Python list of ``width`` buckets, frozen at the end."""
    buckets = node._buckets
    size = node._size
    owned: set[int] | None
    if width == len(buckets):
        table = _thawed(buckets)
        owned = set()  # the buckets are the old map's: copy one before changing it
    else:
        table = [None] * width
        for start in range(0, len(buckets), _CHUNK):
            for bucket in filter(None, buckets[start : start + _CHUNK]):
                _redistribute(bucket, table, width)
        owned = None  # every bucket is a new list
    for key, value in changes.items():
        index = hash(key) % width
        bucket = table[index]
        if not bucket:
            if value is not DELETED:
                table[index] = [(key, value)]
                if owned is not None:
                    owned.add(index)
                size += 1
            continue
        if owned is not None and index not in owned:
            bucket = table[index] = list(bucket)
            owned.add(index)
        size += _change(bucket, key, value)
        if not bucket:
            table[index] = None
    return PMap(size, _frozen(table))  # type: ignore[call-arg]


def _wider(width: int, size: int) -> int:
    """The bucket count for ``size`` keys when a map of ``width`` buckets outgrows it.

    Four times as wide where ``PMap.set`` doubles: a map built by replaying a log
    rehashes a third as many entries on its way up, and its buckets are emptier
    (fewer to copy and search); measured 14% faster replaying 1M events into 632k
    keys, for a bucket vector at most twice as wide as ``PMap.set``'s (8 bytes a bucket).
    """
    width *= 4
    while width < 0.67 * size:
        width *= 2
    return width


def _thawed(vector: PVector[Any]) -> list[Any]:
    """``vector``'s items as a new list."""
    table: list[Any] = []
    for start in range(0, len(vector), _CHUNK):
        table.extend(vector[start : start + _CHUNK])
    return table


def _frozen(table: list[Any]) -> PVector[Any]:
    """``table`` as a pvector."""
    evolver: Any = pvector().evolver()
    for start in range(0, len(table), _CHUNK):
        evolver.extend(table[start : start + _CHUNK])
    result: PVector[Any] = evolver.persistent()
    return result


_CHUNK = 1 << 15  # about 3 ms of pvector building


def _redistribute(pairs: Iterable[tuple[Any, Any]], table: list[Any], width: int) -> None:
    """Put each ``(key, value)`` pair into the bucket of ``table`` its key hashes to."""
    for kv in pairs:
        index = hash(kv[0]) % width
        into = table[index]
        if into:
            into.append(kv)
        else:
            table[index] = [kv]


def map_pairs(m: PMap[Any, Any]) -> list[tuple[Any, Any]]:
    """``list(m.items())``, in bucket order.

    >>> sorted(map_pairs(pmap({"a": 1, "b": 2})))
    [('a', 1), ('b', 2)]
    """
    # PMap's public iteration goes through Python-level generators; its
    # bucket vector holds the (key, value) pairs and iterates in C.
    return list(chain.from_iterable(filter(None, m._buckets.tolist())))


def map_from_flat(flat: list[Any]) -> PMap[Any, Any]:
    """The pmap of a ``[k0, v0, k1, v1, ...]`` array (of even length), built bucket by bucket.

    This is what ``pmap(dict)`` does, minus the dict: a msgpack *map* of a
    million string keys decodes several times slower than the same keys in an
    array, because msgpack interns every map key and then the dict must be
    built and walked again. One bucket per key, as ``pmap(d, pre_size=n)``:
    fewer bucket lists and a smaller vector; PMap grows it when keys are added.
    A repeated key keeps its last value, as a dict would.

    >>> map_from_flat(["a", 1, "b", 2, "a", 3]) == pmap({"a": 3, "b": 2})
    True
    """
    n = len(flat) // 2
    size = max(n, 1)
    buckets: list[list[tuple[Any, Any]] | None] = [None] * size
    count = n
    it = iter(flat)
    for k in it:
        v = next(it)
        i = hash(k) % size
        bucket = buckets[i]
        if bucket is None:
            buckets[i] = [(k, v)]
            continue
        for j, (k2, _) in enumerate(bucket):
            if k2 == k:
                bucket[j] = (k2, v)
                count -= 1
                break
        else:
            bucket.append((k, v))
    return PMap(count, pvector(buckets))  # type: ignore[call-arg]


def differing_pairs(
    old: PMap[Any, Any], new: PMap[Any, Any]
) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]] | None:
    """The pairs of the buckets two maps do not share, as ``(old's, new's)``; ``None`` if their layouts differ.

    A map updated from another shares every bucket it did not change (buckets
    are never changed in place), and with the same number of slots a key sits
    in the same slot of both: any key whose value differs is in a bucket that
    is not shared. ``statepump.core.changes.diff`` compares only those, so two
    versions of a million-key map a few events apart are compared in the time
    of one C-level pass over their bucket vectors.

    >>> a = pmap({"x": 1, "y": 2})
    >>> olds, news = differing_pairs(a, a.set("y", 3))
    >>> sorted(set(olds) ^ set(news))  # "x" too, if it shares the bucket of "y"
    [('y', 2), ('y', 3)]
    """
    ob, nb = old._buckets, new._buckets
    if len(ob) != len(nb):
        return None
    olds: list[tuple[Any, Any]] = []
    news: list[tuple[Any, Any]] = []
    for a, b in zip(ob.tolist(), nb.tolist(), strict=True):
        if a is not b:
            if a:
                olds.extend(a)
            if b:
                news.extend(b)
    return olds, news


def pairs_from(m: PMap[Any, Any], slot: int, limit: int) -> tuple[list[tuple[Any, Any]], int | None]:
    """At least ``limit`` pairs (whole buckets) from bucket ``slot`` on, and the slot to go on from (``None``: end).

    A cursor over a map in its own order that costs the page, not the offset:
    ``/v1/children`` pages a million-key map with it.

    >>> m = pmap({i: i for i in range(10)})
    >>> first, cursor = pairs_from(m, 0, 4)
    >>> rest, end = pairs_from(m, cursor, 100)
    >>> sorted(first + rest) == sorted(m.items()), end
    (True, None)
    """
    buckets = m._buckets
    total = len(buckets)
    out: list[tuple[Any, Any]] = []
    while slot < total and len(out) < limit:
        step = min(total - slot, max(64, limit))
        for i, bucket in enumerate(buckets[slot : slot + step].tolist()):
            if bucket:
                out.extend(bucket)
                if len(out) >= limit:
                    slot += i + 1
                    return out, (slot if slot < total else None)
        slot += step
    return out, None


def keys_starting_with(m: PMap[Any, Any], prefix: str) -> list[Any]:
    """The keys of ``m`` whose text starts with ``prefix`` (one C-level pass over the buckets).

    >>> sorted(keys_starting_with(pmap({"ab": 1, "ac": 2, "b": 3, 7: 4}), "a"))
    ['ab', 'ac']
    """
    return [k for k, _ in map_pairs(m) if (k if type(k) is str else str(k)).startswith(prefix)]
