"""Decoding Capture blocks in a second process, while this one folds.

A long Capture catch-up spends about as much time in fastavro as in the
fold, and both hold the GIL: on a machine with two CPUs or more,
:class:`~statepump.sources.capture.CaptureSource` hands the blocks of a big
read to a :class:`DecodeProcess` and folds the events of one block while the
next ones decode. The child is ``python -m statepump.sources.capture_decoder``,
started with the same interpreter: not ``multiprocessing``, whose spawned
children import the host application's ``__main__`` (an embedding web app
would start again in the child) and whose forked ones copy the locks of the
host's threads.

The protocol, over the child's stdin and stdout, is one frame per message:
a 4-byte big-endian length, then msgpack.

    request: [header bytes, block bytes, partition, file name, position]
    reply:   [true, packed events]     (see statepump.capture.unpack_events)
             [false, error message]    (a CaptureFormatError, re-raised here)

Replies come in request order. The child exits when its stdin closes, so
it never outlives this process. If it dies, :class:`DecoderGone` fails every
waiting request, and the source decodes those blocks itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import struct
import sys
from typing import BinaryIO

import msgpack

from statepump.capture import AvroHeader, CaptureFormatError, decode_block_packed, parse_header
from statepump.errors import StatepumpError

log = logging.getLogger("statepump.sources.capture")

_LENGTH = struct.Struct(">I")
_STREAM_LIMIT = 64 * 1024 * 1024  # a reply is about half its block's size; blocks are at most a few MB


class DecoderGone(StatepumpError):
    """The decoding process exited or its pipe broke: decode in this process instead."""


class DecodeProcess:
    """A child process decoding Capture blocks; :meth:`decode` returns a future of packed events.

    Example::

        decoder = await DecodeProcess.start()
        try:
            packed = await (await decoder.decode(header, block, "0", "a.avro", 0))
            events = unpack_events(packed, "0")
        finally:
            await decoder.close()
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._gone: str | None = None
        self._replies = asyncio.create_task(self._read_replies(), name="statepump-capture-decoder")

    @classmethod
    async def start(cls) -> DecodeProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "statepump.sources.capture_decoder",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_STREAM_LIMIT,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def decode(
        self, header: AvroHeader, block: bytes, partition: str, name: str, position: int
    ) -> asyncio.Future[bytes]:
        """Send a block; the future is its packed events, or raises the block's
        :class:`CaptureFormatError`, or :class:`DecoderGone`."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self._gone is not None:
            future.set_exception(DecoderGone(self._gone))
            return future
        stdin = self._process.stdin
        assert stdin is not None
        self._waiting.append(future)
        request = msgpack.packb([header.raw, block, partition, name, position])
        try:
            stdin.write(_LENGTH.pack(len(request)) + request)
            await stdin.drain()
        except (ConnectionError, RuntimeError) as exc:  # the child is gone: its replies' reader fails the rest
            self._fail(f"the decoding process's input broke ({type(exc).__name__})")
        return future

    async def _read_replies(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                (length,) = _LENGTH.unpack(await stdout.readexactly(_LENGTH.size))
                ok, payload = msgpack.unpackb(await stdout.readexactly(length))
                if not self._waiting:
                    raise ValueError("a reply nobody asked for")
                future = self._waiting.popleft()
                if future.done():  # cancelled by a reader that stopped early
                    continue
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(CaptureFormatError(payload))
        except asyncio.CancelledError:
            self._fail("the decoding process was closed")
            raise
        except (asyncio.IncompleteReadError, ConnectionError):
            self._fail(f"the decoding process exited (status {await self._process.wait()})")
        except Exception as exc:  # a garbled reply: the protocol cannot go on
            self._fail(f"the decoding process replied with something unreadable ({type(exc).__name__}: {exc})")

    def _fail(self, why: str) -> None:
        if self._gone is None:
            self._gone = why
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(DecoderGone(why))

    async def close(self) -> None:
        """End the child (it exits when its input closes; killed if it has not within 5 s)."""
        while self._waiting:  # a reader that stopped early: nobody will look at these
            self._waiting.popleft().cancel()
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        self._replies.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._replies


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The child's loop: decode each request until ``stdin`` ends."""
    while True:
        head = stdin.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack(head)
        header_raw, block, partition, name, position = msgpack.unpackb(stdin.read(length))
        try:
            header = parse_header(header_raw, name=name)
            reply = [True, decode_block_packed(header, block, partition, name=name, position=position)]
        except CaptureFormatError as exc:
            reply = [False, str(exc)]
        out = msgpack.packb(reply)
        stdout.write(_LENGTH.pack(len(out)) + out)
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
