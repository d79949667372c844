"""Serving the current version: the sidecar's socket API and its Prometheus metrics.

* :mod:`~statepump.serving.sidecar`: the :class:`Server` (listeners on a Unix
  socket and optionally loopback TCP, the response cache, shutdown);
* :mod:`~statepump.serving.apiconnection`: one client connection, from bytes
  to answers, over the pure request/response core in
  :mod:`statepump.core.httpapi`;
* :mod:`~statepump.serving.watch`: the Server-Sent Events streams of
  ``/v1/watch``, one per path;
* :mod:`~statepump.serving.metrics`: ``/metrics``.

The client of this API is :mod:`statepump.client`, over the pure
:mod:`statepump.core.clientprotocol`.
"""
