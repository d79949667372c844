"""A local Event Hubs emulator: an AMQP 1.0 server the unmodified ``azure-eventhub`` SDK accepts.

Connect with ``UseDevelopmentEmulator=true`` in the connection string (see
:attr:`Emulator.connection_string`). Layout, inside out:

* :mod:`.wire` adapts the SDK's private AMQP codec (``azure.eventhub._pyamqp``);
  ``tests/emulator/test_codec_contract.py`` fails loudly if it changes, which
  is why ``azure-eventhub`` is pinned to a minor release in pyproject.toml.
* :mod:`.protocol` is the sans-I/O AMQP connection (bytes in, events and bytes out).
* :mod:`.messages`, :mod:`.addresses`, :mod:`.positions`, :mod:`.management`
  are the pure Event Hubs rules, and :mod:`.quotas` (consumer groups,
  receivers per partition, connections) and :mod:`.throttle` (throughput
  units) the service's limits; :mod:`.log` stores a partition; :mod:`.hub`
  ties partitions, receivers, limits and wake-ups together.
* :mod:`.server`, :mod:`.admin`, :mod:`.capture` and :mod:`.emulator` are the asyncio shell.

>>> Emulator(port=5672).connection_string.startswith("Endpoint=sb://127.0.0.1:5672/;")
True
"""

from statepump.emulator.emulator import Emulator, serve_forever

__all__ = ["Emulator", "serve_forever"]
