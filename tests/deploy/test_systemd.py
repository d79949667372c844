"""deploy/systemd: units that systemd accepts, hardened, running known command lines.

`systemd-analyze verify` (Debian's systemd package, on these machines) loads
the units offline, exactly as systemd would, and reports unknown keys, bad
values and missing executables. The units name /opt/statepump/bin/...; the
test points them at this virtualenv's console scripts, which pip installs the
same way.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.commands import SECRET_SETTINGS, SHARED_SETTINGS, problems, setting_of_toml_key
from tests.deploy.files import DEPLOY, console_scripts, toml_file

SYSTEMD = DEPLOY / "systemd"
SIDECAR = SYSTEMD / "statepump.service"
SNAPSHOTTER = SYSTEMD / "statepump-snapshotter.service"
TIMER = SYSTEMD / "statepump-snapshotter.timer"
UNITS = [SIDECAR, SNAPSHOTTER, TIMER]
INSTALL_BIN = "/opt/statepump/bin/"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections of a unit file as (key, value) lists: systemd keys repeat, so no dict per section.

    >>> parse_unit("[Service]\\nSystemCallFilter=@system-service\\nSystemCallFilter=~@privileged\\n")
    {'Service': [('SystemCallFilter', '@system-service'), ('SystemCallFilter', '~@privileged')]}
    """
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, equals, value = line.partition("=")
        if current is None or not equals:
            raise ValueError(f"line {number}: {raw!r} is neither a section header nor key=value in a section")
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: {found}"
    return found[0]


def load(path: Path) -> Unit:
    return parse_unit(path.read_text())


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    bin_dir = Path(sys.executable).parent
    for name in console_scripts():
        assert (bin_dir / name).is_file(), f"{name} is not installed in {bin_dir} (pip install -e .)"
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALL_BIN, f"{bin_dir}/"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / u.name) for u in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if str(tmp_path) in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_systemd_analyze_verify_would_catch_a_bad_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    bad = tmp_path / "statepump.service"
    bad.write_text(SIDECAR.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Unknown key" in result.stderr
    assert "ProtectHomes" in result.stderr
    assert "is not executable" in result.stderr  # /opt/statepump/bin/statepump is not installed here


@pytest.mark.parametrize("path", [SIDECAR, SNAPSHOTTER], ids=lambda p: p.name)
def test_exec_start_is_a_console_command_with_known_flags(path: Path) -> None:
    argv = shlex.split(one(load(path), "Service", "ExecStart"))
    assert argv[0].startswith(INSTALL_BIN)
    assert problems(argv, console_scripts()) == []
    flags = {token[2:].partition("=")[0] for token in argv if token.startswith("--")}
    assert not flags & SECRET_SETTINGS


def test_sidecar_runs_statepump_run_with_its_socket_in_the_runtime_directory() -> None:
    unit = load(SIDECAR)
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert argv[0] == f"{INSTALL_BIN}statepump"
    assert argv[1] == "run"
    socket = argv[argv.index("--socket") + 1]
    runtime = one(unit, "Service", "RuntimeDirectory")
    assert Path(socket).parent == Path("/run") / runtime
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("path", [SIDECAR, SNAPSHOTTER], ids=lambda p: p.name)
def test_services_are_hardened(path: Path) -> None:
    unit = load(path)
    service = dict(unit["Service"])
    assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "", "root", "0")
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert service.get(key) == value, key
    assert set(one(unit, "Service", "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in values(unit, "Service", "SystemCallFilter")


def test_snapshotter_runs_once_per_timer_tick_and_ends_before_the_next() -> None:
    service = load(SNAPSHOTTER)
    timer = load(TIMER)
    assert one(service, "Service", "Type") == "oneshot"
    assert shlex.split(one(service, "Service", "ExecStart"))[0] == f"{INSTALL_BIN}snapshotter"
    assert one(timer, "Timer", "Unit") == SNAPSHOTTER.name
    assert one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Install", "WantedBy") == "timers.target"
    calendar = one(timer, "Timer", "OnCalendar")
    assert calendar == "*:0/30"
    timeout = one(service, "Service", "TimeoutStartSec")
    assert timeout.endswith("min")
    assert int(timeout.removesuffix("min")) < 30


def test_example_settings_file_names_only_known_settings() -> None:
    settings = toml_file(SYSTEMD / "statepump.toml")
    assert settings
    for key in settings:
        assert setting_of_toml_key(key) in SHARED_SETTINGS, key
        assert setting_of_toml_key(key) not in SECRET_SETTINGS, key


def test_parse_unit_refuses_a_line_outside_any_section() -> None:
    with pytest.raises(ValueError, match="line 1"):
        parse_unit("ExecStart=/bin/true\n[Service]\n")
