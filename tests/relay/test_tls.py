"""The relay feed over TLS with a token: a downstream verifies the relay with --upstream-ca."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyrsistent import thaw

from statepump.pump import Pump
from statepump.sources.relay import RelaySource, Upstream, UpstreamClient, UpstreamError
from statepump.stores.relaystore import RelayStore
from tests.relay.harness import upstream

TOKEN = b"a-token-of-twenty-four-b"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command (installed with the Debian tools)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_a_downstream_follows_a_relay_over_tls_and_refuses_an_unknown_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with upstream(listen=("127.0.0.1", 0), relay_token=TOKEN, tls=context) as up:
        for i in range(20):
            up.source.append({"op": "set", "path": f"k{i}", "value": i})
        await up.pump.wait_for(19, timeout=10)
        assert up.server.tcp_address is not None
        url = f"https://127.0.0.1:{up.server.tcp_address[1]}"
        # Without the CA the relay's certificate is not trusted: no connection, nothing read.
        with pytest.raises(UpstreamError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await UpstreamClient(token=TOKEN).get(Upstream.parse(url), b"/v1/snapshot")
        options: dict[str, Any] = {"token": TOKEN, "ca_file": cert}
        pump = Pump(RelaySource([url], max_wait=0.5, **options), store=RelayStore([url], "hub", "0", **options))
        async with pump:
            await pump.wait_for(19, timeout=20)
            up.source.append({"op": "set", "path": "live", "value": True})
            await pump.wait_for(20, timeout=20)
            assert thaw(pump.state) == thaw(up.pump.state)
