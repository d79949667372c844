"""The ``statepump`` command: ``run``, the writers (``send``, ``set``, ``delete``, ``merge``), ``query``, and more.

Every setting is a flag, a ``STATEPUMP_*`` variable and a TOML key
(:mod:`statepump.settings`). Bad settings exit with status 2 and one line
naming the setting; runtime failures exit 1 with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from statepump import writecommands
from statepump.core.errors import ConfigError, StatepumpError
from statepump.settings import COMMAND_FIELDS, Settings, flag, load

log = logging.getLogger("statepump")

EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2

#: How often the embedded default writes a local snapshot (and once more at stop), so a restart loads it.
EMBEDDED_SNAPSHOT_SECONDS = 300.0


def add_settings(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flags of ``command``'s settings, generated from the one settings model."""
    group = parser.add_argument_group("settings (each also STATEPUMP_<NAME> and a TOML key)")
    for name in COMMAND_FIELDS[command]:
        field = Settings.model_fields[name]
        option = flag(name)
        default = field.default if not isinstance(field.default, Path) else str(field.default)
        helptext = f"{field.description}" + (f" [default: {default}]" if default not in (None, False) else "")
        if field.annotation is bool:
            group.add_argument(option, dest=name, action="store_true", default=None, help=helptext)
        else:
            # Values stay strings here: the settings model converts and validates
            # them, so flags, environment and TOML fail with the same message.
            group.add_argument(option, dest=name, default=None, metavar=_metavar(name, field.annotation), help=helptext)


def _metavar(name: str, annotation: object) -> str:
    """What a flag's value is, for --help: DIR, FILE, PATH, N, SECONDS, or the name's last word."""
    text = str(annotation)
    if "bool" in text:  # an optional yes/no, whose default depends on other settings
        return "yes|no"
    if "Path" in text:
        return "DIR" if name.endswith("dir") or name == "data" else "FILE" if name.endswith("file") else "PATH"
    if "int" in text:
        return "N"
    if "float" in text:
        return "SECONDS"
    return name.split("_")[-1].upper()


def settings_from(args: argparse.Namespace, command: str) -> Settings:
    given = {name: getattr(args, name) for name in COMMAND_FIELDS[command] if getattr(args, name, None) is not None}
    return load(given)


def configure_logging(level: str) -> None:
    """One log format for every statepump command, on stderr; the Azure SDKs' chatter kept at WARNING."""
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Azure SDKs log every HTTP request and AMQP frame at INFO.
    for noisy in ("azure", "uamqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- run ---------------------------------------------------------------------------------


async def _run(settings: Settings) -> int:
    from statepump.components import embedded_file, make_dead_letter, make_pump

    # Everything a setting can get wrong is found here, before anything is started or created:
    # a bad --reducer or --schema must not leave a data directory, emulator logs or an embedded.json behind.
    settings.make_reducer()
    settings.hmac_key()
    emulator = None
    if settings.embedded:
        from statepump.emulator import Emulator
        from statepump.emulator.quotas import expand

        try:
            groups = expand(settings.consumer_group)  # the group the pump reads exists
            emulator = Emulator(
                port=0,
                data_dir=settings.data_dir / "emulator",
                eventhub=settings.resolved_eventhub(),
                # One partition: a configuration hub needs one total order, and a key sent
                # with --partition-key must land on the partition the pump reads.
                partitions=1,
                consumer_groups=groups,
            )
        except ValueError as exc:
            raise ConfigError(f"--consumer-group: {exc}") from None
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await emulator.start()
        settings = settings.model_copy(update={"connection_string": _secret(emulator.connection_string)})
        marker = embedded_file(settings)
        marker.write_text(json.dumps({"connection_string": emulator.connection_string, "pid": os.getpid()}))
    from statepump.components import upstream_eventhub

    settings = await upstream_eventhub(settings)  # relay mode: the upstream's hub, unless --eventhub says
    # The dead-letter record is also the marker a restart finds: a poison stop is told in full once (issue 18).
    pump = make_pump(settings, dead_letter=make_dead_letter(settings))
    server = None
    keeper = None
    readiness = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await pump.start()
        from statepump.serving.sidecar import Server

        server = Server(
            pump,
            socket_path=settings.socket_path,
            listen=settings.listen_address,
            listen_any=settings.listen_any,
            socket_group=settings.socket_group,
            relay_token=settings.relay_token(),
            tls=settings.tls_context(),
        )
        await server.start()
        readiness = asyncio.ensure_future(_say_readiness(pump, _where(settings)))
        if emulator is not None and pump.store is not None and settings.snapshot_container is None:
            from statepump.pump.keeper import SnapshotKeeper

            keeper = SnapshotKeeper(
                pump,
                pump.store,
                eventhub=settings.resolved_eventhub(),
                interval=EMBEDDED_SNAPSHOT_SECONDS,
                hmac_key=settings.hmac_key(),
            )
            keeper.start()
        if emulator is not None:
            _print_embedded_help(settings, emulator.port)
        done = asyncio.ensure_future(stop.wait())
        assert pump._task is not None
        await asyncio.wait({done, pump._task}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        if pump.failure is not None:
            print(f"statepump run: {pump.failure}", file=sys.stderr)
            return EXIT_FAILED
        if not stop.is_set():
            # A poison event stopped the pump (policy stop): keep serving the last good
            # version, not ready and saying why, until told to stop.
            await stop.wait()
        log.info("stopping")
        return 0
    finally:
        if readiness is not None:
            readiness.cancel()
        if keeper is not None:
            await keeper.stop()  # before pump.stop(), which closes the store
        if server is not None:
            await server.stop(grace=5.0)
        await pump.stop()
        if emulator is not None:
            await emulator.stop()
            with contextlib.suppress(FileNotFoundError):
                embedded_file(settings).unlink()


def _where(settings: Settings) -> str:
    """Where the sidecar serves, for the ready line."""
    where = f"socket {settings.socket_path}"
    if settings.listen_address is not None:
        host, port = settings.listen_address
        where += f" and http://{host}:{port}"
    return where


async def _say_readiness(pump: Any, where: str) -> None:
    """One plain line each time the sidecar becomes ready.

    Losing readiness needs no line here: the pump logs each cause once, as
    ``not serving as ready: <why>`` (poison event, gap, outage, upstream).
    """
    was_ready = False
    while True:
        changed = pump.readiness_change()  # registered before the read: no change falls in between
        if pump.ready and not was_ready:
            log.info("ready: serving sequence %d on %s", pump.version.sequence, where)
        was_ready = pump.ready
        await changed


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def _command_name() -> str:
    """How to call this statepump again: a path when it is not the one on PATH (e.g. .venv/bin/statepump)."""
    import shutil

    here = Path(sys.argv[0]) if Path(sys.argv[0]).name == "statepump" else Path(sys.executable).parent / "statepump"
    on_path = shutil.which("statepump")
    if on_path and Path(on_path).resolve() == here.resolve():
        return "statepump"
    try:
        return str(here.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def _print_embedded_help(settings: Settings, port: int) -> None:
    sock = settings.socket_path
    me = _command_name()
    print(
        f"""
statepump is running on an embedded Event Hubs emulator (127.0.0.1:{port}, 1 partition); its data is under
{settings.data_dir}/, with a local snapshot every {EMBEDDED_SNAPSHOT_SECONDS / 60:.0f} minutes and at exit in \
{settings.data_dir / settings.snapshot_prefix}/, so a restart starts from it.
In another terminal:
  {me} send '{{"op": "set", "path": "greeting", "value": "hello"}}'
  {me} query greeting
  curl --unix-socket {sock} http://statepump/v1/status
Stop with Ctrl-C.
""",
        file=sys.stderr,
        flush=True,
    )


# --- send ---------------------------------------------------------------------------------


def _bodies(values: Sequence[str]) -> list[bytes]:
    lines = list(values) if values else [line for line in sys.stdin.read().splitlines() if line.strip()]
    bodies = []
    for i, text in enumerate(lines, 1):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"event {i} is not valid JSON: {exc}") from None
        bodies.append(text.encode())
    if not bodies:
        raise ConfigError("nothing to send: give JSON events as arguments or as lines on stdin")
    return bodies


async def _send(settings: Settings, args: argparse.Namespace) -> int:
    from statepump.components import embedded_file, hub_arguments
    from statepump.core.writecheck import AUTHOR_PROPERTY
    from statepump.eventhubs.send import send_events

    bodies = writecommands.bodies_for(args, _bodies)  # bad input is reported before any connection is made
    schema = settings.load_schema()  # a bad --schema file too (exit 2), whatever --force says
    if settings.embedded:
        marker = embedded_file(settings)
        try:
            embedded = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise ConfigError(
                "no hub configured (--connection-string or --namespace) and no embedded hub running: "
                "start `statepump run` first"
            ) from None
        settings = settings.model_copy(update={"connection_string": _secret(embedded["connection_string"])})
    properties: dict[str, str] = {}
    for item in getattr(args, "property", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--property {item!r} must be KEY=VALUE")
        properties[key] = value
    properties.setdefault(AUTHOR_PROPERTY, writecommands.author_of(args))
    connection = hub_arguments(settings)
    for unused in ("partition", "consumer_group", "retry"):
        connection.pop(unused, None)
    problem = None if args.force else writecommands.refusal(settings.socket_path, bodies, schema)
    if problem is not None:
        print(
            f"statepump {args.command}: refused: {problem}; nothing was sent (--force sends it anyway)",
            file=sys.stderr,
        )
        return writecommands.EXIT_REFUSED
    if getattr(args, "partition_key", None) is not None and "partition" in args.given:
        raise ConfigError("give either --partition or --partition-key, not both")
    if getattr(args, "partition_key", None) is not None and not args.force:
        from statepump.eventhubs.send import partition_ids

        ids = await partition_ids(**connection)
        if len(ids) > 1:
            # A key picks a partition by hash: on a hub of several, it may be one no pump reads.
            raise ConfigError(
                f"--partition-key: event hub {settings.resolved_eventhub()} has {len(ids)} partitions "
                f"({', '.join(ids)}) and a key routes by hash, maybe to one the pump (partition "
                f"{settings.partition}) never reads; send with --partition {settings.partition} instead, "
                "or add --force to route by key anyway"
            )
    partition_key = getattr(args, "partition_key", None)
    sequences = await send_events(
        **connection,
        bodies=bodies,
        partition=None if partition_key is not None else settings.partition,
        partition_key=partition_key,
        properties=properties or None,
    )
    return writecommands.report(settings.socket_path, sequences, wait=args.wait, timeout=args.wait_timeout)


def _dead_letters(settings: Settings, since: int | None) -> int:
    from statepump.components import make_dead_letter

    sink = make_dead_letter(settings)
    try:
        records = sink.read(since=since)  # type: ignore[attr-defined]
    finally:
        close = getattr(sink, "close", None)
        if close is not None:
            close()
    for record in records:
        print(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return 0


# --- snapshot inspect ----------------------------------------------------------------


def _inspect(path: Path, *, show_state: str | None = None, compact: bool = False) -> int:
    from pyrsistent import PMap, PSet, PVector

    from statepump.core import codec
    from statepump.core.errors import SnapshotCorrupt

    try:
        data = path.read_bytes()
        meta, state = codec.decode(data)
    except OSError as exc:
        print(f"statepump snapshot inspect: {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    except SnapshotCorrupt as exc:
        print(f"statepump snapshot inspect: {path}: {exc}", file=sys.stderr)
        return EXIT_FAILED

    if show_state is not None:
        from statepump.historycommands import inspect_state

        return inspect_state(state, show_state, compact=compact)

    def count(node: object) -> tuple[int, int]:
        """(containers, leaves) below ``node``."""
        if isinstance(node, PMap):
            children: Any = node.values()
        elif isinstance(node, PVector | PSet):
            children = node
        else:
            return 0, 1
        containers, leaves = 1, 0
        for child in children:
            c, leaf = count(child)
            containers += c
            leaves += leaf
        return containers, leaves

    containers, leaves = count(state)
    print(f"file             {path} ({len(data):,} bytes)")
    for key in ("eventhub", "partition", "sequence", "enqueued_time", "created_at", "events_folded", "codec"):
        print(f"{key:<16} {getattr(meta, key)}")
    print(f"reducer          {meta.reducer_identity}")
    print(f"schema           {meta.schema or 'none'}")
    print(f"payload          {meta.payload_length:,} bytes, sha256 {meta.payload_sha256}")
    print(f"signed           {'yes (HMAC-SHA256; not verified without the key)' if meta.signed else 'no'}")
    print(f"state            {type(state).__name__}, {containers:,} maps/vectors/sets, {leaves:,} values")
    if isinstance(state, PMap):
        keys = sorted(map(str, state.keys()))
        print(f"top-level keys   {len(keys):,}: {', '.join(keys[:10])}{' ...' if len(keys) > 10 else ''}")
    return 0


# --- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statepump",
        description="Keep a configuration in RAM, folded from an Azure Event Hubs partition.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the sidecar: pump + query socket",
        description="Load the newest snapshot, catch up (Capture, then the hub), serve the state on a local socket. "
        "With no hub configured, runs an embedded Event Hubs emulator under --data-dir. "
        "With --upstream, follows other statepumps (relays) instead of the hub: their snapshot, then their feed.",
    )
    add_settings(run, "run")

    send = commands.add_parser(
        "send",
        help="send JSON events to the hub; prints their sequence numbers",
        description="Check each event as the fold would (syntax; with a sidecar on --socket, against its current "
        "values) and send them, or refuse them all with one line and exit 2, sending nothing (--force sends "
        "anyway). Events are arguments, lines of --file, or lines on stdin.",
    )
    send.add_argument("events", nargs="*", metavar="JSON", help="events (default: JSON lines on stdin)")
    send.add_argument("--file", default=None, metavar="FILE", help="read the events from FILE, one JSON per line")
    send.add_argument("--partition-key", default=None, help="route by this partition key instead of --partition")
    send.add_argument("--property", action="append", metavar="KEY=VALUE", help="application property (repeatable)")
    send.add_argument(
        "--force",
        action="store_true",
        help="send even what the checks refuse (and with --partition-key, route by key on a hub of several partitions)",
    )
    writecommands.add_writer_flags(send, "send")
    add_settings(send, "send")
    for name, summary in (
        ("set", "set PATH to the JSON VALUE"),
        ("delete", "delete what PATH holds"),
        ("merge", "merge the JSON object into what PATH holds"),
    ):
        writer = commands.add_parser(
            name,
            help=f"{summary} (one config event, checked before it is sent)",
            description=f"{summary[0].upper()}{summary[1:]}: one event of the config reducer, checked as the fold "
            "would (syntax; with a sidecar on --socket, against its current value, so a failing --expect or a "
            "delete of nothing is refused with exit 2 and nothing is sent; --force sends anyway). Prints the "
            "sequence number, or with --wait the outcome: 'applied at N' or 'rejected at N: REASON' (exit 6).",
        )
        writer.add_argument("path", metavar="PATH", help="e.g. markup/tshirt")
        if name != "delete":
            writer.add_argument("value", metavar="VALUE" if name == "set" else "JSON", help="a JSON value, e.g. 0.03")
        writer.add_argument("--force", action="store_true", help="send even what the checks refuse")
        writecommands.add_writer_flags(writer, name)
        add_settings(writer, name)
    from statepump.skipcommand import add_skip_flags

    skip = commands.add_parser(
        "skip",
        help="release every node halted on poison event N (a control event; see README, Poison events)",
        description="Append a control event that tells every pump, snapshotter and later replay halted on poison "
        "event N to skip it and apply the events after it. Refused (exit 2, nothing sent) when N is not in the log "
        "yet or the sidecar on --socket already folded past it; --force sends anyway. Prints the control event's "
        "sequence number.",
    )
    add_skip_flags(skip)
    add_settings(skip, "skip")

    query = commands.add_parser("query", help="print the JSON value at PATH from a running sidecar")
    query.add_argument("path", nargs="?", default="", metavar="PATH", help="e.g. markup/tshirt (default: everything)")
    query.add_argument("--min-sequence", type=int, default=None, help="wait until this event is applied")
    query.add_argument("--timeout", type=float, default=None, help="seconds to wait for --min-sequence")
    query.add_argument("--compact", action="store_true", help="print on one line (default: indented; keys sorted)")
    past = query.add_mutually_exclusive_group()
    past.add_argument(
        "--at-sequence",
        type=int,
        default=None,
        metavar="N",
        help="no sidecar: rebuild the state at event N from the newest snapshot at or before N plus the events "
        "after it (Capture, then the hub), as `statepump run` would; needs the run's hub and snapshot settings",
    )
    past.add_argument(
        "--at-time",
        default=None,
        metavar="ISO",
        help="no sidecar: the state after the last event enqueued at or before this time (e.g. 2026-01-01T12:00:00Z)",
    )
    add_settings(query, "query")

    dead = commands.add_parser(
        "dead-letters",
        help="list the recorded poison events (by statepump run under either policy, by the snapshotter under "
        "--poison-policy skip; one JSON line each)",
        description="Print the dead-letter records of --dead-letter FILE (default DATA_DIR/dead-letter.jsonl) or "
        "--dead-letter-container, one JSON object a line in sequence order: partition, sequence, reducer, error, "
        "body (text when UTF-8, else base64: body_encoding says which). Each poison event is recorded once per "
        "sink, however many restarts and snapshotter runs met it.",
    )
    dead.add_argument("--since", type=int, default=None, metavar="N", help="only events after sequence N")
    add_settings(dead, "dead-letters")

    health = commands.add_parser("health", help="exit 0 when the sidecar is alive (with --ready: and caught up)")
    health.add_argument("--ready", action="store_true", help="check readiness instead of liveness")
    add_settings(health, "health")

    doctor = commands.add_parser(
        "doctor",
        help="check a deployment in seconds: one line per finding with what to do; exit 0 if a new node would be ready",
        description="With the settings of `statepump run`: the hub and its partitions, the newest snapshot and "
        "the reducer, whether retention and Capture cover the events after it, and the free receiver slots of "
        "each consumer group of the pool (taken for about two seconds to count them).",
    )
    add_settings(doctor, "doctor")

    log = commands.add_parser(
        "log",
        help="print the recent changes to PATH from a running sidecar (who, when, what, outcome)",
        description="The sidecar's recent events that touched PATH (at it, below it or above it), oldest first: "
        "sequence, enqueued time, author (the statepump-author property), outcome, operations. Only what the "
        "sidecar's ring keeps (--history); older ones: `statepump diff` or `query --at-sequence`.",
    )
    log.add_argument("path", nargs="?", default="", metavar="PATH", help="e.g. markup (default: every change)")
    log.add_argument("--limit", type=int, default=20, help="how many recent changes to print [default: 20]")
    log.add_argument("--follow", "-f", action="store_true", help="then print each new change until Ctrl-C")
    log.add_argument("--json", dest="log_json", action="store_true", help="one JSON object a line, as /v1/history")
    add_settings(log, "log")

    watch = commands.add_parser(
        "watch",
        help="print one JSON line per change of the value at PATH, until Ctrl-C (reconnects)",
        description="Follows /v1/watch: the current value first, then each change, as "
        '{"sequence": N, "path": PATH, "value": ...} (null when deleted). Reconnects when the sidecar restarts.',
    )
    watch.add_argument("path", nargs="?", default="", metavar="PATH", help="e.g. markup/tshirt")
    add_settings(watch, "watch")

    diff = commands.add_parser(
        "diff",
        help="print what changed at PATH between two sequence numbers (offline, no sidecar)",
        description="Rebuilds the states at --from and --to as `query --at-sequence` does and prints the added "
        "(+), removed (-) and changed (~) paths with old and new values.",
    )
    diff.add_argument("path", nargs="?", default="", metavar="PATH", help="e.g. markup (default: everything)")
    diff.add_argument("--from", dest="start", type=int, required=True, metavar="N", help="the older sequence number")
    diff.add_argument("--to", dest="end", type=int, required=True, metavar="M", help="the newer sequence number")
    diff.add_argument("--json", dest="diff_json", action="store_true", help="print one JSON object (for scripts)")
    add_settings(diff, "diff")
    from statepump.revertcommand import add_revert_flags

    revert = commands.add_parser(
        "revert",
        help="bring PATH back to its value at event N, as one atomic event (prints it, asks first)",
        description="Reads PATH now from the sidecar on --socket, rebuilds it at --to N offline (as `query "
        "--at-sequence`), prints the operations that bring it back (with a test of each current value), asks "
        "(--yes for scripts; without a terminal it refuses, exit 2) and sends them as one event. A path that "
        "changes before the revert is folded makes it a rejection, not an overwrite.",
    )
    add_revert_flags(revert)
    add_settings(revert, "revert")

    emulator = commands.add_parser("emulator", help="run the local Event Hubs emulator")
    add_settings(emulator, "emulator")

    snapshot = commands.add_parser("snapshot", help="work with snapshot files")
    snapshot_commands = snapshot.add_subparsers(dest="snapshot_command", required=True, metavar="SUBCOMMAND")
    inspect = snapshot_commands.add_parser("inspect", help="print a snapshot's metadata and a summary of its state")
    inspect.add_argument("file", type=Path)
    inspect.add_argument(
        "--state",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="print the state (or the value at PATH) as JSON instead of the summary",
    )
    inspect.add_argument("--compact", dest="inspect_compact", action="store_true", help="with --state: one line")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that an unknown argument is reported by the (sub)command it was given to.

    argparse hands a subcommand's unrecognised arguments up to the top-level
    parser, whose error shows ``statepump``'s usage, not the subcommand's.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        subparser = parser
        for dest in ("command", "snapshot_command"):
            choices = _subcommands(subparser)
            if choices is None or getattr(args, dest, None) not in choices:
                break
            subparser = choices[getattr(args, dest)]
        subparser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser] | None:
    for action in parser._actions:  # argparse offers no public way to find a parser's subparsers
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``statepump`` command."""
    parser = build_parser()
    args = parse(parser, argv)
    command: str = args.command
    if command == "snapshot":
        return _inspect(args.file, show_state=args.state, compact=args.inspect_compact)
    try:
        settings = settings_from(args, command)
        args.given = {n for n in COMMAND_FIELDS[command] if getattr(args, n, None) is not None}
        configure_logging(settings.log_level)
        if command == "run":
            return asyncio.run(_run(settings))
        if command in writecommands.WRITERS:
            return asyncio.run(_send(settings, args))
        if command == "revert":
            from statepump.revertcommand import revert_command

            return asyncio.run(revert_command(settings, args))
        if command == "skip":
            from statepump.skipcommand import skip_command

            return asyncio.run(skip_command(settings, args))
        if command == "query" and (args.at_sequence is not None or args.at_time is not None):
            from statepump.historycommands import query_at_command

            return query_at_command(
                settings, args.path, at_sequence=args.at_sequence, at_time=args.at_time, compact=args.compact
            )
        if command in ("log", "watch", "diff"):
            from statepump import historycommands

            if command == "log":
                return historycommands.log_command(
                    settings.socket_path, args.path, limit=args.limit, follow=args.follow, as_json=args.log_json
                )
            if command == "watch":
                return historycommands.watch_command(settings.socket_path, args.path)
            return historycommands.diff_command(settings, args.start, args.end, args.path, as_json=args.diff_json)
        if command == "query":
            from statepump.clientcommands import query_command

            return query_command(settings.socket_path, args.path, args.min_sequence, args.timeout, compact=args.compact)
        if command == "dead-letters":
            return _dead_letters(settings, args.since)
        if command == "health":
            from statepump.clientcommands import health_command

            return health_command(settings.socket_path, ready=args.ready)
        if command == "emulator":
            return asyncio.run(_emulator(settings))
        if command == "doctor":
            from statepump.doctorcommand import doctor_command

            return asyncio.run(doctor_command(settings))
    except ConfigError as exc:
        print(f"statepump {command}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except StatepumpError as exc:
        print(f"statepump {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {command}")
    return EXIT_BAD_SETTINGS  # parser.error exits; this line is for the type checker


async def _emulator(settings: Settings) -> int:
    from statepump.emulator import Emulator, serve_forever
    from statepump.emulator.quotas import check_group_name, expand, numbered

    try:
        groups = [check_group_name(g) for g in [*expand(settings.consumer_group), *numbered(settings.consumer_groups)]]
    except ValueError as exc:
        raise ConfigError(f"--consumer-group: {exc}") from None
    emulator = Emulator(
        host=settings.host,
        port=settings.port,
        namespace=settings.namespace_name,
        eventhub=settings.resolved_eventhub(),
        partitions=settings.partitions,
        data_dir=None if settings.in_memory else (settings.data or settings.data_dir / "emulator"),
        retention=settings.retention,
        admin_port=settings.admin_port,
        capture_dir=settings.capture_dir,
        capture_container=settings.capture_container,
        storage_connection_string=(
            settings.storage_connection_string.get_secret_value() if settings.storage_connection_string else None
        ),
        capture_interval=settings.capture_interval,
        capture_name_format=settings.capture_name_format,
        key=settings.emulator_key.get_secret_value() if settings.emulator_key else None,
        consumer_groups=groups,
        receivers_per_partition=settings.receivers_per_partition or None,
        max_connections=settings.max_connections,
        throughput_units=settings.throughput_units,
        throttle_ingress=settings.throttle_ingress,
    )
    started = time.monotonic()
    await serve_forever(emulator)
    log.info("emulator stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
