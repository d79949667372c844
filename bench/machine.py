"""What the figures were measured on: CPU, cores, load, Python, package and service versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata

PACKAGES = (
    "statepump", "pyrsistent", "msgpack", "fastavro", "azure-eventhub", "azure-storage-blob", "eventsourcing",
    "psycopg", "redis",
)  # fmt: skip


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version_of(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def pyrsistent_implementation() -> str:
    """Which pyrsistent runs: its C extension (``pvectorc``) or the pure-Python fallback.

    It sets figures 2, 3, 7 and 9 (on 3.11 the fold ran 0.34x the dict loop with the C
    extension, 0.21x without it on 3.13), and pyrsistent 0.20.0 publishes no compiled wheel
    for some Pythons, so every report says which one it measured.
    """
    try:
        from statepump.core.pyrsistent_internals import c_extension
    except ImportError as refused:  # the C extension on a Python it crashes (see that module)
        return str(refused)
    version = metadata.version("pyrsistent")
    if not c_extension():
        why = " (PYRSISTENT_NO_C_EXTENSION is set)" if os.environ.get("PYRSISTENT_NO_C_EXTENSION") else ""
        return f"pyrsistent {version}, pure Python: no C extension{why}"
    return f"pyrsistent {version} with its C extension (pvectorc); PMap itself is Python code over it"


def describe() -> dict[str, str]:
    """Machine facts as ``name -> text``, in display order."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    load1, load5, _ = os.getloadavg()
    facts = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "load average at start (1 min, 5 min)": f"{load1:.2f}, {load5:.2f}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "pyrsistent implementation": pyrsistent_implementation(),
        "packages": ", ".join(versions),
    }
    pg = _version_of(["postgres", "--version"]) or _version_of(["pg_ctl", "--version"])
    redis = _version_of(["redis-server", "--version"])
    node = _version_of(["node", "--version"])
    facts["services"] = ", ".join(
        s for s in (pg, redis and redis.split(" sha=")[0], node and f"Node.js {node} (Azurite)") if s
    )
    return facts
