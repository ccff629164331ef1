"""The web page end to end: Debian's headless Chromium, driven by selenium, against a real uvicorn server on a
loopback port (the HTTP app over a Service with the scripted model and a small SQLite database).

ask -> live stages, table and chart -> thumbs up -> the pair is in the store and in the model's next prompt;
follow-ups and "New conversation"; history reopened; abstention with its reason; edited SQL (a refused DELETE,
a truncated result with paging and its CSV); markup in questions and data shown as text; the copy button;
Stop (the model stops); the token prompt; nothing requested beyond the server, under its CSP; a narrow window. Set SQLWRIGHT_SCREENSHOT=path to save a screenshot of the answer with its chart (bench/screenshot_page.py
makes the README's).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra)")

from http_support import TOKEN, LiveServer, SlowLLM, checksum_sqlite, fenced, make_app, make_service  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from sqlwright.llm.mock import ScriptedLLM  # noqa: E402

CHROMIUM = os.environ.get("SQLWRIGHT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("SQLWRIGHT_TEST_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip(f"headless Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install -y chromium "
                "chromium-driver (.ci/run does)", allow_module_level=True)

WAIT = 15  # seconds a step may take on a loaded 2-core machine
REGIONS = [("East", "2024-01", 120), ("East", "2024-02", 80), ("East", "2024-03", 95),
           ("North", "2024-01", 200), ("North", "2024-02", 150), ("North", "2024-03", 175),
           ("South", "2024-01", 60), ("South", "2024-02", 90), ("South", "2024-03", 70),
           ("West", "2024-01", 130), ("West", "2024-02", 110), ("West", "2024-03", 140)]
NUMS = 1200  # rows in `nums`: more than the row cap (1000 by default), so a SELECT of them is truncated
Q_TOTALS = "Total sales per region"
SQL_TOTALS = "SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY region"


def make_shop(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE sales (id INTEGER PRIMARY KEY, region TEXT NOT NULL, month TEXT NOT NULL, "
                      "amount INTEGER NOT NULL);"
                      "CREATE TABLE nums (n INTEGER PRIMARY KEY);")
    con.executemany("INSERT INTO sales (region, month, amount) VALUES (?, ?, ?)", REGIONS)
    con.executemany("INSERT INTO nums VALUES (?)", [(i,) for i in range(1, NUMS + 1)])
    con.commit()
    con.close()
    return path


def totals(month: str | None = None) -> list[tuple[str, int]]:
    sums: dict[str, int] = {}
    for region, m, amount in REGIONS:
        if month is None or m == month:
            sums[region] = sums.get(region, 0) + amount
    return sorted(sums.items())


# --- server and browser ------------------------------------------------------------------------
class Site:
    """A served page: its URL, the scripted model, the service (its store) and the database file."""

    def __init__(self, url: str, llm: ScriptedLLM, service, db_path: Path) -> None:
        self.url = url
        self.llm = llm
        self.service = service
        self.db_path = db_path

    def examples(self) -> list:
        name, db = self.service.database("shop")
        key, fingerprint = self.service.identity(name, db)
        return self.service.store.examples(key, schema_fingerprint=fingerprint)


def serve(tmp: Path, token: str | None = None, llm: ScriptedLLM | None = None) -> Iterator[Site]:
    patch = pytest.MonkeyPatch()
    # Stored examples ranked by BM25: the test never loads the MiniLM embedding model (seconds of torch).
    patch.setattr("sqlwright.pipeline.ask.load_default_embedder", lambda cache_dir=None: None)
    db_path = make_shop(tmp / "shop.sqlite")
    llm = llm if llm is not None else ScriptedLLM()
    service = make_service(tmp, llm, databases=[f"shop={db_path}"])
    try:
        with LiveServer(make_app(service, token=token)) as live:
            yield Site(live.url, llm, service, db_path)
    finally:
        service.close()
        patch.undo()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from serve(tmp_path_factory.mktemp("web"))


@pytest.fixture(autouse=True)
def _no_leftover_replies(site: Site) -> None:
    """Each test queues the replies it needs: a failed test's unused ones must not answer the next test."""
    site.llm._replies.clear()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path):
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
                "--lang=en-US"):
        options.add_argument(arg)
    # every request the browser makes (performance log) and the console (CSP violations show there)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def wait_for(driver, condition: Callable, what: str, timeout: float = WAIT):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        error = driver.find_element(By.ID, "error")
        raise AssertionError(f"timed out waiting for {what}; the page's error box: {error.text!r}") from None


def open_page(driver, url: str) -> None:
    driver.get(url + "/")
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
             "the page to load its databases")


def by_id(driver, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def ask(driver, question: str) -> None:
    """Type a question and press Enter; wait for the answer (the Ask button enabled again and the question
    shown as the answer's title)."""
    box = by_id(driver, "question")
    box.clear()
    box.send_keys(question, Keys.ENTER)
    wait_for(driver, lambda d: by_id(d, "ask-button").is_enabled() and by_id(d, "answer").is_displayed()
             and by_id(d, "answer-question").text == question, f"the answer to {question!r}")


def grid(driver) -> list[list[str]]:
    rows = by_id(driver, "result-table").find_elements(By.CSS_SELECTOR, "tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def stages(driver) -> list[str]:
    return [li.text for li in by_id(driver, "stage-list").find_elements(By.TAG_NAME, "li")]


# --- the tests ---------------------------------------------------------------------------------
def test_ask_chart_thumbs_up_teaches_the_next_question(site: Site, browser) -> None:
    site.llm.queue(fenced(SQL_TOTALS))
    open_page(browser, site.url)
    assert by_id(browser, "db-select").get_attribute("value") == "shop"
    assert "sales" in by_id(browser, "schema-tree").text and "nums" in by_id(browser, "schema-tree").text
    by_id(browser, "schema-filter").send_keys("amount")  # the schema browser's filter finds the column
    assert by_id(browser, "schema-tree").text.split() == ["sales", "4", "columns", "·", "12", "rows", "amount",
                                                          "INTEGER"]
    by_id(browser, "schema-filter").clear()

    ask(browser, Q_TOTALS)
    assert grid(browser) == [[region, str(total)] for region, total in totals()]
    assert [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#result-table thead th")] == ["region", "total"]
    assert by_id(browser, "sql-code").text == SQL_TOTALS
    live = stages(browser)
    assert any("Read the schema: 2 tables" in s for s in live), live
    assert any("Candidate greedy ran: 4 rows" in s for s in live), live
    assert any(s.endswith("Answered") for s in live), live
    # the chart: one bar per region, with axes named after the columns
    chart = by_id(browser, "chart-canvas").find_element(By.TAG_NAME, "svg")
    assert chart.get_attribute("data-kind") == "bar"
    assert len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")) == 4
    labels = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.axis-label")]
    assert labels == ["total", "region"]
    assert {t.text for t in chart.find_elements(By.CSS_SELECTOR, ".x-axis text.tick-label")} == {"East", "North",
                                                                                            "South", "West"}
    if os.environ.get("SQLWRIGHT_SCREENSHOT"):
        browser.save_screenshot(os.environ["SQLWRIGHT_SCREENSHOT"])
    # confidence and candidates, on demand
    details = by_id(browser, "details")
    assert details.get_attribute("open") is None
    details.find_element(By.TAG_NAME, "summary").click()
    body = by_id(browser, "details-body")
    assert body.is_displayed() and "greedy" in body.text and "Confidence: 100%" in body.text
    assert "Stored examples shown to the model" not in body.text  # nothing taught yet
    assert site.llm.requests[-1]["messages"][1]["content"].count(Q_TOTALS) == 1  # the question only

    # thumbs up: the pair is stored as an example
    by_id(browser, "thumbs-up").click()
    wait_for(browser, lambda d: "stored as an example" in by_id(d, "feedback-status").text, "the feedback reply")
    assert by_id(browser, "thumbs-up").get_attribute("aria-pressed") == "true"
    stored = [(e.question, e.sql, e.source) for e in site.examples()]
    assert stored == [(Q_TOTALS, SQL_TOTALS, "feedback")]
    first_id = site.service.store.history(limit=1)[0].id
    assert [f.rating for f in site.service.store.feedback(first_id)] == ["up"]

    # a follow-up: the conversation goes to the model (the earlier question and its SQL as turns)
    assert by_id(browser, "conversation").is_displayed() and Q_TOTALS in by_id(browser, "conversation-turns").text
    follow_sql = SQL_TOTALS.replace("GROUP BY", "WHERE month = '2024-03' GROUP BY")
    site.llm.queue(fenced(follow_sql))
    ask(browser, "and only in March?")
    assert grid(browser) == [[region, str(total)] for region, total in totals("2024-03")]
    messages = site.llm.requests[-1]["messages"]
    assert any(m["role"] == "assistant" and SQL_TOTALS in m["content"] for m in messages), messages
    assert "and only in March?" in by_id(browser, "conversation-turns").text

    # a new conversation: no turns, but the stored example is shown to the model
    by_id(browser, "new-conversation").click()
    assert not by_id(browser, "conversation").is_displayed()
    site.llm.queue(fenced(SQL_TOTALS))
    ask(browser, "What were the total sales per region?")
    messages = site.llm.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert Q_TOTALS in messages[1]["content"] and SQL_TOTALS in messages[1]["content"]
    assert any("Stored examples shown to the model: 1" in s for s in stages(browser)), stages(browser)
    details = by_id(browser, "details")
    if details.get_attribute("open") is None:
        details.find_element(By.TAG_NAME, "summary").click()
    assert "Stored examples shown to the model" in by_id(browser, "details-body").text
    assert Q_TOTALS in by_id(browser, "details-body").text

    # history: newest first; clicking the first question reopens it
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history-list button")) == 3, "the history")
    entries = browser.find_elements(By.CSS_SELECTOR, "#history-list button")
    assert Q_TOTALS in entries[-1].text and "What were the total" in entries[0].text
    entries[-1].click()
    wait_for(browser, lambda d: by_id(d, "answer-question").text == Q_TOTALS, "the reopened entry")
    assert grid(browser) == [[region, str(total)] for region, total in totals()]
    assert browser.find_element(By.CSS_SELECTOR, "#chart-canvas svg").get_attribute("data-kind") == "bar"
    assert site.llm.remaining == 0


def test_abstention_is_shown_with_its_reason(site: Site, browser) -> None:
    site.llm.queue("UNANSWERABLE: the database holds no customer data")
    open_page(browser, site.url)
    ask(browser, "Which customers churned last year?")
    abstention = by_id(browser, "abstention")
    assert abstention.is_displayed() and "No answer." in abstention.text
    assert "the database holds no customer data" in by_id(browser, "abstention-reason").text
    assert not by_id(browser, "result").is_displayed()
    assert not by_id(browser, "chart").is_displayed()
    assert not by_id(browser, "sql-section").is_displayed()
    # no thumbs up for an abstention, but a thumbs down can teach the right SQL
    assert not by_id(browser, "thumbs-up").is_displayed() and by_id(browser, "thumbs-down").is_displayed()
    assert any(s.endswith("Abstained") for s in stages(browser))


def test_line_and_point_charts(site: Site, browser) -> None:
    site.llm.queue(fenced("SELECT month, SUM(amount) AS total FROM sales GROUP BY month ORDER BY month"),
                   fenced("SELECT amount, amount * 2 AS doubled FROM sales"))
    open_page(browser, site.url)
    ask(browser, "Sales per month")
    chart = browser.find_element(By.CSS_SELECTOR, "#chart-canvas svg")
    assert chart.get_attribute("data-kind") == "line"
    assert len(chart.find_elements(By.CSS_SELECTOR, "path.series-line")) == 1
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point")) == 3
    assert [t.text for t in chart.find_elements(By.CSS_SELECTOR, ".x-axis text.tick-label")] == [
        "2024-01", "2024-02", "2024-03"]
    ask(browser, "Amounts against their double")
    chart = browser.find_element(By.CSS_SELECTOR, "#chart-canvas svg")
    assert chart.get_attribute("data-kind") == "point"
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point")) == len(REGIONS)
    # the chart's title names it for screen readers
    assert chart.get_attribute("role") == "img" and chart.find_element(By.TAG_NAME, "title").get_attribute(
        "textContent")


def test_markup_in_questions_and_data_stays_text(site: Site, browser) -> None:
    hostile = '<img src=x class="injected"><script>window.injected = 1</script>'
    site.llm.queue(fenced(f"SELECT '{hostile}' AS \"<b>label</b>\", 1 AS n"))
    open_page(browser, site.url)
    ask(browser, "<b>What</b> is <i>this</i>?")
    assert grid(browser) == [[hostile, "1"]]
    assert browser.find_element(By.CSS_SELECTOR, "#result-table thead th").text == "<b>label</b>"
    assert browser.find_elements(By.CSS_SELECTOR, ".injected, #answer b, #answer i, #result-table script") == []
    assert browser.execute_script("return window.injected === undefined")
    wait_for(browser, lambda d: "<b>What</b>" in by_id(d, "history-list").text, "the question in the history")


def test_edited_sql_refusal_paging_truncation_and_csv(site: Site, browser, downloads: Path) -> None:
    site.llm.queue(fenced("SELECT COUNT(*) AS n FROM nums"))
    open_page(browser, site.url)
    ask(browser, "How many numbers are there?")
    assert grid(browser) == [[str(NUMS)]]
    before = checksum_sqlite(site.db_path)

    by_id(browser, "edit-sql").click()
    editor = by_id(browser, "sql-editor")
    assert editor.get_attribute("value") == "SELECT COUNT(*) AS n FROM nums"
    editor.clear()
    editor.send_keys("DELETE FROM sales")
    by_id(browser, "run-sql").click()
    wait_for(browser, lambda d: by_id(d, "sql-error").is_displayed(), "the refusal")
    refusal = by_id(browser, "sql-error").text
    assert refusal.startswith("Refused:") and len(refusal) > len("Refused: ") + 10, refusal
    assert checksum_sqlite(site.db_path) == before
    assert grid(browser) == [[str(NUMS)]]  # the answer shown is unchanged

    editor.clear()
    editor.send_keys("SELECT n FROM nums ORDER BY n")
    by_id(browser, "run-sql").click()
    wait_for(browser, lambda d: by_id(d, "truncated-notice").is_displayed(), "the truncated result")
    assert not by_id(browser, "sql-error").is_displayed()
    assert by_id(browser, "sql-code").text == "SELECT n FROM nums ORDER BY n"
    cap = site.service.settings.max_rows  # the row cap (SQLWRIGHT_MAX_ROWS, 1000 by default)
    assert cap < NUMS, f"the test needs a row cap below {NUMS} (SQLWRIGHT_MAX_ROWS is {cap})"
    pages = -(-cap // 25)
    assert f"the first {cap} rows" in by_id(browser, "truncated-notice").text
    assert [r[0] for r in grid(browser)] == [str(i) for i in range(1, 26)]
    assert by_id(browser, "page-info").text.startswith(f"Page 1 of {pages}")
    assert not by_id(browser, "page-prev").is_enabled()
    by_id(browser, "page-next").click()
    assert [r[0] for r in grid(browser)] == [str(i) for i in range(26, 51)]
    assert by_id(browser, "page-info").text.startswith(f"Page 2 of {pages}")
    # the SQL person's run is offered as the right SQL for the question
    by_id(browser, "thumbs-down").click()
    assert by_id(browser, "corrected-sql").get_attribute("value") == "SELECT n FROM nums ORDER BY n"

    by_id(browser, "download-csv").click()
    deadline = time.monotonic() + WAIT
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = [p for p in downloads.glob("sqlwright-*.csv")]
        if files and not list(downloads.glob("*.crdownload")):
            break
        time.sleep(0.1)
    assert len(files) == 1, list(downloads.iterdir())
    rows = list(csv.reader(io.StringIO(files[0].read_text())))
    assert rows[0] == ["n"] and len(rows) == min(cap, site.service.history_rows) + 1 and rows[1] == ["1"]
    assert site.llm.remaining == 0


def test_copy_button_puts_the_sql_on_the_clipboard(site: Site, browser) -> None:
    site.llm.queue(fenced(SQL_TOTALS))
    open_page(browser, site.url)
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": site.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    ask(browser, Q_TOTALS)
    by_id(browser, "copy-sql").click()
    wait_for(browser, lambda d: by_id(d, "copy-status").text == "copied", "the copy")
    copied = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, e => done(String(e)));")
    assert copied == SQL_TOTALS


def test_page_requests_nothing_beyond_the_server_and_obeys_its_csp(site: Site, browser) -> None:
    browser.get_log("performance")  # drop what earlier tests logged
    browser.get_log("browser")
    site.llm.queue(fenced(SQL_TOTALS))
    open_page(browser, site.url)
    ask(browser, Q_TOTALS)
    requested = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    resources = browser.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => e.name)")
    assert any(u.endswith("/static/app.js") for u in resources) and any(u.endswith("/static/app.css") for u in resources)
    assert any(u.endswith("/api/v1/ask/stream") for u in requested), requested
    outside = [u for u in requested + resources if not u.startswith(site.url + "/")]
    assert outside == []
    console = [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []
    # no inline style or script anywhere (the page would run under style-src 'self' too)
    assert browser.execute_script("return document.querySelectorAll('[style], script:not([src])').length") == 0
    # the server sends a CSP that forbids anything but its own origin
    header = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/').then(r => done(r.headers.get('Content-Security-Policy')), e => done(String(e)));")
    assert "default-src 'self'" in header and "script-src 'self'" in header


def test_narrow_window_has_one_column_and_no_sideways_scroll(site: Site, browser) -> None:
    site.llm.queue(fenced(SQL_TOTALS))
    browser.set_window_size(400, 900)
    try:
        open_page(browser, site.url)
        ask(browser, Q_TOTALS)
        assert by_id(browser, "chart").is_displayed()
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1
        main = browser.find_element(By.ID, "main").rect
        sidebar = browser.find_element(By.CSS_SELECTOR, "aside.sidebar").rect
        assert sidebar["y"] >= main["y"] + main["height"] - 1  # the schema and history below the answer
        chart = browser.find_element(By.CSS_SELECTOR, "#chart-canvas svg").rect
        assert chart["width"] <= 400
    finally:
        browser.set_window_size(1280, 1000)


def test_token_prompt_on_a_protected_server(tmp_path: Path, browser) -> None:
    server = serve(tmp_path, token=TOKEN)
    protected = next(server)
    try:
        browser.get(protected.url + "/")
        dialog_open = "return document.getElementById('token-dialog').open"
        wait_for(browser, lambda d: d.execute_script(dialog_open), "the token prompt")
        assert "needs an access token" in by_id(browser, "token-message").text
        field = by_id(browser, "token-input")
        field.send_keys("not-the-right-token-at-all", Keys.ENTER)
        wait_for(browser, lambda d: "refused" in by_id(d, "token-message").text
                 and d.execute_script(dialog_open), "the token refused")
        by_id(browser, "token-input").send_keys(TOKEN, Keys.ENTER)
        wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
                 "the page to load with the token")
        assert not browser.execute_script(dialog_open)
        assert by_id(browser, "db-select").get_attribute("value") == "shop"
        assert browser.execute_script("return sessionStorage.getItem('sqlwright.token')") == TOKEN
        assert by_id(browser, "forget-token").is_displayed()
        # the token goes with the questions too
        protected.llm.queue(fenced(SQL_TOTALS))
        ask(browser, Q_TOTALS)
        assert len(grid(browser)) == 4
        # a reload keeps the token (this tab's sessionStorage): no prompt
        open_page(browser, protected.url)
        assert not browser.execute_script(dialog_open)
    finally:
        browser.execute_script("sessionStorage.clear()")
        server.close()


def test_stop_withdraws_the_question_and_the_model_stops(tmp_path: Path, browser) -> None:
    slow = SlowLLM(fenced(SQL_TOTALS), delay=60)
    server = serve(tmp_path, llm=slow)
    site = next(server)
    try:
        open_page(browser, site.url)
        by_id(browser, "question").send_keys(Q_TOTALS, Keys.ENTER)
        assert slow.started.wait(WAIT), "the question never reached the model"
        stop = by_id(browser, "stop-button")
        assert stop.is_displayed() and not by_id(browser, "ask-button").is_enabled()
        stop.click()
        wait_for(browser, lambda d: any("Stopped:" in s for s in stages(d)), "the stop")
        assert slow.stopped.wait(WAIT), "the model was not told to stop"
        assert by_id(browser, "ask-button").is_enabled() and not by_id(browser, "stop-button").is_displayed()
        assert not by_id(browser, "error").is_displayed()
        assert slow.finished == 0
    finally:
        server.close()
