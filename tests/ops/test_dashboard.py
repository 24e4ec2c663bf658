"""The dashboard in a real browser: Debian's headless Chromium driven by
Selenium, against the proxy and the simulated upstream on loopback.

Nothing here touches the network besides loopback: the driver's path is given,
so Selenium Manager never looks for one to download.  Without chromium and
chromium-driver the tests skip, unless BYOK_REQUIRE_BROWSER=1 (CI) makes that
an error."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from byok.telemetry.usage_book import UsageBook

from ..stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ADMIN_KEY = "byok-admin-dashboard-secret"
CLIENT_KEY = "byok-client-dashboard-secret"
KEYS = {
    "sk-sim-dash-alpha": "alpha",
    "sk-sim-dash-bravo": "bravo",
    "sk-sim-dash-charlie": "charlie",
}
ALPHA, BRAVO = "sk-sim-dash-alpha", "sk-sim-dash-bravo"
SECRETS = [ADMIN_KEY, CLIENT_KEY, *KEYS]
MESSAGES = [{"role": "user", "content": "hi"}]


def tables(upstream: str) -> dict:
    return {
        "server": {
            "client_keys": [CLIENT_KEY],
            "admin_keys": [ADMIN_KEY],
            "cooldown": 1,
            "max_cooldown": 4,
        },
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": label} for k, label in KEYS.items()],
            }
        },
        "models": {
            "gpt-dash": {"targets": ["sim/sim-gpt"], "strategy": "round_robin", "attempts": 4}
        },
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        message = (
            f"{' and '.join(missing)} not found: the dashboard test needs a browser; "
            "apt-get install chromium chromium-driver"
        )
        if os.environ.get("BYOK_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (BYOK_REQUIRE_BROWSER=1: not skipping)")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        # loopback only: no update checks, sync, or other calls home
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(10)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def stack() -> Iterator[Stack]:
    with Stack(tables) as running:
        for secret, name in KEYS.items():
            running.simulator.add_key(secret, name)
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as http:
        yield http


def wait(driver: WebDriver, timeout: float = 10) -> WebDriverWait:
    # an element found in one poll may be replaced before it is read (a form
    # post loads a new page, a key set change rebuilds a table): poll again
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )


def open_dashboard(driver: WebDriver, stack: Stack) -> None:
    """/dashboard with no session (the browser outlives each test's proxy)."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get(f"{stack.url}/dashboard")
    wait(driver).until(ec.visibility_of_element_located((By.ID, "admin-key")))


def sign_in(driver: WebDriver, stack: Stack) -> None:
    open_dashboard(driver, stack)
    driver.find_element(By.ID, "admin-key").send_keys(ADMIN_KEY)
    driver.find_element(By.ID, "sign-in").click()
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-key]")) == 3)


def row(driver: WebDriver, label: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-key="sim/{label}"]')


def cell(driver: WebDriver, label: str, name: str) -> str:
    return row(driver, label).find_element(By.CLASS_NAME, name).text


def shows_state(label: str, state: str):
    return lambda d: cell(d, label, "state") == state


def rates_shown(driver: WebDriver) -> bool:
    """/admin/stats answered: the request rate is a number."""
    return re.fullmatch(r"\d+\.\d+", driver.find_element(By.ID, "req-rate").text) is not None


def chat(client: httpx.Client) -> str:
    """One request through the proxy; the label of the key that served it."""
    reply = client.post("/v1/chat/completions", json={"model": "gpt-dash", "messages": MESSAGES})
    assert reply.status_code == 200, reply.text
    return reply.headers["x-byok-key"]


def test_sign_in(browser: WebDriver, stack: Stack) -> None:
    anonymous = httpx.get(f"{stack.url}/dashboard")
    assert anonymous.status_code == 401
    assert 'name="key"' in anonymous.text
    assert "{{error}}" not in anonymous.text

    open_dashboard(browser, stack)
    form = browser.find_element(By.CSS_SELECTOR, "form")
    assert form.get_attribute("action") == f"{stack.url}/admin/login"
    assert form.get_attribute("method") == "post"
    assert browser.find_element(By.ID, "admin-key").get_attribute("type") == "password"
    assert browser.find_element(By.ID, "login-error").text == ""
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-key]")

    browser.find_element(By.ID, "admin-key").send_keys("not-the-admin-key")
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(lambda d: d.find_element(By.ID, "login-error").text.strip())
    assert not browser.find_elements(By.CSS_SELECTOR, "tr[data-key]")

    browser.find_element(By.ID, "admin-key").send_keys(ADMIN_KEY)
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-key]")) == 3)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-key]")
    assert [r.get_attribute("data-key") for r in rows] == ["sim/alpha", "sim/bravo", "sim/charlie"]
    assert {r.get_attribute("data-target") for r in rows} == {"sim/sim-gpt"}
    assert [r.find_element(By.CLASS_NAME, "state").text for r in rows] == ["ready"] * 3
    assert browser.find_element(By.ID, "generation").text.strip().isdigit()
    # the session is a cookie the page's script cannot read, and it is not the key
    cookies = browser.get_cookies()
    assert cookies
    assert all(c["httpOnly"] and c["value"] != ADMIN_KEY for c in cookies)
    assert browser.execute_script("return document.cookie") == ""


def test_rate_limited_key_cools_down_and_comes_back(
    browser: WebDriver, stack: Stack, client: httpx.Client
) -> None:
    sign_in(browser, stack)
    stack.simulator.set(ALPHA, mode="429", retry_after=4)
    for _ in range(3):  # round robin: alpha's turn comes within three requests
        assert chat(client) != "alpha"
        if stack.simulator.requests_for(ALPHA):
            break
    assert stack.simulator.requests_for(ALPHA) == 1

    wait(browser).until(shows_state("alpha", "cooldown"))

    def counting(driver: WebDriver) -> str | bool:
        text = cell(driver, "alpha", "countdown")
        return text if re.fullmatch(r"\d+\.\ds", text) and 0 < float(text[:-1]) <= 4.0 else False

    countdown = wait(browser).until(counting)
    assert isinstance(countdown, str)
    assert "429" in cell(browser, "alpha", "reason")
    # it counts down, locally between polls
    wait(browser).until(
        lambda d: float(cell(d, "alpha", "countdown")[:-1] or 0) < float(countdown[:-1])
    )
    assert cell(browser, "bravo", "countdown") == ""
    assert cell(browser, "bravo", "reason") == ""

    # Healthy again: once the cooldown ends, a request is the half-open probe.
    stack.simulator.set(ALPHA, mode="ok")

    def back(driver: WebDriver) -> bool:
        state = cell(driver, "alpha", "state")
        if state == "ready":
            return True
        if state == "half_open" or cell(driver, "alpha", "countdown") == "0.0s":
            chat(client)
        return False

    wait(browser).until(back)
    assert cell(browser, "alpha", "countdown") == ""
    assert cell(browser, "alpha", "reason") == ""
    assert stack.simulator.requests_for(ALPHA) >= 2


def test_a_spent_quota_window_is_named_with_its_reset(
    browser: WebDriver, stack: Stack, client: httpx.Client
) -> None:
    sign_in(browser, stack)
    stack.simulator.set(ALPHA, mode="429", retry_after=7200, delay_header="codex-window")
    for _ in range(3):  # round robin: alpha's turn comes within three requests
        assert chat(client) != "alpha"
        if stack.simulator.requests_for(ALPHA):
            break
    wait(browser).until(shows_state("alpha", "cooldown"))
    reason = cell(browser, "alpha", "reason")
    assert reason.startswith("429 ")
    assert " · 7d window resets " in reason  # the weekly window, and when (local time)


def test_disable_and_enable_by_click(
    browser: WebDriver, stack: Stack, client: httpx.Client
) -> None:
    sign_in(browser, stack)
    button = '[data-key="sim/bravo"] button[data-action="{}"]'
    wait(browser).until(ec.element_to_be_clickable((By.CSS_SELECTOR, button.format("disable"))))
    browser.find_element(By.CSS_SELECTOR, button.format("disable")).click()
    wait(browser).until(shows_state("bravo", "disabled"))

    served = [chat(client) for _ in range(9)]
    assert "bravo" not in served
    assert set(served) == {"alpha", "charlie"}
    assert stack.simulator.requests_for(BRAVO) == 0

    wait(browser).until(ec.element_to_be_clickable((By.CSS_SELECTOR, button.format("enable"))))
    browser.find_element(By.CSS_SELECTOR, button.format("enable")).click()
    wait(browser).until(shows_state("bravo", "ready"))
    assert "bravo" in [chat(client) for _ in range(3)]
    assert stack.simulator.requests_for(BRAVO) >= 1


def loaded(driver: WebDriver) -> list[str]:
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")


def test_no_secret_in_the_page_or_what_it_loads(
    browser: WebDriver, stack: Stack, client: httpx.Client
) -> None:
    stack.simulator.set(ALPHA, mode="401")  # a revoked key: its reason is on the page
    chat(client)
    sign_in(browser, stack)
    wait(browser).until(shows_state("alpha", "blocked"))
    wait(browser).until(rates_shown)
    urls = set(loaded(browser))
    assert {f"{stack.url}/dashboard/app.js", f"{stack.url}/dashboard/app.css"} <= urls
    assert any("/admin/keys" in url for url in urls)
    texts = {"page source": browser.page_source}
    # everything the page loaded, fetched again with its session
    session = {c["name"]: c["value"] for c in browser.get_cookies()}
    with httpx.Client(cookies=session, headers={"x-byok-csrf": "1"}) as http:
        for url in sorted(urls):
            answer = http.get(url)
            assert answer.status_code == 200, url
            texts[url] = answer.text
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret in {where}"


def test_everything_comes_from_the_proxy(browser: WebDriver, stack: Stack) -> None:
    sign_in(browser, stack)
    wait(browser).until(rates_shown)
    urls = loaded(browser)
    assert urls
    outside = [url for url in urls if not url.startswith(f"{stack.url}/")]
    assert outside == []


def with_usage(ledger: Path, prices: bool) -> Callable[[str], dict]:
    """The dashboard's config, with a usage ledger of the test's own."""

    def build(upstream: str) -> dict:
        config = tables(upstream)
        config["usage"] = {"path": str(ledger)}
        if prices:  # USD per million tokens: 5 in and 5 out cost 0.0015
            config["prices"] = {"sim-gpt": {"input": 100.0, "output": 200.0}}
        return config

    return build


def usage_rows(driver: WebDriver) -> list[list[str]]:
    return [
        [cell.text for cell in tr.find_elements(By.TAG_NAME, "td")]
        for tr in driver.find_elements(By.CSS_SELECTOR, "#usage-table tbody tr")
    ]


def usage_totals(driver: WebDriver) -> list[str]:
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#usage-totals td")]


def choose(driver: WebDriver, select: str, value: str) -> None:
    Select(driver.find_element(By.ID, select)).select_by_value(value)


def test_the_usage_panel_shows_the_periods_rows_and_totals(
    browser: WebDriver, tmp_path: Path
) -> None:
    ledger = tmp_path / "u.db"
    # what an earlier run left: 2 days ago (in the last 7 days, not today)
    # and 40 days ago (before this month and the last 7 days)
    now = time.time()
    earlier = UsageBook(ledger)
    for days, requests in ((2, 10), (40, 100)):
        earlier.add(
            client="archive",
            provider="sim",
            key="alpha",
            model="gpt-dash",
            requests=requests,
            at=now - days * 86400,
        )
    earlier.close()
    two_days_ago = now - 2 * 86400
    this_month = datetime.fromtimestamp(now, timezone.utc).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    archived = two_days_ago - two_days_ago % 3600 >= this_month.timestamp()

    with Stack(with_usage(ledger, prices=False)) as stack:
        for secret, name in KEYS.items():
            stack.simulator.add_key(secret, name)
        stack.simulator.set(ALPHA, chunks=1200)  # 1,200 output tokens per answer
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as client:
            served = sorted(chat(client) for _ in range(3))
        assert served == ["alpha", "bravo", "charlie"]  # round robin

        sign_in(browser, stack)
        # this month, by client, model and key; no [prices]: no cost to show
        expected = [
            ["client-1", "gpt-dash", "sim", label, "1", "5", "5", "0", "-"] for label in served
        ]
        expected[0][6] = browser.execute_script("return (1200).toLocaleString()")
        assert expected[0][6] in ("1,200", "1.200", "1 200", "1\u202f200", "1\xa0200")
        if archived:
            expected.insert(0, ["archive", "gpt-dash", "sim", "alpha", "10", "0", "0", "0", "-"])
        wait(browser).until(lambda d: usage_rows(d) == expected)
        header = browser.find_elements(By.CSS_SELECTOR, "#usage-table thead th")
        assert [th.text for th in header] == [
            "Client",
            "Model",
            "Provider",
            "Key",
            "Requests",
            "Input tokens",
            "Output tokens",
            "Errors",
            "Cost (USD)",
        ]
        output = browser.execute_script("return (1210).toLocaleString()")
        requests = str(3 + 10 * archived)
        assert usage_totals(browser) == ["Total", "", "", "", requests, "15", output, "0", "-"]
        numbers = browser.find_elements(By.CSS_SELECTOR, "#usage-table td.num")
        assert len(numbers) == 5 * (len(expected) + 1)
        assert {td.value_of_css_property("text-align") for td in numbers} == {"right"}

        # another grouping, other periods: at once, without waiting for a poll
        mine = ["client-1", "3", "15", output, "0", "-"]
        choose(browser, "usage-by", "client")
        wait(browser).until(lambda d: usage_rows(d)[-1:] == [mine])
        assert len(usage_rows(browser)) == 1 + archived
        choose(browser, "usage-period", "today")
        wait(browser).until(lambda d: usage_rows(d) == [mine])
        assert usage_totals(browser) == ["Total", *mine[1:]]
        choose(browser, "usage-period", "7d")
        wait(browser).until(lambda d: len(usage_rows(d)) == 2)
        assert usage_rows(browser) == [["archive", "10", "0", "0", "0", "-"], mine]
        assert usage_totals(browser) == ["Total", "13", "15", output, "0", "-"]

        # priced from now on (a reload); the page's next poll shows the new rows' cost
        stack.build = with_usage(ledger, prices=True)
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        assert httpx.post(f"{stack.url}/admin/reload", headers=admin).status_code == 200
        stack.simulator.set(ALPHA, chunks=5)
        with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as client:
            for _ in range(3):
                chat(client)
        output = browser.execute_script("return (1225).toLocaleString()")
        mine = ["client-1", "6", "30", output, "0", "0.0045"]
        wait(browser, 15).until(lambda d: usage_rows(d)[-1:] == [mine])
        # priced, and nothing spent: a cost of 0, no longer unknown
        assert usage_rows(browser) == [["archive", "10", "0", "0", "0", "0.0000"], mine]
        assert usage_totals(browser) == ["Total", "16", "30", output, "0", "0.0045"]
