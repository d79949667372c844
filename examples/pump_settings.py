"""The settings of an embedded pump, read the way ``statepump run`` reads them.

``STATEPUMP_*`` variables, or the TOML file ``STATEPUMP_CONFIG`` names (see
:mod:`statepump.settings`), so the same app runs against the local emulator
or an Azure Event Hub: only the settings differ.

Example::

    pump = statepump.components.make_pump(hub_settings())
"""

from __future__ import annotations

import logging
from pathlib import Path

from statepump.cli import configure_logging
from statepump.core.errors import ConfigError
from statepump.settings import Settings, load

#: The examples' data directory (snapshots, dead letters) unless the settings name one: not
#: ``.statepump/``, which is ``make run``'s, whose snapshots belong to another hub.
EXAMPLES_DATA_DIR = Path(".statepump-examples")


def hub_settings() -> Settings:
    """statepump's settings; a :class:`ConfigError` when they name no hub.

    Unlike ``statepump run``, an embedding app starts no emulator of its own:
    the hub is the emulator ``statepump emulator`` runs, or Event Hubs. The
    data directory is :data:`EXAMPLES_DATA_DIR` unless ``STATEPUMP_DATA_DIR``
    (or the TOML file) says otherwise. statepump's log lines go to stderr, in
    ``statepump run``'s format, unless the app configured logging already.
    """
    settings = load({})
    if settings.embedded:
        raise ConfigError(
            "no Event Hubs configured: set STATEPUMP_CONNECTION_STRING (for a local emulator, "
            "the one `statepump emulator` prints) or STATEPUMP_NAMESPACE"
        )
    if "data_dir" not in settings.model_fields_set:
        settings = settings.model_copy(update={"data_dir": EXAMPLES_DATA_DIR})
    if not logging.getLogger().handlers:
        # Without a handler, why the pump is not ready would be visible only in /readyz.
        configure_logging(settings.log_level)
    return settings
