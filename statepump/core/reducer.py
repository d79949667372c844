"""Reducers: the pure functions ``s' = f(s, e)`` that fold events into state, with an identity.

A :class:`Reducer` is a named, versioned function. The name and version go
into every snapshot, so that a snapshot written by another reducer (or an
older version of this one) is never loaded as if it were ours. A reducer may
offer a batch hook (:class:`Transient`) so that a batch of events is applied
without building an immutable state per event.

Two reducers ship with statepump: :data:`~statepump.core.configops.config`,
the default, and :data:`~statepump.core.markup.markup`, an example;
:func:`load_reducer` finds them, or yours, by name.

>>> load_reducer("config").identity
'config@1'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pyrsistent import pmap

from statepump.core.errors import ConfigError
from statepump.core.events import Event

S = TypeVar("S")


S_co = TypeVar("S_co", covariant=True)


class Transient(Protocol[S_co]):
    """A state being changed in place by one batch of events, then frozen once.

    :func:`statepump.core.fold.fold` publishes one version per batch, so the
    immutable state between two events of a batch is never seen by anyone; a
    transient lets a reducer skip building it. The contract, which the fold's
    duplicate/gap/poison rules rely on:

    * ``apply(event)`` either applies the whole event or raises and leaves
      the transient as it was (a poison event changes nothing);
    * ``result()`` returns the immutable state after every event applied so
      far (the very state it started from if none changed it) and may be
      followed by more ``apply`` calls;
    * folding a batch through it gives a state equal to applying
      ``Reducer.apply`` event by event.

    >>> class Counting:
    ...     def __init__(self, state):
    ...         self.base, self.n = state, 0
    ...     def apply(self, event):
    ...         self.n += 1
    ...     def result(self):
    ...         if self.n:  # fold once, then start counting again from the new state
    ...             self.base, self.n = self.base.set("n", self.base.get("n", 0) + self.n), 0
    ...         return self.base
    >>> count = Reducer("count", 1, lambda s, e: s.set("n", s.get("n", 0) + 1), pmap(), batch=Counting)
    >>> t = count.batch(pmap({"n": 2}))
    >>> t.apply(None); t.apply(None)
    >>> t.result()["n"]
    4
    """

    def apply(self, event: Event) -> None: ...

    def result(self) -> S_co: ...


class TrackingTransient(Transient[S_co], Protocol[S_co]):
    """A :class:`Transient` that also keeps the sequence each path last changed at (``if_sequence``).

    ``changed()`` is the :class:`~statepump.core.lastchanged.LastChanged` after every event applied so
    far; a rejected or poison event leaves it as it was, like the state.
    """

    def changed(self) -> Any: ...


@dataclass(frozen=True)
class Reducer(Generic[S]):
    """A named, versioned fold function and the state it starts from.

    ``batch``, when given, makes a :class:`Transient` over a state so that
    :func:`statepump.core.fold.fold` can apply a batch of events without building
    an immutable state per event; reducers without it are applied one event
    at a time.

    >>> from pyrsistent import pmap
    >>> count = Reducer("count", 1, lambda s, e: s.set("n", s.get("n", 0) + 1), pmap())
    >>> count.identity
    'count@1'
    """

    name: str
    version: int
    apply: Callable[[S, Event], S] = field(repr=False)
    initial: S = field(repr=False)
    batch: Callable[[S], Transient[S]] | None = field(default=None, repr=False, compare=False)
    #: The paths an event changes (or would, were it applied), for ``/v1/history``; ``None``
    #: means "unknown". Asked only when history is read, never on the fold's path.
    paths: Callable[[Event], Sequence[tuple[Any, ...]] | None] | None = field(default=None, repr=False, compare=False)
    #: A batch hook that is also given, and keeps, the version's record of when each path last changed
    #: (:attr:`statepump.core.events.Version.changed`); the fold prefers it to ``batch``.
    tracking: Callable[[S, Any], TrackingTransient[S]] | None = field(default=None, repr=False, compare=False)
    #: The identity of the JSON Schema the reducer checks events against (``--schema``), or ``None``.
    #: Recorded in snapshots beside name and version: a snapshot folded under another schema is not used.
    schema: str | None = None

    def __call__(self, state: S, event: Event) -> S:
        return self.apply(state, event)

    @property
    def identity(self) -> str:
        """``name@version``, as recorded in snapshots."""
        return f"{self.name}@{self.version}"


def reducer(name: str, version: int, initial: Any = None) -> Callable[[Callable[[Any, Event], Any]], Reducer[Any]]:
    """Decorator that turns a function into a :class:`Reducer`.

    >>> @reducer("flags", 2)
    ... def flags(state, event):
    ...     return state.set(event.body.decode(), True)
    >>> flags.identity
    'flags@2'
    """

    def wrap(fn: Callable[[Any, Event], Any]) -> Reducer[Any]:
        return Reducer(name, version, fn, pmap() if initial is None else initial)

    return wrap


def builtin_reducers() -> dict[str, Reducer[Any]]:
    """The reducers that ship with statepump, by the name ``--reducer`` knows them by."""
    # Imported here, not at the top: both modules build their reducer from Reducer, defined above.
    from statepump.core.configops import config
    from statepump.core.markup import markup

    return {"config": config, "markup": markup}


def load_reducer(spec: str) -> Reducer[Any]:
    """The reducer named by ``spec``: a built-in name, or ``module:attribute``.

    A plain callable found at ``module:attribute`` becomes a reducer named
    after it, with version ``getattr(fn, "version", 1)`` and an empty pmap as
    its initial state.

    >>> load_reducer("config").identity
    'config@1'
    >>> load_reducer("statepump.core.markup:markup").identity
    'markup@1'
    """
    builtin = builtin_reducers()
    if spec in builtin:
        return builtin[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--reducer: {spec!r} is neither a built-in ({', '.join(builtin)}) nor 'module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--reducer: cannot import module {module_name!r}: {exc}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"--reducer: module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, Reducer):
        return obj
    if callable(obj):
        return Reducer(f"{module_name}:{attr}", int(getattr(obj, "version", 1)), obj, pmap())
    raise ConfigError(f"--reducer: {spec!r} is not callable")
