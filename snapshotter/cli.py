"""The ``snapshotter`` command.

Settings are ``statepump run``'s (flags, ``STATEPUMP_*`` variables, TOML;
:mod:`statepump.settings`) plus the snapshotter's own (``--keep``,
``--keep-younger-than``, ``--dry-run``, ``--rebuild``, ``--json``,
``--continuous``, ``--interval``, ``--compress``).

Exit status: 0 when the run did its job (a snapshot written, nothing new, or
another run wrote the same snapshot first); 1 with one line on stderr when it
could not (a gap, a poison event, an unreachable hub or store); 2 with one
line naming the setting when the settings are wrong. Stdout gets the lines of
what retention deleted and one summary line, or with ``--json`` one JSON
object per run. Logs (progress, events/s) go to stderr.

Examples::

    snapshotter --connection-string "$EVENTHUB" --snapshot-dir /var/lib/statepump --keep 5
    snapshotter --config /etc/statepump.toml --json
    snapshotter --config /etc/statepump.toml --continuous --interval 900
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from snapshotter.outcome import Outcome
from statepump.cli import add_settings, configure_logging, settings_from
from statepump.core.errors import ConfigError, StatepumpError
from statepump.settings import Settings

log = logging.getLogger("snapshotter")

EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
PROG = "snapshotter"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a versioned snapshot of one Event Hubs partition's folded state, then prune old ones. "
        "Run it from cron, or with --continuous.",
    )
    add_settings(parser, "snapshotter")
    return parser


def report(outcome: Outcome, *, as_json: bool) -> None:
    """Print a run's outcome on stdout: deletions and a summary line, or one JSON object."""
    if as_json:
        print(json.dumps(outcome.as_json(), sort_keys=True), flush=True)
        return
    for line in outcome.deletion_lines():
        print(line)
    print(outcome.line(), flush=True)


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The secret values in ``settings``, to be masked in anything printed."""
    values = []
    for secret in (settings.connection_string, settings.storage_connection_string):
        if secret is not None:
            text = secret.get_secret_value()
            values.append(text)
            # The key alone may be quoted by an error, without the rest of the string.
            for part in text.split(";"):
                key, sep, value = part.partition("=")
                if sep and key.strip().lower() in ("sharedaccesskey", "accountkey", "sharedaccesssignature"):
                    values.append(value.strip())
    return tuple(v for v in values if v)


def describe_failure(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """The one line printed for a failed run, with SAS signatures, keys and ``secrets`` masked.

    >>> describe_failure(ValueError("bad SharedAccessKey=abc"), ("abc",))
    'unexpected ValueError: bad SharedAccessKey=***'
    """
    from statepump.storage.containers import scrub

    text = " ".join(str(exc).split())  # one line, whatever the exception's message looked like
    if isinstance(exc, StatepumpError):
        return scrub(text, *secrets)
    return f"unexpected {type(exc).__name__}: {scrub(text, *secrets)}"


def with_embedded_hub(settings: Settings) -> Settings:
    """With no hub configured, use the one a local ``statepump run`` started (as ``statepump send`` does)."""
    if not settings.embedded:
        return settings
    from pydantic import SecretStr

    from statepump.components import embedded_file

    marker = embedded_file(settings)
    try:
        embedded = json.loads(marker.read_text())
        connection_string = str(embedded["connection_string"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            "no hub configured (--connection-string or --namespace) and no embedded hub running: "
            "start `statepump run` first"
        ) from None
    return settings.model_copy(update={"connection_string": SecretStr(connection_string)})


async def continuous(
    settings: Settings,
    once: Callable[[], Awaitable[Outcome]],
    stop: asyncio.Event,
) -> int:
    """Run ``once`` every ``settings.interval`` seconds until ``stop`` is set; returns 0.

    A failed run is reported (one line on stderr) and the next one is tried
    on schedule: a long-running snapshotter outlives a hub outage. Setting
    ``stop`` during a run cancels it; a snapshot write is atomic, so a
    cancelled run leaves no partial snapshot.
    """
    while not stop.is_set():
        run = asyncio.ensure_future(once())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
            break
        exc = run.exception()
        if exc is not None:
            print(f"{PROG}: {describe_failure(exc, secrets_of(settings))}", file=sys.stderr, flush=True)
        else:
            report(run.result(), as_json=settings.json_output)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.interval)
    log.info("stopped")
    return 0


async def _main(settings: Settings) -> int:
    from snapshotter.run import run_once

    settings = with_embedded_hub(settings)
    if not settings.continuous:
        report(await run_once(settings), as_json=settings.json_output)
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("running every %.0f s until SIGTERM", settings.interval)
    return await continuous(settings, lambda: run_once(settings), stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snapshotter`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args, "snapshotter")
        settings.hmac_key()  # an unreadable key file is a settings error, found before any work
        if settings.rebuild and settings.continuous:
            raise ConfigError("--rebuild builds one snapshot from the earliest event; it cannot be --continuous")
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    configure_logging(settings.log_level)
    try:
        return asyncio.run(_main(settings))
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("run failed", exc_info=True)
        print(f"{PROG}: {describe_failure(exc, secrets_of(settings))}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
