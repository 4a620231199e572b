"""/api/docs in headless Chromium: Swagger UI renders every operation from our own
files, with nothing blocked by the Content-Security-Policy and no outside request."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.test_admin_browser import CHROMEDRIVER, CHROMIUM, browser  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="headless Chromium is not installed",
    ),
]


@pytest.fixture
def site(app):  # type: ignore[no-untyped-def]
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_swagger_ui_shows_every_operation_offline(site: str, browser) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + "/api/docs")
    WebDriverWait(browser, 60).until(  # the 13 operations of the document
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 13
    )
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/images", "/api/search", "/api/reindex"} <= {
        p.replace("\u200b", "") for p in paths
    }
    errors = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
    ]
    assert not errors, errors
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(url.startswith(site) for url in loaded), loaded
