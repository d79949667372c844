"""The layout's rules, checked: unique module names, one room per private dependency, a README that matches.

These are the rules a newcomer relies on to find code from the folder listing
(README, "Architecture"); a change that breaks one fails here, not in review.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "statepump"
SHIPPED = [*PACKAGE.rglob("*.py"), *(ROOT / "snapshotter").rglob("*.py")]


def _using(pattern: str, files: list[Path]) -> list[str]:
    regex = re.compile(pattern)
    return sorted(str(f.relative_to(ROOT)) for f in files if regex.search(f.read_text()))


def test_no_two_modules_of_the_package_share_a_base_name() -> None:
    names = Counter(f.name for f in PACKAGE.rglob("*.py") if f.name not in ("__init__.py", "__main__.py"))
    assert [name for name, n in names.items() if n > 1] == []


def test_one_module_outside_the_emulator_uses_the_event_hubs_sdks_private_api() -> None:
    outside = [f for f in SHIPPED if "emulator" not in f.relative_to(ROOT).parts]
    assert _using(r"azure\.eventhub(\.aio)?\._", outside) == ["statepump/eventhubs/transport.py"]
    inside = [f for f in SHIPPED if "emulator" in f.relative_to(ROOT).parts]
    assert _using(r"(?m)^\s*(from|import) azure\.eventhub(\.aio)?\._", inside) == ["statepump/emulator/wire.py"]


def test_one_module_uses_pyrsistents_private_map_layout() -> None:
    assert _using(r"_buckets|\bPMap\(\w", SHIPPED) == ["statepump/core/pyrsistent_internals.py"]


def test_the_core_imports_no_adapter() -> None:
    core = list((PACKAGE / "core").glob("*.py"))
    adapters = r"^\s*(from|import) statepump\.(?!core\b)\w+"
    assert [f for f in _using(adapters, core) if not f.endswith("__init__.py")] == []


def test_every_path_the_readmes_architecture_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Architecture") :]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line.split("|")[1]]
    assert rows
    folder = None
    for row in rows:
        where = row.split("|")[1]
        for name in re.findall(r"`([^`]+)`", where):
            if "/" in name:
                path = ROOT / name
                folder = path if name.endswith("/") else path.parent
            else:
                assert folder is not None, row
                path = folder / name
            assert path.exists(), f"README names {name} ({path.relative_to(ROOT)}), which does not exist"
