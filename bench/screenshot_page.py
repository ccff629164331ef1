"""Screenshot of the web page after an answer with a chart (the README's docs/serve-screenshot.png).

Serves the bundled sample database with the HTTP app and a model — a scripted one by default (the picture
then shows the page, not a model's skill), or a real one with `--model NAME` (the default pipeline) — on a
loopback port, asks a question in Debian's headless
Chromium and saves the whole page as a PNG. Nothing is written to your state or cache directories.

    .venv/bin/python bench/screenshot_page.py [--out docs/serve-screenshot.png] [--width 1280] [--height 1450]
                                              [--dark] [--model qwen2.5-coder-1.5b]

Needs the serve and dev extras (FastAPI, uvicorn, selenium) and `apt-get install chromium chromium-driver`.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

QUESTION = "What was our revenue per month?"
SQL = """SELECT substr(o.order_date, 1, 7) AS month, ROUND(SUM(oi.quantity * oi.unit_price), 2) AS revenue
FROM orders AS o
JOIN order_items AS oi ON oi.order_id = o.order_id
WHERE o.status <> 'cancelled'
GROUP BY month
ORDER BY month"""


def serve_sample(folder: Path, model: str | None = None):
    """(uvicorn server, its thread, its URL, the service): the sample database, a scripted model that answers
    QUESTION with SQL, state and cache in `folder`."""
    import uvicorn

    from sqlwright.config import load_settings
    from sqlwright.llm.mock import ScriptedLLM
    from sqlwright.pipeline import AskOptions
    from sqlwright.serve.app import create_app
    from sqlwright.serve.databases import DatabaseSet
    from sqlwright.serve.service import Service
    from sqlwright.store import open_state_store

    if model is None:
        settings = load_settings(state_dir=folder / "state", cache_dir=folder / "cache", state_url=None)
        llm = ScriptedLLM([f"```sql\n{SQL}\n```"])
        options = AskOptions.greedy(examples=0, notes=0)
    else:  # the real model from the usual cache (assembled models, prompt states), no state of yours
        from sqlwright.llm import load_llm

        settings = load_settings(state_dir=folder / "state", state_url=None)
        llm = load_llm(model, settings)
        options = AskOptions(examples=0, notes=0)
    service = Service(DatabaseSet.open(["sample"], settings), llm, open_state_store(settings), settings,
                      options=options, model_name=model or "scripted")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("the server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}/", service


def browser(width: int, dark: bool):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).is_file() and Path(driver_path).is_file()):
        raise SystemExit("headless Chromium is not installed: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={width},900", "--no-first-run", "--disable-background-networking", "--lang=en-US",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    if dark:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                               {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    return driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/serve-screenshot.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1450, help="cut the picture at this height (0: the whole "
                        "page)")
    parser.add_argument("--dark", action="store_true", help="the page's dark colour scheme")
    parser.add_argument("--model", default=None, help="a real model to answer (default: a scripted one)")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args()

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="sqlwright-shot-") as tmp:
        server, thread, url, service = serve_sample(Path(tmp), args.model)
        driver = browser(args.width, args.dark)
        try:
            driver.get(url)
            wait = WebDriverWait(driver, 30 if args.model is None else 300, poll_frequency=0.05)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
            driver.find_element(By.ID, "question").send_keys(args.question, Keys.ENTER)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-canvas svg"))
            driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
            height = driver.execute_script("return document.documentElement.scrollHeight")
            if args.height:
                height = min(height, args.height)
            extra = driver.execute_script("return window.outerHeight - window.innerHeight")  # the window's frame
            driver.set_window_size(args.width, height + extra)
            time.sleep(0.3)  # let the resized layout settle
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
            server.should_exit = True
            thread.join(10)
            service.close()
    print(f"{args.out}: {args.width}x{height}", file=sys.stderr)


if __name__ == "__main__":
    main()
