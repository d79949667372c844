"""``statepump log``, ``watch``, ``diff``, ``query --at-sequence/--at-time`` and ``snapshot inspect --state``.

``log`` and ``watch`` ask a running sidecar (``/v1/history``, ``/v1/watch``);
with ``--follow`` (log) and always (watch) they go on until Ctrl-C, and when
the sidecar goes away they say so once on stderr and reconnect when it is
back, without printing a change twice. ``diff`` and ``query --at-*`` need no
sidecar: they rebuild past states offline (:mod:`statepump.timetravel`).
:mod:`statepump.cli` parses the flags and calls these functions.

>>> line({"sequence": 7, "enqueued_time": "2026-01-01T00:00:00+00:00", "author": "ann", "outcome": "applied",
...       "operations": [{"op": "set", "path": "a", "value": 1}], "paths": ["a"]})
'7  2026-01-01T00:00:00+00:00  ann  applied  set a = 1'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from statepump.client import Client, SidecarError, SidecarUnavailable, Timeout
from statepump.clientcommands import EXIT_ERROR, EXIT_NO_SIDECAR, EXIT_OK, EXIT_PATH_MISSING, format_value
from statepump.core import changes, statejson

#: How often ``log --follow`` asks for new entries, and how often both retry a sidecar that went away.
POLL_SECONDS: Final = 0.5
RETRY_SECONDS: Final = 0.5


def line(entry: dict[str, Any]) -> str:
    """One history entry as one line for a terminal."""
    operations = entry.get("operations")
    if operations is None:
        what = "(body is not JSON)"
    else:
        what = "; ".join(_operation(op) for op in operations)
    reason = f" ({entry['reason']})" if entry.get("reason") else ""
    author = entry.get("author") or "-"
    return f"{entry['sequence']}  {entry['enqueued_time']}  {author}  {entry['outcome']}{reason}  {what}"


def _operation(op: Any) -> str:
    if not isinstance(op, dict):
        return json.dumps(op)[:200]
    path = op.get("path")
    text = path if isinstance(path, str) else "/".join(map(str, path)) if isinstance(path, list) else "?"
    kind = op.get("op", "?")
    if "value" in op:
        return f"{kind} {text} = {json.dumps(op['value'], ensure_ascii=False)[:200]}"
    return f"{kind} {text}"


def log_command(
    socket_path: str | Path, path: str = "", *, limit: int = 20, follow: bool = False, as_json: bool = False
) -> int:
    """``statepump log``: the recent changes to ``path``, oldest of them first; ``follow``: then each new one."""
    if limit < 1:
        from statepump.core.errors import ConfigError

        raise ConfigError(f"--limit must be 1 or more, not {limit}")
    show: Callable[[dict[str, Any]], str] = (lambda e: json.dumps(e, ensure_ascii=False)) if as_json else line
    client = Client(socket_path)
    last: int | None = None
    away = False
    try:
        while True:
            try:
                page = _recent(client, path, limit if last is None else None, after=last)
            except SidecarUnavailable as exc:
                if not follow:
                    print(f"statepump log: {exc}", file=sys.stderr)
                    return EXIT_NO_SIDECAR
                if not away:
                    print(f"statepump log: {exc}; reconnecting", file=sys.stderr, flush=True)
                    away = True
                client.close()
                time.sleep(RETRY_SECONDS)
                continue
            except SidecarError as exc:
                print(f"statepump log: {exc}", file=sys.stderr)
                return EXIT_ERROR
            if away:
                print("statepump log: reconnected", file=sys.stderr, flush=True)
                away = False
            entries = page["entries"]
            for entry in reversed(entries):
                print(show(entry), flush=True)
            if entries:
                last = max(last if last is not None else -1, entries[0]["sequence"])
            elif last is None:
                last = page["newest"] if page["newest"] is not None else -1
            if not follow:
                return EXIT_OK
            time.sleep(POLL_SECONDS)
    finally:
        client.close()


def _recent(client: Client, path: str, limit: int | None, *, after: int | None) -> dict[str, Any]:
    """The newest ``limit`` entries for ``path`` (all after ``after`` when ``limit`` is None), a page at a time."""
    entries: list[dict[str, Any]] = []
    before = None
    while True:
        want = 1000 if limit is None else min(1000, limit - len(entries))
        page = client.history(path, limit=want, before=before, after=after)
        entries += page["entries"]
        if not page["more"] or (limit is not None and len(entries) >= limit):
            return {**page, "entries": entries}
        before = page["next_before"]


def watch_command(socket_path: str | Path, path: str = "") -> int:
    """``statepump watch``: one JSON line per change of the value at ``path``, until Ctrl-C."""
    client = Client(socket_path)
    last, last_value = -2, object()
    away = False
    while True:
        try:
            for sequence, value in client.watch(path, idle_timeout=60.0):
                if away:
                    print("statepump watch: reconnected", file=sys.stderr, flush=True)
                    away = False
                # A stream starts with the current value, which after a reconnect is usually the
                # one printed last; and a version may leave the value as it was. Neither is a change.
                if sequence <= last or (last > -2 and value == last_value):
                    last = max(last, sequence)
                    continue
                last, last_value = sequence, value
                print(json.dumps({"sequence": sequence, "path": path, "value": value}, ensure_ascii=False), flush=True)
        except (SidecarUnavailable, Timeout, ConnectionError) as exc:
            if not away:
                print(f"statepump watch: {exc}; reconnecting", file=sys.stderr, flush=True)
                away = True
            time.sleep(RETRY_SECONDS)
        except SidecarError as exc:
            print(f"statepump watch: {exc}", file=sys.stderr)
            return EXIT_ERROR


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its zone (``Z`` allowed).

    >>> parse_time("2026-01-01T12:00:00Z").isoformat()
    '2026-01-01T12:00:00+00:00'
    """
    from statepump.core.errors import ConfigError

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ConfigError(f"--at-time: {text[:60]!r} is not an ISO 8601 time (e.g. 2026-01-01T12:00:00Z)") from None
    if when.tzinfo is None:
        raise ConfigError("--at-time needs a time zone (e.g. 2026-01-01T12:00:00Z or +02:00)")
    return when


async def _resolve(settings: Any, at_sequence: int | None, at_time: str | None) -> int:
    from statepump import timetravel

    if at_sequence is not None:
        return at_sequence
    assert at_time is not None
    return await timetravel.sequence_at(settings, parse_time(at_time))


def query_at_command(
    settings: Any, path: str, *, at_sequence: int | None, at_time: str | None, compact: bool = False
) -> int:
    """``statepump query PATH --at-sequence N`` / ``--at-time ISO``: the value then, rebuilt offline."""
    from statepump import timetravel

    settings = timetravel.with_embedded_hub(settings)

    async def build() -> Any:
        sequence = await _resolve(settings, at_sequence, at_time)
        return await timetravel.state_at(settings, sequence)

    version = asyncio.run(build())
    value = statejson.walk(version.state, changes.split(path))
    if value is statejson.MISSING:
        print(f"statepump query: no value at path {path!r} at sequence {version.sequence}", file=sys.stderr)
        return EXIT_PATH_MISSING
    print(f"# sequence {version.sequence}", file=sys.stderr)
    print(format_value(json.loads(statejson.encode(value)), compact=compact))
    return EXIT_OK


def diff_command(settings: Any, start: int, end: int, path: str = "", *, as_json: bool = False) -> int:
    """``statepump diff --from N --to M [PATH]``: what changed between two sequence numbers, rebuilt offline."""
    from statepump import timetravel

    settings = timetravel.with_embedded_hub(settings)

    async def build() -> tuple[Any, Any]:
        old = await timetravel.state_at(settings, start)
        new = await timetravel.state_at(settings, end)
        return old.state, new.state

    old, new = asyncio.run(build())
    segments = changes.split(path)
    found = changes.diff(statejson.walk(old, segments), statejson.walk(new, segments), segments)
    if as_json:
        document = {"from": start, "to": end, "path": path, "changes": [c.as_json() for c in found]}
        print(statejson.encode(document).decode())
    else:
        for text in describe(found):
            print(text)
    return EXIT_OK


def describe(found: list[changes.Change]) -> Iterator[str]:
    """Changes for a terminal: ``+ path: new``, ``- path: old``, ``~ path: old -> new``.

    >>> list(describe([changes.Change("changed", ("a",), 1, 2), changes.Change("added", ("b",), None, [1])]))
    ['~ a: 1 -> 2', '+ b: [1]']
    """

    def text(value: Any) -> str:
        return statejson.encode(value).decode()

    for c in found:
        where = changes.render(c.path) or "/"
        if c.kind == "added":
            yield f"+ {where}: {text(c.new)}"
        elif c.kind == "removed":
            yield f"- {where}: {text(c.old)}"
        else:
            yield f"~ {where}: {text(c.old)} -> {text(c.new)}"


def inspect_state(state: Any, path: str, *, compact: bool = False) -> int:
    """``statepump snapshot inspect FILE --state [PATH]``: print a snapshot's state, or the value at PATH."""
    value = statejson.walk(state, changes.split(path))
    if value is statejson.MISSING:
        print(f"statepump snapshot inspect: no value at path {path!r}", file=sys.stderr)
        return EXIT_PATH_MISSING
    print(format_value(json.loads(statejson.encode(value)), compact=compact))
    return EXIT_OK
