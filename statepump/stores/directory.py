"""Snapshots in a local (or mounted) directory.

One partition's snapshots live in ``root/{prefix}/{eventhub}/{partition}/`` as
``{sequence:020d}.snapshot``. A write is atomic and create-only: the bytes go
to a temporary file in the same directory, are fsynced, and the file is then
*linked* under its final name. ``link`` fails if the name exists, so two
writers of the same sequence number never overwrite each other (a ``rename``
would silently replace), and a reader never sees a partial file because the
final name only ever points at complete, synced contents. The directory is
fsynced afterwards so the new name survives a power cut.

A writer killed half-way leaves a temporary file (``.*.tmp``). ``list``
ignores those; :meth:`DirectoryStore.remove_stale_temp_files` (also run before
each write) deletes the ones whose writer is gone: the live writer holds an
``flock`` on its temporary file and touches it as it writes, so only unlocked
files older than ``stale_temp_after`` seconds are removed.

Example::

    store = DirectoryStore(Path("/var/lib/statepump"), eventhub="config", partition="0")
    ref = await store.write(1000, data)
    assert (await store.list())[-1] == ref
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from statepump.core.errors import ConfigError, SnapshotExists
from statepump.stores import SnapshotRef, parse_sequence, snapshot_name

TEMP_SUFFIX = ".tmp"

#: Temporary files younger than this are presumed to belong to a live writer.
DEFAULT_STALE_TEMP_AFTER_S = 15 * 60.0


def _check_segment(setting: str, value: str) -> str:
    # Each of these becomes one path component; anything that could climb out
    # of the root or merge two partitions' directories is refused up front.
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ConfigError(f"{setting} must be a non-empty name without '/', got {value!r}")
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ref(sequence: int, name: str, stat: os.stat_result) -> SnapshotRef:
    return SnapshotRef(
        sequence=sequence,
        name=name,
        size=stat.st_size,
        modified=datetime.fromtimestamp(stat.st_mtime, UTC),
    )


class DirectoryStore:
    """A :class:`statepump.stores.SnapshotStore` over one partition's directory.

    >>> import tempfile, asyncio
    >>> store = DirectoryStore(Path(tempfile.mkdtemp()), "hub", "0")
    >>> ref = asyncio.run(store.write(7, b"state"))
    >>> ref.name
    'snapshots/hub/0/00000000000000000007.snapshot'
    >>> asyncio.run(store.read(ref))
    b'state'
    """

    def __init__(
        self,
        root: Path,
        eventhub: str,
        partition: str,
        prefix: str = "snapshots",
        *,
        stale_temp_after: float = DEFAULT_STALE_TEMP_AFTER_S,
    ) -> None:
        self.root = Path(root)
        self.eventhub = _check_segment("eventhub", eventhub)
        self.partition = _check_segment("partition", partition)
        prefix_parts = [p for p in prefix.strip("/").split("/") if p]
        for part in prefix_parts:
            _check_segment("prefix", part)
        self.prefix = "/".join(prefix_parts)
        self.stale_temp_after = stale_temp_after
        self.directory = self.root.joinpath(*prefix_parts, self.eventhub, self.partition)
        self.description = f"directory {self.directory}"

    def __repr__(self) -> str:
        return f"DirectoryStore({self.description})"

    def _name(self, sequence: int) -> str:
        return snapshot_name(self.prefix, self.eventhub, self.partition, sequence)

    def _path(self, ref: SnapshotRef) -> Path:
        # Only names this store would produce are accepted, so a ref from
        # another store (or a crafted one) can never reach outside the directory.
        if ref.sequence < 0 or ref.name != self._name(ref.sequence):
            raise ValueError(f"{ref.name!r} is not a snapshot of {self.description}")
        return self.directory / ref.name.rsplit("/", 1)[-1]

    # -- list ---------------------------------------------------------------

    def _list_sync(self) -> list[SnapshotRef]:
        refs: list[SnapshotRef] = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return refs
        for entry in entries:
            sequence = parse_sequence(entry.name)
            if sequence is None:
                continue  # temporary files and anything else that is not a snapshot
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while we looked
            refs.append(_ref(sequence, self._name(sequence), stat))
        refs.sort()
        return refs

    async def list(self) -> list[SnapshotRef]:
        """This partition's snapshots, lowest sequence number first."""
        return await asyncio.to_thread(self._list_sync)

    # -- read ---------------------------------------------------------------

    async def read(self, ref: SnapshotRef) -> bytes:
        """The snapshot's bytes; ``FileNotFoundError`` if it is gone."""
        path = self._path(ref)
        return await asyncio.to_thread(path.read_bytes)

    # -- write --------------------------------------------------------------

    def _write_sync(self, sequence: int, data: bytes) -> SnapshotRef:
        name = self._name(sequence)
        final = self.directory / name.rsplit("/", 1)[-1]
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True)
            # Make the new directories themselves durable, up to the root.
            for parent in (self.directory, *self.directory.parents):
                _fsync_dir(parent)
                if parent == self.root:
                    break
        self._remove_stale_temp_files_sync()
        temp = self.directory / f".{final.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            # Held until the temp file is gone: tells a cleaner this writer is alive.
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(data)
                out.flush()
                os.fsync(fd)
            try:
                os.link(temp, final)
            except FileExistsError:
                raise SnapshotExists(f"snapshot {name} already exists in {self.description}") from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                raise ConfigError(
                    f"{self.description}: this filesystem cannot create hard links ({exc.strerror}), "
                    "which create-only snapshot writes need; use a local filesystem or the Blob store"
                ) from None
            stat = os.stat(final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            os.close(fd)
        _fsync_dir(self.directory)
        return _ref(sequence, name, stat)

    async def write(self, sequence: int, data: bytes) -> SnapshotRef:
        """Store ``data`` as the snapshot at ``sequence``, atomically and create-only.

        Raises :class:`statepump.core.errors.SnapshotExists` if it is already there.
        """
        self._name(sequence)  # validates the number before any I/O
        return await asyncio.to_thread(self._write_sync, sequence, bytes(data))

    # -- delete -------------------------------------------------------------

    def _delete_sync(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.directory)

    async def delete(self, ref: SnapshotRef) -> None:
        """Remove a snapshot; one that is already gone is not an error."""
        path = self._path(ref)
        await asyncio.to_thread(self._delete_sync, path)

    # -- temporary files ----------------------------------------------------

    def _remove_stale_temp_files_sync(self) -> tuple[str, ...]:
        removed: list[str] = []
        cutoff = time.time() - self.stale_temp_after
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return ()
        for entry in entries:
            if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
            finally:
                os.close(fd)
        return tuple(removed)

    async def remove_stale_temp_files(self) -> tuple[str, ...]:
        """Delete temporary files left by killed writers; returns their names.

        Only files not locked by a live writer and not modified for
        ``stale_temp_after`` seconds are removed.
        """
        return await asyncio.to_thread(self._remove_stale_temp_files_sync)

    async def close(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""
