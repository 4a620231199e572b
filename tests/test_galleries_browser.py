"""An operator in a real browser creates a second gallery, uploads to it and searches it.

Same harness as tests/test_admin_browser.py: headless Chromium against gunicorn with
two workers on Milvus Lite, so the new gallery must be seen by both workers.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.admin_fixtures import make_zip
from tests.test_admin_browser import browser, pytestmark, server  # noqa: F401  (fixtures)


def test_an_operator_creates_a_gallery_uploads_to_it_and_searches_it(
    server,  # noqa: F811  (the fixture imported above)
    browser,  # noqa: F811
    tmp_path: Path,
    photos: dict[str, bytes],
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    base, log_path = server
    password = re.search(r"password (\S+)\n", log_path.read_text()).group(1)
    browser.get(f"{base}/admin/login")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 20).until(ready.presence_of_element_located((By.ID, "reindex")))

    # Create "shoes" from the galleries page (the model field left empty: LOOKALIKE_MODEL).
    browser.find_element(By.LINK_TEXT, "Galleries").click()
    form = browser.find_element(By.CSS_SELECTOR, "#create-gallery form")
    form.find_element(By.NAME, "name").send_keys("shoes")
    form.find_element(By.NAME, "title").send_keys("Shoe catalogue")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    row = WebDriverWait(browser, 20).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "tr[data-gallery=shoes]"))
    )
    assert "Shoe catalogue" in row.text

    # Upload to it from its own gallery page.
    row.find_element(By.LINK_TEXT, "Images").click()
    assert browser.current_url.endswith("/admin/g/shoes/gallery")
    assert "Shoe catalogue" in browser.find_element(By.ID, "admin-gallery").text
    archive = tmp_path / "shoes.zip"
    archive.write_bytes(make_zip({f"photos/{n}.jpg": d for n, d in photos.items()}))
    browser.find_element(By.NAME, "files").send_keys(str(archive))
    browser.find_element(By.NAME, "label_from_folder").click()
    browser.find_element(By.CSS_SELECTOR, "form.upload button[type=submit]").click()
    summary = (
        WebDriverWait(browser, 120)
        .until(ready.presence_of_element_located((By.CSS_SELECTOR, "p.summary")))
        .text
    )
    assert summary.startswith(f"{len(photos)} added")

    # A visitor: / is now a chooser; the shoes gallery finds the photo, links stay in it.
    browser.get(f"{base}/")
    browser.find_element(By.LINK_TEXT, "Shoe catalogue").click()
    assert browser.current_url.endswith("/g/shoes/")
    query = tmp_path / "query.jpg"
    query.write_bytes(photos["chelsea"])
    browser.find_element(By.ID, "image").send_keys(str(query))
    browser.find_element(By.CSS_SELECTOR, ".search-form button[type=submit]").click()
    WebDriverWait(browser, 60).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "ol.grid"))
    )
    assert browser.find_element(By.CSS_SELECTOR, "ol.grid li .label").text == "photos"
    more = browser.find_element(By.CSS_SELECTOR, "ol.grid li a.more").get_attribute("href")
    assert more.startswith(f"{base}/g/shoes/search?key=")
    browser.get(more)
    assert browser.find_elements(By.CSS_SELECTOR, "ol.grid li")
    # The default gallery is still empty.
    browser.get(f"{base}/admin/")
    assert "Shoe catalogue" in browser.find_element(By.ID, "galleries-summary").text
