"""The settings of an embedded pump, read the way ``statepump run`` reads them.

``STATEPUMP_*`` variables, or the TOML file ``STATEPUMP_CONFIG`` names (see
:mod:`statepump.settings`), so the same app runs against the local emulator
or an Azure Event Hub: only the settings differ.

Example::

    pump = statepump.components.make_pump(hub_settings())
"""

from __future__ import annotations

from statepump.core.errors import ConfigError
from statepump.settings import Settings, load


def hub_settings() -> Settings:
    """statepump's settings; a :class:`ConfigError` when they name no hub.

    Unlike ``statepump run``, an embedding app starts no emulator of its own:
    the hub is the emulator ``statepump emulator`` runs, or Event Hubs.
    """
    settings = load({})
    if settings.embedded:
        raise ConfigError(
            "no Event Hubs configured: set STATEPUMP_CONNECTION_STRING (for a local emulator, "
            "the one `statepump emulator` prints) or STATEPUMP_NAMESPACE"
        )
    return settings
