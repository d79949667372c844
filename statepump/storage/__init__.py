"""The Azure Storage client: how statepump reaches Blob Storage (``azure-storage-blob``).

The sibling of :mod:`statepump.eventhubs`, the Event Hubs client.

* :mod:`~statepump.storage.containers`: the one place that builds a Blob
  container client (async, or the sync one the dead letters use) from a
  connection string or an account URL and a credential, with the SDK retries
  its caller wants; and the rules every Blob caller shares: which errors are
  worth retrying (``is_transient``) and how keys and SAS signatures are kept
  out of text (``scrub``).

What is done with the containers lives with each use:
:class:`statepump.stores.blob.BlobStore` (snapshots),
:class:`statepump.sources.capture.CaptureSource` (Capture files) and
:class:`statepump.stores.deadletters.DeadLetterBlob` (poison events).
"""
