"""CaptureSource against the source conformance suite: from a directory, and from Azurite."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob.aio import ContainerClient

from devservices.azurite import Azurite
from statepump.core.captureformat import DEFAULT_NAME_FORMAT, render_name, write_capture_file
from statepump.core.events import Event
from statepump.sources.capture import CaptureSource
from tests.sources.conformance import Publish, Published, SourceConformance

T0 = datetime(2025, 5, 1, 8, 0, 0, tzinfo=UTC)
PER_FILE = 70  # several files, so reads cross file boundaries


def capture_files(events: list[Published]) -> list[tuple[str, bytes]]:
    """The events as Capture would store them: a file per window, an empty window between."""
    out: list[tuple[str, bytes]] = []
    for window, start in enumerate(range(0, max(len(events), 1), PER_FILE)):
        chunk = [
            Event("0", i, str(i * 128), T0 + timedelta(milliseconds=10 * i), None, dict(props), body)
            for i, (body, props) in enumerate(events[start : start + PER_FILE], start)
        ]
        for part, batch in enumerate((chunk, [])):  # the empty one is the idle window after
            buf = io.BytesIO()
            write_capture_file(buf, batch, codec="deflate" if window % 2 else "null")
            when = T0 + timedelta(minutes=10 * window + 5 * part)
            out.append((render_name(DEFAULT_NAME_FORMAT, "ns", "hub", "0", when), buf.getvalue()))
    return out


class TestCaptureDirectoryConformance(SourceConformance):
    live = False

    @pytest.fixture
    def publish(self, tmp_path: Path) -> Publish:
        async def make(events: list[Published]) -> CaptureSource:
            for name, data in capture_files(events):
                path = tmp_path / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return CaptureSource.from_directory(tmp_path, namespace="ns", eventhub="hub", partition="0")

        return make


class TestCaptureBlobConformance(SourceConformance):
    live = False

    @pytest.fixture
    def publish(self, azurite: Azurite, blob_container: str) -> Publish:
        async def make(events: list[Published]) -> CaptureSource:
            async with ContainerClient.from_connection_string(azurite.connection_string, blob_container) as client:
                for name, data in capture_files(events):
                    await client.upload_blob(name, data)
            return CaptureSource.from_connection_string(
                azurite.connection_string, blob_container, namespace="ns", eventhub="hub", partition="0"
            )

        return make
