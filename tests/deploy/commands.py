"""The command lines that deploy/ files may run, and a checker for them.

The deploy files (Kubernetes manifests, systemd units, the Dockerfile) run the
two console commands with flags; a misspelt flag there only fails in
production. This module takes the flag names from the settings model that
both commands share, and checks an argv against them, so the deploy tests
catch a flag that the commands do not have.

>>> problems(["statepump", "run", "--socket", "/run/s.sock", "--log-level", "INFO"], {"statepump", "snapshotter"})
[]
>>> problems(["snapshotter", "--kepp", "3"], {"statepump", "snapshotter"})
["snapshotter: unknown flag '--kepp'"]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from statepump.settings import COMMAND_FIELDS, Settings, flag

# The flags come from the settings model itself (statepump.settings), so a
# deploy file that names a flag the commands do not have fails here.
SHARED_SETTINGS: frozenset[str] = frozenset(flag(n)[2:] for n in COMMAND_FIELDS["run"])

# Everything `snapshotter` accepts (the shared settings minus the query socket, plus its own).
SNAPSHOTTER_FLAGS: frozenset[str] = frozenset(flag(n)[2:] for n in COMMAND_FIELDS["snapshotter"])

# `statepump health [--ready] --socket PATH`: the probe command.
HEALTH_FLAGS: frozenset[str] = frozenset({*(flag(n)[2:] for n in COMMAND_FIELDS["health"]), "ready"})

# Switches: they take no value.
SWITCHES: frozenset[str] = frozenset(
    {flag(n)[2:] for n, f in Settings.model_fields.items() if f.annotation is bool} | {"ready"}
)

# Settings whose value is a secret; deploy files must not pass them.
SECRET_SETTINGS: frozenset[str] = frozenset({"connection-string", "storage-connection-string"})

_STATEPUMP_SUBCOMMANDS: dict[str, frozenset[str]] = {
    "run": SHARED_SETTINGS,
    "health": HEALTH_FLAGS,
    # The doctor checks a deployment with the settings of the sidecar it stands for.
    "doctor": frozenset(flag(n)[2:] for n in COMMAND_FIELDS["doctor"]),
}


def allowed_flags(argv: Sequence[str]) -> frozenset[str] | None:
    """The flag names (without dashes) the command in argv accepts; None if it is no known command.

    >>> sorted(allowed_flags(["statepump", "health"]) or [])
    ['config', 'data-dir', 'log-level', 'ready', 'socket']
    >>> allowed_flags(["python", "-m", "statepump"]) is None
    True
    """
    if not argv:
        return None
    program = argv[0].rsplit("/", 1)[-1]
    if program == "snapshotter":
        return SNAPSHOTTER_FLAGS
    if program == "statepump" and len(argv) > 1:
        return _STATEPUMP_SUBCOMMANDS.get(argv[1])
    return None


def problems(argv: Sequence[str], scripts: Collection[str]) -> list[str]:
    """What is wrong with argv as a statepump/snapshotter command line (empty: nothing).

    scripts are the console commands the package installs ([project.scripts]).

    >>> problems(["statepump", "run", "--socket"], {"statepump"})
    ["statepump: flag '--socket' needs a value"]
    """
    if not argv:
        return ["empty command"]
    program = argv[0].rsplit("/", 1)[-1]
    if program not in scripts:
        return [f"{argv[0]!r} is not a console command of the package (have {sorted(scripts)})"]
    allowed = allowed_flags(argv)
    if allowed is None:
        return [f"{' '.join(argv[:2])!r} is not a known statepump subcommand"]
    found: list[str] = []
    rest = list(argv[1:] if program == "snapshotter" else argv[2:])
    while rest:
        token = rest.pop(0)
        if not token.startswith("--"):
            found.append(f"{program}: unexpected argument {token!r}")
            continue
        name, has_inline_value, _ = token[2:].partition("=")
        if name not in allowed:
            found.append(f"{program}: unknown flag {token.partition('=')[0]!r}")
            # Its value, if it has one, is not a second problem.
            if not has_inline_value and rest and not rest[0].startswith("--"):
                rest.pop(0)
            continue
        if name in SWITCHES:
            if has_inline_value:
                found.append(f"{program}: switch '--{name}' takes no value")
        elif not has_inline_value:
            if not rest or rest[0].startswith("--"):
                found.append(f"{program}: flag '--{name}' needs a value")
            else:
                rest.pop(0)
    return found


def setting_of_env(name: str) -> str | None:
    """The setting an environment variable sets (STATEPUMP_LOG_LEVEL -> log-level), or None.

    >>> setting_of_env("STATEPUMP_STORAGE_ACCOUNT_URL")
    'storage-account-url'
    >>> setting_of_env("AZURE_CLIENT_ID") is None
    True
    """
    prefix = "STATEPUMP_"
    if not name.startswith(prefix):
        return None
    return name[len(prefix) :].lower().replace("_", "-")


def setting_of_toml_key(key: str) -> str:
    """The setting a TOML key sets (storage_account_url -> storage-account-url).

    >>> setting_of_toml_key("capture_name_format")
    'capture-name-format'
    """
    return key.replace("_", "-")
