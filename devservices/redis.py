"""``redis-server`` on a Unix socket in a given directory (``--port 0``: no TCP port at all).

:class:`RedisProcess` starts Debian's ``redis-server`` with nothing saved to
disk (``--save ''``, no append-only file) and returns once it answers
``PING``; :meth:`RedisProcess.stop` ends it by its PID (SIGTERM, then SIGKILL
if it has not exited within 10 s). The socket lives in the caller's
directory, which the caller removes::

    server = RedisProcess(directory)
    socket_path = server.start()
    try:
        ...  # redis.Redis(unix_socket_path=str(socket_path))
    finally:
        server.stop()

Without ``redis-server`` it raises :class:`devservices.Unavailable`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from devservices import Unavailable


def _pong(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One ``redis-server`` listening on ``directory/redis.sock`` only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("redis-server is not started")
        return self.process.pid

    def start(self, timeout: float = 10.0) -> Path:
        """Start it and return its socket's path once it answers ``PING``."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server not found: apt-get install -y redis-server")
        process = self.process = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not _pong(self.socket_path):
            if time.monotonic() > deadline or process.poll() is not None:
                self.process = None
                process.kill()
                process.wait(10)
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)  # poll interval while waiting for the socket to answer
        return self.socket_path

    def stop(self) -> None:
        """SIGTERM by PID; SIGKILL if it has not exited within 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


__all__ = ["RedisProcess"]
