"""The dashboard in a real browser: Debian's headless Chromium driven by
Selenium, against the proxy and the simulated upstream on loopback.

Nothing here touches the network besides loopback: the driver's path is given,
so Selenium Manager never looks for one to download.  Without chromium and
chromium-driver the tests skip, unless BYOK_REQUIRE_BROWSER=1 (CI) makes that
an error."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

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
