"""Serving the current version: the sidecar's socket API and its Prometheus metrics.

:mod:`statepump.serving.sidecar` runs the HTTP/1.1 server over the pure
request/response core in :mod:`statepump.core.httpapi`; the client of that
API is :mod:`statepump.client`.
"""
