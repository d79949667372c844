"""gunicorn settings for examples/gunicorn/app.py: ``gunicorn -c examples/gunicorn/config.py``.

Environment: ``BIND`` (default ``127.0.0.1:8000``), ``WORKERS`` (default 2),
and statepump's ``STATEPUMP_SOCKET`` for the sidecar's socket.
``STATEPUMP_EXAMPLE_CLIENT``: ``pump`` (default: each worker embeds a pump fed by the
sidecar, ``relayed.py``) or ``socket`` (each worker asks the sidecar per read, ``app.py``).
"""

from __future__ import annotations

import os
from typing import Any

RELAYED = os.environ.get("STATEPUMP_EXAMPLE_CLIENT", "pump") != "socket"
wsgi_app = "examples.gunicorn.relayed:app" if RELAYED else "examples.gunicorn.app:app"
bind = [os.environ.get("BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WORKERS", "2"))
# One request at a time per worker: each worker has one sidecar client, which is not thread-safe.
worker_class = "sync"
# Loading the app once in the master saves memory and start-up time; it is
# safe because the app opens no socket at import (see post_fork).
preload_app = True
# A request may wait up to 30 s for ?min_sequence (examples/protocol.py); a worker silent longer is killed.
timeout = 60
# gunicorn >= 25.1 opens a control socket under $HOME by default; the example needs none.
control_socket_disable = True


def post_fork(server: Any, worker: Any) -> None:
    """Give each worker its own pump (or sidecar client): threads and sockets do not survive a fork."""
    if RELAYED:
        from examples.gunicorn.relayed import SOCKET_PATH, start_worker_pump

        start_worker_pump()
        worker.log.info("worker %s follows the sidecar on %s with its own pump", worker.pid, SOCKET_PATH)
        return
    from examples.gunicorn.app import connect_sidecar

    client = connect_sidecar()
    worker.log.info("worker %s reads the configuration from the sidecar on %s", worker.pid, client.socket_path)
