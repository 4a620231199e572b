"""A new user in a real browser: log in, upload a zip, reindex, watch it finish, search.

Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium,
against gunicorn with two workers on the embedded defaults (a Milvus Lite server
shared by the workers and the job process). Searches run over HTTP throughout
and must all succeed. Screenshots go to $ADMIN_SHOTS_DIR (default: the test's
tmp folder). $ADMIN_BROWSER_MODEL swaps the tiny test model for a real one (slower
encoding, better screenshots). Skipped when chromium, chromedriver or selenium is
missing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from app.vectors.processes import free_port as _free_port
from tests.admin_fixtures import jpeg, make_zip

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1100"]
ALIAS_CHECK_SECONDS = 1.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="headless Chromium is not installed "
                              "(apt-get install -y chromium chromium-driver)"),
]


@pytest.fixture
def server(tmp_path: Path, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """gunicorn (2 workers) on a free loopback port; yields (base URL, its log path)."""
    from app.vectors.lite_server import stop_server

    port = _free_port()
    instance = tmp_path / "instance"
    log_path = tmp_path / "gunicorn.log"
    env = {**os.environ, "LOOKALIKE_INSTANCE_PATH": str(instance),
           "LOOKALIKE_MILVUS_URI": "milvus.db",  # Milvus Lite under instance/
           "LOOKALIKE_MODEL": os.environ.get("ADMIN_BROWSER_MODEL") or str(tiny_model_dir),
           "LOOKALIKE_BF16": "false",
           "LOOKALIKE_COLLECTION": f"b{uuid.uuid4().hex[:8]}", "LOOKALIKE_BATCH_SIZE": "8",
           "LOOKALIKE_ALIAS_CHECK_SECONDS": str(ALIAS_CHECK_SECONDS), "PYTHONPATH": str(ROOT),
           # One client searching back to back measures the reindex, not the rate limit.
           "LOOKALIKE_RATELIMIT_SEARCH": ""}
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
               "--threads", "4", "--timeout", "120", "--no-control-socket",
               "--chdir", str(ROOT), "wsgi:app"]
    with open(log_path, "wb") as log:
        # cwd outside the checkout: a gunicorn.conf.py there must not change this test.
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/admin/login", process, log_path)
        yield base, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stop_server(instance / "milvus.db")


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _wait_for(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)  # the poll interval of a wait with a deadline
    raise AssertionError(f"gunicorn did not answer at {url}:\n{log_path.read_text()[-3000:]}")


def _multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, (filename, data) in fields.items():
        body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                   f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n".encode())
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


class HttpSearches(threading.Thread):
    """Searches over HTTP, back to back; every non-200 or short answer is a failure."""

    def __init__(self, base: str, queries: list[bytes], k: int) -> None:
        super().__init__(daemon=True)
        self.base, self.queries, self.k = base, queries, k
        self.stop = threading.Event()
        self.total = 0
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.started: list[float] = []  # when each finished search began (perf_counter)

    def since(self, moment: float) -> int:
        """How many searches began at ``moment`` or later and have finished."""
        return sum(1 for t in self.started if t >= moment)

    def run(self) -> None:
        while not self.stop.is_set():
            query = self.queries[self.total % len(self.queries)]
            body, content_type = _multipart({"image": ("q.jpg", query)})
            request = urllib.request.Request(f"{self.base}/api/search?k={self.k}", data=body,
                                             headers={"Content-Type": content_type})
            started = time.perf_counter()
            self.total += 1
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    results = json.load(response)["results"]
                if len(results) != self.k or results[0]["score"] < 0.99:
                    self.failures.append(f"{len(results)} results, top {results[0]['score']}")
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures.append(repr(exc)[:200])
            self.latencies.append(time.perf_counter() - started)
            self.started.append(started)


def test_a_new_user_logs_in_uploads_reindexes_and_searches(
    server, browser, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    from selenium.common.exceptions import (
        JavascriptException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    reloading = [NoSuchElementException, StaleElementReferenceException]  # the page reloads itself

    base, log_path = server
    shots = Path(os.environ.get("ADMIN_SHOTS_DIR") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    password = re.search(r"password (\S+)\n", log_path.read_text()).group(1)  # printed at start

    # Log in: /admin sends a new user to the login page first.
    browser.get(f"{base}/admin/")
    assert "/admin/login" in browser.current_url
    browser.save_screenshot(str(shots / "0-login.png"))
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 20).until(ready.presence_of_element_located((By.ID, "reindex")))

    # Upload a zip: photos, more images, a duplicate and a broken file.
    swatches = {f"swatches/s{i}.jpg": jpeg(i) for i in range(60)}
    archive = tmp_path / "gallery.zip"
    archive.write_bytes(make_zip({**{f"photos/{n}.jpg": d for n, d in photos.items()}, **swatches,
                                  "again/coffee.jpg": photos["coffee"], "broken.jpg": b"nope"}))
    browser.get(f"{base}/admin/gallery")
    browser.find_element(By.NAME, "files").send_keys(str(archive))
    browser.find_element(By.NAME, "label_from_folder").click()
    browser.find_element(By.CSS_SELECTOR, "form.upload button[type=submit]").click()
    summary = WebDriverWait(browser, 120).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "p.summary"))).text
    assert summary == "66 added, 1 already in the gallery, 1 rejected."
    browser.save_screenshot(str(shots / "1-upload-results.png"))
    size = 66
    browser.get(f"{base}/admin/gallery")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".admin-grid .card")) == 48
    browser.save_screenshot(str(shots / "1b-gallery.png"))

    # Reindex with searches running over HTTP the whole time.
    searches = HttpSearches(base, list(photos.values()), k=size)
    searches.start()
    try:
        browser.get(f"{base}/admin/")
        browser.find_element(By.CSS_SELECTOR, "#reindex form[data-show=idle] button").click()
        WebDriverWait(browser, 30, ignored_exceptions=reloading).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "[data-field=phase-label]").text
            in ("Starting", "Loading the model", "Encoding images", "Building the index",
                "Switching", "Done"))
        WebDriverWait(browser, 240, poll_frequency=0.2, ignored_exceptions=reloading).until(
            lambda b: (b.find_element(By.CSS_SELECTOR, "[data-field=phase-label]").text,
                       b.find_element(By.CSS_SELECTOR, "[data-field=done]").text)
            not in {("Starting", "0"), ("Loading the model", "0"), ("Encoding images", "0")})
        browser.save_screenshot(str(shots / "2-reindex-in-progress.png"))
        # The page updates itself (no reload by us) and reloads once when done.
        WebDriverWait(browser, 240, ignored_exceptions=reloading).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "[data-field=phase-label]").text == "Done"
            and b.find_element(By.CSS_SELECTOR, "[data-field=done]").text == str(size))
        # The page reloads itself once done (the navigation type tells that reload from
        # our own visit) ...
        WebDriverWait(browser, 30, ignored_exceptions=[*reloading, JavascriptException]).until(
            lambda b: b.execute_script(
                "return performance.getEntriesByType('navigation')[0].type") == "reload")
        # ... and searches go on while the workers notice the switch: every search begun
        # ALIAS_CHECK_SECONDS after it makes its worker look at the alias again.
        noticed = time.perf_counter() + ALIAS_CHECK_SECONDS
        WebDriverWait(browser, 60).until(lambda _: searches.since(noticed) >= 8)
    finally:
        searches.stop.set()
        searches.join(timeout=60)
    browser.get(f"{base}/admin/")
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Done" in page and f"Images\n{size}" in page
    browser.save_screenshot(str(shots / "3-reindex-done.png"))
    assert searches.failures == [], searches.failures[:5]
    assert searches.total >= 10

    # Search as a visitor would.
    query = tmp_path / "query.jpg"
    query.write_bytes(photos["chelsea"])
    browser.get(f"{base}/")
    browser.find_element(By.ID, "image").send_keys(str(query))
    browser.find_element(By.CSS_SELECTOR, ".search-form button[type=submit]").click()
    WebDriverWait(browser, 60).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "ol.grid")))
    first = browser.find_element(By.CSS_SELECTOR, "ol.grid li .label").text
    assert first == "photos"
    browser.save_screenshot(str(shots / "4-search-results.png"))
    (shots / "searches.json").write_text(json.dumps({
        "searches": searches.total, "failed": len(searches.failures),
        "p50_ms": round(1000 * sorted(searches.latencies)[len(searches.latencies) // 2], 1),
        "max_ms": round(1000 * max(searches.latencies), 1),
    }))
