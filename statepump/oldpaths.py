"""The import paths of statepump 0.1's modules, kept for one release with a ``DeprecationWarning``.

The layout of 0.2 moved the pure modules into :mod:`statepump.core`, the
Event Hubs client into :mod:`statepump.eventhubs` and the sidecar into
:mod:`statepump.serving`. Code written against 0.1 keeps importing, say,
``statepump.events``: a finder on ``sys.meta_path`` answers each old name
with the module that now holds its contents, and warns once per name. No
file stands at the old paths, so no two modules share a base name.

>>> import sys, warnings
>>> _ = sys.modules.pop("statepump.events", None)  # a test may have imported it already
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     from statepump.events import Event
>>> import statepump.core.events
>>> Event is statepump.core.events.Event, caught[0].category.__name__
(True, 'DeprecationWarning')
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

#: Old module name -> the modules that hold its names now (searched in order).
MOVED: dict[str, tuple[str, ...]] = {
    "statepump.events": ("statepump.core.events",),
    "statepump.errors": ("statepump.core.errors",),
    "statepump.fold": ("statepump.core.fold",),
    "statepump.plan": ("statepump.core.plan",),
    "statepump.collector": ("statepump.core.collector",),
    "statepump.codec": ("statepump.core.codec",),
    "statepump.statejson": ("statepump.core.statejson",),
    "statepump.capture": ("statepump.core.captureformat",),
    "statepump.http": ("statepump.core.httpapi",),
    "statepump.reducers": (
        "statepump.core.reducer",
        "statepump.core.configops",
        "statepump.core.markup",
    ),
    "statepump.snapshot": ("statepump.stores.snapshots",),
    "statepump.deadletter": ("statepump.stores.deadletters",),
    "statepump.server": ("statepump.serving.sidecar", "statepump.serving.apiconnection", "statepump.serving.watch"),
    "statepump.metrics": ("statepump.serving.metrics",),
    "statepump.sources.eventhubs": ("statepump.sources.eventhub",),
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new} in statepump 0.2; the old path goes in 0.3",
        DeprecationWarning,
        stacklevel=3,
    )


class _Loader(importlib.abc.Loader):
    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = tuple(targets)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        _warn(spec.name, " and ".join(self.targets))
        # A view, never the new module itself: the import system would give it the old name's spec.
        return _Merged(spec.name, self.targets)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is the new one (or a view of several)."""


class _Merged(types.ModuleType):
    """An old module as a view of the new ones: each attribute is looked up in them in order."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name, f"statepump 0.1's {name}: now {', '.join(targets)}")
        self._targets = [importlib.import_module(t) for t in targets]

    def __getattr__(self, attr: str) -> Any:
        for module in self._targets:
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        targets = MOVED.get(fullname)
        if targets is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(targets))


def install() -> None:
    """Answer the old names from now on (called once, by ``import statepump``)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
