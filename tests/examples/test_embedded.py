"""The Flask and FastAPI examples, each started for real against an emulator, answering real HTTP requests.

Both apps have the same routes, so every test runs against both. Each app
pumps a partition of its own, and the tests are its only writer.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devservices import free_port
from tests.examples.conftest import Hub
from tests.examples.served import Served, eventually, http_client, wait_until_ready

pytestmark = pytest.mark.emulator

SEQUENCE = "Statepump-Sequence"


def _argv(kind: str, port: int) -> list[str]:
    if kind == "flask":
        return ["-m", "flask", "--app", "examples.flask_app", "run", "--host", "127.0.0.1", "--port", str(port)]
    return ["-m", "uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)]


@dataclass
class App:
    kind: str
    partition: str
    served: Served
    http: httpx.Client

    def value(self, path: str) -> httpx.Response:
        """The response of a read that must succeed."""
        response = self.http.get(f"/config/{path}")
        assert response.status_code == 200, response.text
        return response


@contextlib.contextmanager
def running_app(kind: str, hub: Hub, partition: str, data_dir: Path) -> Iterator[App]:
    port = free_port()
    env = {
        "STATEPUMP_CONNECTION_STRING": hub.connection_string,
        "STATEPUMP_PARTITION": partition,
        "STATEPUMP_DATA_DIR": str(data_dir),
    }
    served = Served(kind, _argv(kind, port), env, data_dir / f"{kind}.log")
    served.start()
    try:
        with http_client(f"http://127.0.0.1:{port}") as http:
            wait_until_ready(served, http)
            yield App(kind, partition, served, http)
    finally:
        served.stop()


@pytest.fixture(scope="module", params=[("flask", "0"), ("fastapi", "1")], ids=lambda p: p[0])
def app(request: pytest.FixtureRequest, hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    kind, partition = request.param
    with running_app(kind, hub, partition, tmp_path_factory.mktemp(kind)) as running:
        yield running


def test_serves_a_value_with_the_sequence_number_of_its_version(app: App, hub: Hub) -> None:
    n = hub.send({"op": "set", "path": "greeting", "value": "hello"}, partition=app.partition)

    def served() -> httpx.Response:
        response = app.value("greeting")
        assert response.json() == "hello"
        return response

    response = eventually(served, what="the greeting served")
    assert response.headers[SEQUENCE] == str(n)
    assert response.headers["content-type"].startswith("application/json")
    whole = app.value("")
    assert whole.json()["greeting"] == "hello"
    assert whole.headers[SEQUENCE] == str(n)


def test_the_value_changes_after_an_event_is_sent(app: App, hub: Hub) -> None:
    first = hub.send({"op": "set", "path": "theme/colour", "value": "red"}, partition=app.partition)
    eventually(lambda: _assert_value(app, "theme/colour", "red"), what="red served")
    second = hub.send({"op": "set", "path": "theme/colour", "value": "blue"}, partition=app.partition)
    response = eventually(lambda: _assert_value(app, "theme/colour", "blue"), what="blue served")
    assert second > first
    assert response.headers[SEQUENCE] == str(second)
    assert app.value("theme").json() == {"colour": "blue"}


def _assert_value(app: App, path: str, expected: object) -> httpx.Response:
    response = app.value(path)
    assert response.json() == expected
    return response


def test_read_your_writes_waits_for_the_writers_event(app: App, hub: Hub) -> None:
    expected = hub.last_sequence(app.partition) + 1
    with ThreadPoolExecutor(1) as pool, http_client(str(app.http.base_url)) as other:
        # Asked for before the event exists: the app must hold the request until it is applied.
        waiting = pool.submit(other.get, "/config/orders/42", params={"min_sequence": expected, "timeout": 20})
        n = hub.send({"op": "set", "path": "orders/42", "value": "paid"}, partition=app.partition)
        response = waiting.result(timeout=30)
    assert n == expected
    assert response.status_code == 200, response.text
    assert response.json() == "paid"
    assert int(response.headers[SEQUENCE]) >= n

    # And straight after a write, no polling: the first read sees it.
    n = hub.send({"op": "set", "path": "orders/42", "value": "shipped"}, partition=app.partition)
    response = app.http.get("/config/orders/42", params={"min_sequence": n, "timeout": 10})
    assert response.status_code == 200, response.text
    assert response.json() == "shipped"
    assert int(response.headers[SEQUENCE]) >= n


def test_read_your_writes_answers_504_when_the_event_does_not_come(app: App, hub: Hub) -> None:
    never = hub.last_sequence(app.partition) + 1000
    started = time.monotonic()
    response = app.http.get("/config/orders", params={"min_sequence": never, "timeout": 0.3})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert str(never) in response.json()["error"]
    assert 0.3 <= elapsed < 10


def test_a_quote_reads_price_and_markup_from_one_version(app: App, hub: Hub) -> None:
    n = hub.send(
        {
            "ops": [
                {"op": "set", "path": "prices/tshirt", "value": 20},
                {"op": "set", "path": "markup/tshirt", "value": 0.5},
                {"op": "set", "path": "prices/hat", "value": "cheap"},
            ]
        },
        partition=app.partition,
    )
    assert app.http.get("/config/", params={"min_sequence": n, "timeout": 10}).status_code == 200
    response = app.http.get("/quote/tshirt")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "item": "tshirt",
        "price": 20,
        "markup": 0.5,
        "markup_setting": "markup/tshirt",
        "total": 30.0,
    }
    assert int(response.headers[SEQUENCE]) >= n

    missing = app.http.get("/quote/socks")
    assert missing.status_code == 404
    assert "prices/socks" in missing.json()["error"]
    unusable = app.http.get("/quote/hat")
    assert unusable.status_code == 500
    assert "prices/hat must be a non-negative number" in unusable.json()["error"]


def test_a_missing_path_is_a_404_naming_it_and_a_bad_query_a_4xx(app: App) -> None:
    response = app.http.get("/config/no/such/path")
    assert response.status_code == 404
    assert response.json()["path"] == "no/such/path"
    assert SEQUENCE in response.headers
    for params in ({"min_sequence": "abc"}, {"min_sequence": "1", "timeout": "600"}, {"min_sequence": "-1"}):
        bad = app.http.get("/config/greeting", params=params)
        assert 400 <= bad.status_code < 500, (params, bad.text)
        assert ("timeout" if "timeout" in params else "min_sequence") in bad.text


@pytest.mark.parametrize(("kind", "partition"), [("flask", "2"), ("fastapi", "3")])
def test_readyz_says_why_after_a_poison_event_and_the_last_good_version_is_still_served(
    kind: str, partition: str, hub: Hub, tmp_path: Path
) -> None:
    good = hub.send({"op": "set", "path": "limit", "value": 10}, partition=partition)
    with running_app(kind, hub, partition, tmp_path) as app:
        # Caught up at start: the event sent before the app started is there.
        assert app.value("limit").json() == 10
        poison = hub.send("not a JSON object: undecodable, so poison", partition=partition)

        def not_ready() -> dict[str, object]:
            response = app.http.get("/readyz")
            assert response.status_code == 503, response.text
            body: dict[str, object] = response.json()
            return body

        body = eventually(not_ready, what="/readyz answering 503")
        assert body["ready"] is False
        assert f"poison event {poison}" in str(body["reason"])
        response = app.value("limit")
        assert response.json() == 10
        assert response.headers[SEQUENCE] == str(good)


@pytest.mark.parametrize(
    ("kind", "partition"), [("flask", "4"), ("fastapi", "5")]
)
def test_ctrl_c_stops_the_app_and_its_pump_cleanly(kind: str, partition: str, hub: Hub, tmp_path: Path) -> None:
    with running_app(kind, hub, partition, tmp_path) as app:
        assert app.served.process is not None
        started = time.monotonic()
        app.served.process.send_signal(signal.SIGINT)
        code = app.served.process.wait(30)
        elapsed = time.monotonic() - started
        log = app.served.log()
    assert code == 0, log
    assert elapsed < 5, f"stopping took {elapsed:.1f} s:\n{log}"
    assert "Task was destroyed but it is pending" not in log, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_without_a_hub_the_app_does_not_start_and_says_what_to_set(kind: str, tmp_path: Path) -> None:
    served = Served(kind, _argv(kind, free_port()), {"STATEPUMP_DATA_DIR": str(tmp_path)}, tmp_path / "app.log")
    served.start()
    try:
        assert served.process is not None
        code = served.process.wait(60)
    finally:
        served.stop()
    assert code != 0
    assert "no Event Hubs configured: set STATEPUMP_CONNECTION_STRING" in served.log()
