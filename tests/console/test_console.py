"""The web console (/ui) in a real headless Chromium, driven by selenium: status, chart, tree, history, problems.

One pump over a MemorySource holding a 100,000-key state, served on loopback TCP by
a thread of its own (selenium's calls block). Each view's screenshot goes to docs/.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from statepump.core.httpapi import Request
from statepump.pump import Pump
from statepump.serving.explore import Explorer
from statepump.serving.sidecar import Server
from statepump.sources.memory import MemorySource
from tests.server.conftest import body_of, raw_exchange, status_of

#: The README's screenshots are refreshed with STATEPUMP_UPDATE_SCREENSHOTS=1; otherwise they go to a temporary
#: directory, so that a test run leaves the work tree as it found it.
DOCS = Path(__file__).resolve().parents[2] / "docs"
KEYS = 100_000
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


class Served:
    """A pump and its server (loopback TCP and a Unix socket) on a thread of their own."""

    def __init__(self, socket_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.source = MemorySource(max_wait=0.05)
        self.socket_path = socket_path

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    async def _start(self) -> None:
        big = {
            f"customer-{i:06}": {"plan": "pro" if i % 3 else "free", "limits": {"rps": i % 100}} for i in range(KEYS)
        }
        self.source.append({"op": "merge", "path": "", "value": big})
        self.source.append(
            {"op": "set", "path": "markup/tshirt", "value": 0.03}, properties={"statepump-author": "ann"}
        )
        self.pump: Pump[Any] = Pump(self.source)
        await self.pump.start()
        await self.pump.wait_ready(timeout=30)
        self.server = Server(self.pump, socket_path=self.socket_path, listen=("127.0.0.1", 0))
        self.server.explorer.stream_interval = 0.25  # a quick chart for the test; 1 s by default
        await self.server.start()
        assert self.server.tcp_address is not None
        self.url = f"http://127.0.0.1:{self.server.tcp_address[1]}"

    def send(self, body: Any, author: str = "ci") -> int:
        return self.source.append(body, properties={"statepump-author": author}).sequence

    def stop(self) -> None:
        async def stop() -> None:
            await self.server.stop(grace=1)
            await self.pump.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    folder = Path(tempfile.mkdtemp(prefix="sp-ui-", dir="/tmp"))
    s = Served(folder / "s.sock")
    s.start()
    yield s
    s.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    profile = Path(tempfile.mkdtemp(prefix="sp-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: webdriver.Chrome, condition: Any, timeout: float = 20) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def text_of(driver: webdriver.Chrome, selector: str) -> str:
    """The text of the first element matching ``selector`` now ("" if none): lists are re-rendered as events arrive."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, selector)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def click(driver: webdriver.Chrome, selector: str) -> None:
    """Click the first element matching ``selector``, finding it again if a re-render replaced it."""

    def clicked(d: webdriver.Chrome) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, selector).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    wait(driver, clicked)


def view(driver: webdriver.Chrome, name: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"nav button[data-view={name}]").click()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("STATEPUMP_UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_the_console_shows_status_chart_tree_history_and_problems(
    served: Served, browser: webdriver.Chrome, shots: Path
) -> None:
    driver = browser
    driver.get(served.url + "/ui")
    # Status at a glance.
    wait(driver, lambda d: d.find_element(By.ID, "readiness").text == "ready")
    wait(driver, lambda d: text_of(d, "#card-sequence .value") == "1")  # the cards are re-rendered each second
    weight = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".filter(e => !e.name.includes('/ui/stream')).reduce((n, e) => n + e.transferSize, 0)"
    )
    print(f"console page weight on first load: {weight} bytes")
    assert 0 < weight < 100_000

    # The chart moves when events are sent.
    def points(d: webdriver.Chrome) -> int:
        return int(d.find_element(By.ID, "chart").get_attribute("data-points") or 0)

    wait(driver, lambda d: points(d) >= 3)
    sent = 0
    for burst in (40, 120, 40):  # a few bursts, each seen by the chart before the next
        for _ in range(burst):
            served.send({"op": "set", "path": f"load/k{sent % 10}", "value": sent})
            sent += 1
        wait(driver, lambda d: float(d.find_element(By.ID, "chart").get_attribute("data-last-rate") or 0) > 0)
        seen = points(driver)
        wait(driver, lambda d, seen=seen: points(d) >= seen + 2)
    wait(driver, lambda d: text_of(d, "#card-sequence .value") == "201")
    driver.save_screenshot(str(shots / "console-status.png"))

    # The tree of a 100,000-key state loads children on demand, quickly.
    view(driver, "state")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#tree > li")) > 100)
    assert "100002 top-level keys" in driver.find_element(By.ID, "search-note").text
    node = driver.find_element(By.CSS_SELECTOR, "#tree > li.branch > .node")
    started = time.perf_counter()
    node.click()
    branch = node.find_element(By.XPATH, "..")
    wait(driver, lambda d: branch.get_attribute("data-loaded") == "true")
    seen_ms = (time.perf_counter() - started) * 1000
    load_ms = float(branch.find_element(By.CSS_SELECTOR, "ul").get_attribute("data-load-ms") or "inf")
    print(f"expanding a node of the 100,000-key state: {load_ms:.1f} ms in the page, {seen_ms:.1f} ms seen by the test")
    assert load_ms < 200
    driver.find_element(By.ID, "search-path").send_keys("customer-04999")
    driver.find_element(By.CSS_SELECTOR, "#search button").click()
    wait(driver, lambda d: "10 matches" in d.find_element(By.ID, "search-note").text)
    first = driver.find_element(By.CSS_SELECTOR, "#tree > li.branch > .node")
    first.click()
    wait(driver, lambda d: first.find_element(By.XPATH, "..").get_attribute("data-loaded") == "true")
    driver.save_screenshot(str(shots / "console-state.png"))

    # The history shows a change sent during the test, with its diff.
    view(driver, "history")
    sequence = served.send({"op": "set", "path": "markup/tshirt", "value": 0.05}, author="bob")
    row = f"#history tr.entry[data-sequence='{sequence}']"
    wait(driver, lambda d: "bob" in text_of(d, row))
    assert "set markup/tshirt = 0.05" in text_of(driver, row)
    click(driver, row)
    change = f"#history tr.diff-row[data-sequence='{sequence}'] li"
    wait(driver, lambda d: text_of(d, change) == "~ markup/tshirt: 0.03 → 0.05")
    driver.save_screenshot(str(shots / "console-history.png"))

    # Recent rejected events.
    rejected = served.send({"op": "explode", "path": "markup"})
    view(driver, "problems")
    problem = f"#problems tr.entry[data-sequence='{rejected}']"
    wait(driver, lambda d: "unknown op 'explode'" in text_of(d, problem))
    assert "rejected" in text_of(driver, problem)
    driver.save_screenshot(str(shots / "console-problems.png"))


async def test_the_console_is_served_on_the_unix_socket_and_refused_beyond_loopback(served: Served) -> None:
    response = await raw_exchange(served.socket_path, b"GET /ui HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 200
    assert b"<title>statepump console</title>" in body_of(response)
    explorer = Explorer(served.pump)
    encoded, status, _ = explorer.answer(Request("GET", b"/ui"), ("10.1.2.3", 50000))  # type: ignore[misc]
    assert status == 403
    assert json.loads(encoded.partition(b"\r\n\r\n")[2])["error"].endswith("loopback clients only")
    missing = explorer.answer(Request("GET", b"/ui/../../etc/passwd"), ("127.0.0.1", 1))
    assert isinstance(missing, tuple) and missing[1] == 404
