"""One settings model for every command: flags, ``STATEPUMP_*`` environment
variables and a TOML file, in that order of precedence.

Each field is all three at once: ``connection_string`` is the flag
``--connection-string``, the variable ``STATEPUMP_CONNECTION_STRING`` and the
TOML key ``connection_string``. Commands expose the subset of fields they use
(:data:`COMMAND_FIELDS`); the CLI builds its flags from the fields, so help
text and names cannot drift apart.

Secrets are ``SecretStr`` and error messages are built here from the field
name and the problem, never from the input value, so a mistyped connection
string cannot end up in a log.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from statepump.core.captureformat import DEFAULT_NAME_FORMAT, validate_name_format
from statepump.core.errors import ConfigError

if TYPE_CHECKING:
    from statepump.core.reducer import Reducer
    from statepump.core.schema import Schema

ENV_PREFIX = "STATEPUMP_"


class Settings(BaseSettings):
    """Every setting of statepump; see ``statepump run --help``.

    >>> s = Settings(partition="3", listen="127.0.0.1:8080")
    >>> s.partition, s.listen_address
    ('3', ('127.0.0.1', 8080))
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # --- where the events are -------------------------------------------------------
    config: Path | None = Field(None, description="TOML file with settings (keys are the flag names with underscores)")
    connection_string: SecretStr | None = Field(
        None, description="Event Hubs connection string (none and no --namespace: the embedded emulator)"
    )
    namespace: str | None = Field(
        None, description="fully qualified Event Hubs namespace (e.g. myns.servicebus.windows.net), with Azure AD auth"
    )
    eventhub: str | None = Field(
        None, description="event hub name (default: the connection string's EntityPath, or 'hub')"
    )
    partition: str = Field("0", description="partition id to pump")
    consumer_group: str = Field(
        "$Default",
        description="consumer group, or a pool of them: a comma list, a name may hold one numbered range "
        "(statepump-web-{01..20}); a full group (5 readers) moves the pump on to the next",
    )
    node_id: str | None = Field(
        None,
        description="stable name of this node (e.g. the pod name): picks its first consumer group of the pool "
        "[default: the host name]",
    )
    reducer: str = Field("config", description="reducer: 'config', 'markup' or module:callable")
    # --schema, STATEPUMP_SCHEMA and `schema` (BaseModel has a schema attribute): see PUBLIC_NAMES.
    schema_file: Path | None = Field(
        None,
        description="JSON Schema file (drafts 4-7) the config state must satisfy: an event that would break it "
        "is rejected; writers refuse it before sending",
    )

    # --- snapshots ------------------------------------------------------------------------
    snapshot_dir: Path | None = Field(None, description="directory of snapshots (default: <data-dir>)")
    snapshot_container: str | None = Field(None, description="Blob container of snapshots")
    snapshot_prefix: str = Field("snapshots", description="name prefix of snapshots in the directory or container")
    storage_connection_string: SecretStr | None = Field(None, description="Azure Storage connection string")
    storage_account_url: str | None = Field(
        None, description="Azure Storage account URL (https://ACCOUNT.blob.core.windows.net), with Azure AD auth"
    )
    create_containers: bool | None = Field(
        None,
        description="create the snapshot container if it does not exist (never Capture's) "
        "[default: yes for the local development storage account devstoreaccount1 (Azurite), else no]",
    )
    snapshot_hmac_key_file: Path | None = Field(
        None, description="file holding a key: snapshots are signed with it and unsigned ones refused"
    )

    # --- Capture ------------------------------------------------------------------------------
    capture_dir: Path | None = Field(None, description="directory of Event Hubs Capture files")
    capture_container: str | None = Field(None, description="Blob container of Event Hubs Capture files")
    capture_name_format: str = Field(DEFAULT_NAME_FORMAT, description="Capture file name format")
    capture_namespace: str | None = Field(
        None, description="namespace name in Capture file names (default: the hub endpoint's first DNS label)"
    )

    # --- behaviour --------------------------------------------------------------------------------
    poison_policy: Literal["stop", "skip"] = Field(
        "stop", description="on a reducer error: 'stop' applying, or 'skip' the event"
    )
    dead_letter: Path | None = Field(
        None,
        description="file receiving poison events under --poison-policy skip (default: <data-dir>/dead-letter.jsonl)",
    )
    dead_letter_container: str | None = Field(
        None,
        description="Blob container receiving poison events under --poison-policy skip, one blob per event "
        "(instead of --dead-letter; same storage settings)",
    )
    allow_gap: bool = Field(False, description="start even if events are missing from every source (logged, counted)")
    gc_interval: float = Field(300.0, ge=0, description="seconds between explicit garbage collections (0: never)")
    catchup_publish_interval: float = Field(
        1.0,
        ge=0,
        description="while catching up, seconds between the versions served (0: one per batch, as when live)",
    )
    retry_seconds: float = Field(
        60.0, gt=0, description="how long to keep retrying an unreachable hub or store before giving up"
    )
    data_dir: Path = Field(Path(".statepump"), description="local state of the embedded defaults (emulator, snapshots)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")

    # --- the query socket ------------------------------------------------------------------------
    socket: Path | None = Field(None, description="Unix socket of the query API (default: <data-dir>/statepump.sock)")
    socket_group: str | None = Field(None, description="group owning the socket (mode 0660)")
    listen: str | None = Field(None, description="also serve the query API on HOST:PORT (loopback only)")
    listen_any: bool = Field(False, description="allow --listen on a non-loopback address")
    history: int = Field(
        10_000, ge=0, description="events kept in the ring of recent events (the relay feed, /v1/events)"
    )
    history_bytes: int = Field(64 << 20, ge=0, description="bytes the ring of recent events may hold")
    relay_token_file: Path | None = Field(
        None,
        description="file holding the bearer token that TCP clients of the relay feed and snapshot must send "
        "(and that --upstream sends)",
    )
    tls_cert: Path | None = Field(None, description="serve --listen with TLS: the certificate chain (PEM)")
    tls_key: Path | None = Field(None, description="serve --listen with TLS: the private key (PEM)")

    # --- relays ------------------------------------------------------------------------------------
    upstream: str | None = Field(
        None,
        description="relay mode: follow these statepumps instead of the hub (comma list of Unix socket paths "
        "or http(s)://host:port, tried in order; no Azure credentials needed)",
    )
    upstream_ca: Path | None = Field(None, description="CA bundle (PEM) that https:// upstreams are verified with")
    upstream_fallback: Literal["none", "hub"] = Field(
        "none",
        description="when no --upstream can be had for --retry-seconds: 'hub' reads the hub (--connection-string "
        "or --namespace) from the last applied event on",
    )

    # --- the emulator --------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="emulator: address to listen on")
    port: int = Field(5672, ge=0, le=65535, description="emulator: AMQP port (0: any free port)")
    namespace_name: str = Field("emulator", description="emulator: namespace name (used in Capture file names)")
    # One: a configuration hub needs one total order, and a pump reads one partition.
    partitions: int = Field(1, ge=1, le=1024, description="emulator: number of partitions")
    data: Path | None = Field(None, description="emulator: directory for its partition logs")
    in_memory: bool = Field(False, description="emulator: keep events in memory only")
    retention: float | None = Field(None, gt=0, description="emulator: drop events older than this many seconds")
    admin_port: int | None = Field(None, ge=0, le=65535, description="emulator: loopback admin HTTP port")
    capture_interval: float = Field(300.0, gt=0, description="emulator: seconds per Capture window")
    emulator_key: SecretStr | None = Field(
        None, description="emulator: accept only SAS tokens signed with this key (default: any, as the official one)"
    )
    consumer_groups: int = Field(0, ge=0, description="emulator: also create consumer groups group-1 ... group-N")
    receivers_per_partition: int = Field(
        5, ge=0, description="emulator: receivers allowed per partition and consumer group (0: no limit)"
    )
    max_connections: int | None = Field(None, ge=1, description="emulator: connections allowed (default: any)")
    throughput_units: int | None = Field(
        None, ge=1, description="emulator: pace what all readers receive together to N x (2 MiB/s or 4,096 events/s)"
    )
    throttle_ingress: bool = Field(
        False, description="emulator: also refuse sends past N x (1 MiB/s or 1,000 events/s) as server busy"
    )

    # --- the snapshotter --------------------------------------------------------------------------------
    keep: int = Field(10, ge=1, description="snapshotter: keep at least the newest N snapshots")
    keep_younger_than: float = Field(
        0.0, ge=0, description="snapshotter: also keep snapshots younger than this many seconds"
    )
    dry_run: bool = Field(False, description="snapshotter: say what retention would delete, delete nothing")
    rebuild: bool = Field(False, description="snapshotter: build from the earliest available event, ignoring snapshots")
    json_output: bool = Field(False, description="snapshotter: print the summary as JSON")
    continuous: bool = Field(False, description="snapshotter: run forever, one snapshot every --interval seconds")
    interval: float = Field(3600.0, gt=0, description="snapshotter: seconds between runs with --continuous")
    compress: bool = Field(False, description="snapshotter: zlib-compress snapshot payloads")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags arrive as init kwargs; the TOML file is merged in load(), below
        # the environment, because its path is itself a flag or a variable.
        return (init_settings, env_settings)

    @field_validator(
        "partition", "eventhub", "consumer_group", "snapshot_container", "capture_container", "dead_letter_container"
    )
    @classmethod
    def _no_slashes(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value.strip() != value):
            raise ValueError("must be a non-empty name without '/' or surrounding spaces")
        return value

    @field_validator("consumer_group")
    @classmethod
    def _consumer_groups(cls, value: str) -> str:
        from statepump.core.consumergroups import pool_names

        pool_names(value)  # a ValueError naming the name or range at fault
        return value

    @field_validator("capture_name_format")
    @classmethod
    def _name_format(cls, value: str) -> str:
        validate_name_format(value)  # raises a ValueError naming the missing or unknown field
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            _split_host_port(value)
        return value

    @model_validator(mode="after")
    def _combinations(self) -> Settings:
        if self.connection_string is not None and self.namespace is not None:
            raise ValueError("give either --connection-string or --namespace, not both")
        if self.snapshot_dir is not None and self.snapshot_container is not None:
            raise ValueError("give either --snapshot-dir or --snapshot-container, not both")
        if self.capture_dir is not None and self.capture_container is not None:
            raise ValueError("give either --capture-dir or --capture-container, not both")
        if self.dead_letter is not None and self.dead_letter_container is not None:
            raise ValueError("give either --dead-letter or --dead-letter-container, not both")
        needs_storage = any(
            c is not None for c in (self.snapshot_container, self.capture_container, self.dead_letter_container)
        )
        has_storage = self.storage_connection_string is not None or self.storage_account_url is not None
        if needs_storage and not has_storage:
            raise ValueError("a Blob container needs --storage-connection-string or --storage-account-url")
        if self.storage_connection_string is not None and self.storage_account_url is not None:
            raise ValueError("give either --storage-connection-string or --storage-account-url, not both")
        if self.listen is not None and not self.listen_any:
            host, _ = _split_host_port(self.listen)
            if not is_loopback(host):
                raise ValueError(f"--listen {host} is not a loopback address; add --listen-any to allow it")
        if self.data is not None and self.in_memory:
            raise ValueError("give either --data or --in-memory, not both")
        if self.throttle_ingress and self.throughput_units is None:
            raise ValueError("--throttle-ingress needs --throughput-units")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give --tls-cert and --tls-key together")
        if self.upstream is not None:
            has_hub = self.connection_string is not None or self.namespace is not None
            if has_hub and self.upstream_fallback != "hub":
                raise ValueError(
                    "give either --upstream or a hub (--connection-string, --namespace), not both, "
                    "unless --upstream-fallback hub"
                )
            if self.upstream_fallback == "hub" and not has_hub:
                raise ValueError("--upstream-fallback hub needs --connection-string or --namespace")
            if not [u for u in self.upstream.split(",") if u.strip()]:
                raise ValueError("--upstream needs at least one socket path or http(s)://host:port")
        return self

    # --- derived values ----------------------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """True when no hub (and no upstream) is configured: ``run`` and ``send`` use the embedded emulator."""
        return self.connection_string is None and self.namespace is None and self.upstream is None

    @property
    def upstreams(self) -> list[str]:
        """``--upstream``'s entries, in order."""
        return [u.strip() for u in (self.upstream or "").split(",") if u.strip()]

    def relay_token(self) -> bytes | None:
        """The relay's bearer token, read from its file (one clear error if unreadable or short)."""
        return _read_key(self.relay_token_file, "--relay-token-file", "token")

    def tls_context(self) -> Any:
        """The server's TLS context for --listen (``None`` without --tls-cert)."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
            raise ConfigError(f"--tls-cert/--tls-key: cannot load {self.tls_cert} and its key: {why}") from None
        return context

    @property
    def listen_address(self) -> tuple[str, int] | None:
        return _split_host_port(self.listen) if self.listen else None

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else self.data_dir / "statepump.sock"

    @property
    def snapshot_directory(self) -> Path | None:
        """Where directory snapshots go: the explicit one, or the embedded default when nothing is configured."""
        if self.snapshot_dir is not None:
            return self.snapshot_dir
        if self.snapshot_container is None:
            return self.data_dir  # snapshots then live in <data-dir>/<snapshot-prefix>/...
        return None

    def creates_containers(self) -> bool:
        """Whether a missing snapshot container is created: as set, else only on the local development account.

        In Azure the deployment (deploy/ Bicep) creates the containers, and a
        least-privilege role may not be allowed to; Azurite starts empty.

        >>> Settings(storage_account_url="http://127.0.0.1:10000/devstoreaccount1").creates_containers()
        True
        >>> Settings(storage_account_url="https://acct.blob.core.windows.net").creates_containers()
        False
        """
        if self.create_containers is not None:
            return self.create_containers
        where = self.storage_account_url or ""
        if self.storage_connection_string is not None:
            where = self.storage_connection_string.get_secret_value()
        return "devstoreaccount1" in where or "usedevelopmentstorage=true" in where.lower()

    def load_schema(self) -> Schema | None:
        """``--schema``, read and compiled (one clear error naming the file and the problem)."""
        if self.schema_file is None:
            return None
        from statepump.core.schema import Schema

        return Schema.load(self.schema_file)

    def make_reducer(self) -> Reducer[Any]:
        """``--reducer``, with ``--schema`` when one is given (the ``config`` reducer only)."""
        from statepump.core.configops import config_reducer
        from statepump.core.reducer import load_reducer

        reducer = load_reducer(self.reducer)
        schema = self.load_schema()
        if schema is None:
            return reducer
        if reducer.name != "config" or reducer.version != 1:
            raise ConfigError(f"--schema: checks the config reducer's state only, not {reducer.identity}'s")
        return config_reducer(schema)

    def hmac_key(self) -> bytes | None:
        """The snapshot signing key, read from its file (one clear error if unreadable or empty)."""
        if self.snapshot_hmac_key_file is None:
            return None
        try:
            key = self.snapshot_hmac_key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                f"--snapshot-hmac-key-file: cannot read {self.snapshot_hmac_key_file}: {exc.strerror}"
            ) from None
        if len(key) < 16:
            raise ConfigError("--snapshot-hmac-key-file: the key must be at least 16 bytes")
        return key

    def resolved_capture_namespace(self) -> str:
        """The ``{Namespace}`` of Capture names: explicit, else the hub host's first label, else ``emulator``."""
        if self.capture_namespace:
            return self.capture_namespace
        host = self.namespace
        if host is None and self.connection_string is not None:
            for part in self.connection_string.get_secret_value().split(";"):
                key, _, value = part.partition("=")
                if key.strip().lower() == "endpoint":
                    host = value.strip().removeprefix("sb://").split("/")[0].split(":")[0]
        if host and not host.replace(".", "").isdigit() and host != "localhost":
            return host.split(".")[0]
        return self.namespace_name

    def resolved_eventhub(self) -> str:
        """The hub name: explicit, else the connection string's ``EntityPath``, else ``hub``."""
        if self.eventhub:
            return self.eventhub
        if self.connection_string is not None:
            for part in self.connection_string.get_secret_value().split(";"):
                key, _, value = part.partition("=")
                if key.strip().lower() == "entitypath" and value.strip():
                    return value.strip()
        return "hub"


def _read_key(path: Path | None, flag_name: str, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{flag_name}: cannot read {path}: {exc.strerror}") from None
    if len(key) < 16:
        raise ConfigError(f"{flag_name}: the {what} must be at least 16 bytes")
    return key


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT with a port from 1 to 65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    >>> is_loopback("127.0.0.2"), is_loopback("::1"), is_loopback("10.0.0.1")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def flag(name: str) -> str:
    """The command-line flag of a field.

    >>> flag("connection_string")
    '--connection-string'
    """
    return "--" + PUBLIC_NAMES.get(name, name).replace("_", "-")


#: Fields whose name a user never sees (BaseModel has an attribute of that name): flag, variable and key.
PUBLIC_NAMES: dict[str, str] = {"json_output": "json", "schema_file": "schema"}


def _describe_location(name: str) -> str:
    key = PUBLIC_NAMES.get(name, name)
    return f"{flag(name)} ({ENV_PREFIX}{key.upper()} / {key})"


def load(flags: dict[str, Any], *, environ: dict[str, str] | None = None) -> Settings:
    """Settings from explicit ``flags`` (only those the user gave), the environment, and the TOML file.

    Raises :class:`ConfigError` with one line naming the setting at fault.
    """
    import os

    env = dict(os.environ if environ is None else environ)
    config_path = flags.get("config") or env.get(f"{ENV_PREFIX}CONFIG")
    from_file: dict[str, Any] = {}
    if config_path:
        path = Path(config_path)
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
        known = set(Settings.model_fields) | set(PUBLIC_NAMES.values())
        unknown = sorted(set(from_file) - known)
        if unknown:
            raise ConfigError(f"--config: {path} has unknown setting(s): {', '.join(unknown)}")
    # The setting is called json_output (BaseModel has a json attribute) but is
    # --json, STATEPUMP_JSON and `json` everywhere a user sees it.
    for field_name, public in PUBLIC_NAMES.items():
        if public in from_file:
            from_file[field_name] = from_file.pop(public)
        if f"{ENV_PREFIX}{public.upper()}" in env:
            from_file[field_name] = env[f"{ENV_PREFIX}{public.upper()}"]  # the environment beats the file
    # The environment beats the file: drop file keys that the environment sets.
    for key in list(from_file):
        if f"{ENV_PREFIX}{key.upper()}" in env:
            del from_file[key]
    merged = {**from_file, **{k: v for k, v in flags.items() if v is not None}}
    try:
        if environ is None:
            return Settings(**merged)
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            return Settings(**merged)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    # Built from the location and message only: pydantic's own text includes
    # the input value, which may be a secret.
    first = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(p) for p in first.get("loc", ())]
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        return f"invalid settings: {message}"
    name = loc[0]
    if first.get("type") == "extra_forbidden":
        return f"unknown setting {name!r}"
    return f"invalid setting {_describe_location(name)}: {message}"


#: Which settings each command exposes as flags.
COMMON = (
    "config",
    "connection_string",
    "namespace",
    "eventhub",
    "partition",
    "consumer_group",
    "log_level",
    "data_dir",
    "retry_seconds",
)
STORAGE = (
    "reducer",
    "schema_file",
    "snapshot_dir",
    "snapshot_container",
    "snapshot_prefix",
    "storage_connection_string",
    "storage_account_url",
    "create_containers",
    "snapshot_hmac_key_file",
    "capture_dir",
    "capture_container",
    "capture_name_format",
    "capture_namespace",
    "poison_policy",
    "dead_letter",
    "dead_letter_container",
    "allow_gap",
    "gc_interval",
    "catchup_publish_interval",
)
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {
    "run": (
        *COMMON,
        *STORAGE,
        "node_id",
        "socket",
        "socket_group",
        "listen",
        "listen_any",
        "history",
        "history_bytes",
        "relay_token_file",
        "tls_cert",
        "tls_key",
        "upstream",
        "upstream_ca",
        "upstream_fallback",
    ),
    # The writer commands check against the sidecar on --socket (and --wait reads the outcome there).
    **{writer: (*COMMON, "socket") for writer in ("send", "set", "delete", "merge", "skip")},
    # query's hub and store settings are for --at-sequence/--at-time, which rebuild a state offline.
    "query": tuple(dict.fromkeys(("config", "socket", "data_dir", "log_level", *COMMON, *STORAGE))),
    "log": ("config", "socket", "data_dir", "log_level"),
    "watch": ("config", "socket", "data_dir", "log_level"),
    "diff": (*COMMON, *STORAGE),
    # revert reads the state now on --socket and rebuilds the one at --to offline, as diff does.
    "revert": (*COMMON, *STORAGE, "socket"),
    "health": ("config", "socket", "data_dir", "log_level"),
    "dead-letters": (
        "config",
        "data_dir",
        "log_level",
        "dead_letter",
        "dead_letter_container",
        "storage_connection_string",
        "storage_account_url",
    ),
    "emulator": (
        "config",
        "host",
        "port",
        "namespace_name",
        "eventhub",
        "partitions",
        "data",
        "in_memory",
        "retention",
        "admin_port",
        "capture_dir",
        "capture_container",
        "capture_interval",
        "capture_name_format",
        "storage_connection_string",
        "emulator_key",
        "consumer_group",
        "consumer_groups",
        "receivers_per_partition",
        "max_connections",
        "throughput_units",
        "throttle_ingress",
        "log_level",
    ),
    "snapshotter": (
        *COMMON,
        *STORAGE,
        "node_id",
        "keep",
        "keep_younger_than",
        "dry_run",
        "rebuild",
        "json_output",
        "continuous",
        "interval",
        "compress",
    ),
}
# The writers check against --schema too (the control events of `skip` are no config operations).
for _writer in ("send", "set", "delete", "merge"):
    COMMAND_FIELDS[_writer] = (*COMMAND_FIELDS[_writer], "schema_file")
# The doctor checks a deployment with exactly the settings of the sidecar it stands for.
COMMAND_FIELDS["doctor"] = COMMAND_FIELDS["run"]
