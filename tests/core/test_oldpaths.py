"""statepump 0.1's import paths still work for one release, each with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from statepump import oldpaths


@pytest.mark.parametrize("old", sorted(oldpaths.MOVED))
def test_each_old_module_answers_with_the_new_modules_names_and_warns(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to"):
        module = importlib.import_module(old)
    new = [importlib.import_module(t) for t in oldpaths.MOVED[old]]
    public = [name for m in new for name in vars(m) if not name.startswith("_")]
    assert public
    for name in public:
        assert getattr(module, name) is next(getattr(m, name) for m in new if hasattr(m, name))
    with pytest.raises(AttributeError, match="no attribute 'surely_not_there'"):
        _ = module.surely_not_there


def test_the_old_reducers_module_holds_all_three_new_ones() -> None:
    sys.modules.pop("statepump.reducers", None)
    with pytest.warns(DeprecationWarning, match="statepump.reducers moved to"):
        from statepump.reducers import (  # type: ignore[import-not-found]
            MarkupUpdate,
            Reducer,
            apply_op,
            config,
            load_reducer,
        )
    from statepump.core import configops, markup, reducer

    assert (Reducer, load_reducer) == (reducer.Reducer, reducer.load_reducer)
    assert (config, apply_op) == (configops.config, configops.apply_op)
    assert MarkupUpdate is markup.MarkupUpdate


def test_an_old_path_works_in_a_fresh_interpreter_and_the_new_modules_keep_their_own_spec() -> None:
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "try:\n    import statepump.server\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
        "warnings.simplefilter('ignore')\n"
        "from statepump.events import Event\nimport statepump.core.events as e\n"
        "print(Event is e.Event, e.__spec__.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert "warned: statepump.server moved to statepump.serving.sidecar" in out
    assert "True statepump.core.events" in out


def test_the_old_flat_eventhubs_names_resolve_to_their_new_modules() -> None:
    from statepump.eventhubs import send, transport

    with pytest.warns(DeprecationWarning, match="statepump.eventhubs.send_events moved to"):
        from statepump.eventhubs import send_events
    with pytest.warns(DeprecationWarning, match="eventhubs.transport.PromptTransport"):
        from statepump.eventhubs import PromptTransport
    assert send_events is send.send_events and PromptTransport is transport.PromptTransport
    with pytest.raises(ImportError):
        from statepump.eventhubs import surely_not_there  # noqa: F401
