"""The Event Hubs client: everything statepump does with ``azure-eventhub``.

* :mod:`~statepump.eventhubs.connection`: connection strings, secrets kept out
  of text, and :class:`HubEndpoint`, which builds the SDK's clients;
* :mod:`~statepump.eventhubs.failures`: the retry policy and how SDK errors
  are sorted into "retry" and "report";
* :mod:`~statepump.eventhubs.transport`: the one module that touches the SDK's
  private API (``PromptTransport``), guarded by
  ``tests/eventhubs/test_transport_contract.py``;
* :mod:`~statepump.eventhubs.receiver`: one receive session as a bounded queue;
* :mod:`~statepump.eventhubs.send`: ``send_events``, which returns the
  sequence numbers the hub gave.

The pump's event source over these is
:class:`statepump.sources.eventhub.EventHubSource`.
"""
