"""The search pages in headless Chromium: draw a box, search the region, filter, page.

The app runs in this process behind werkzeug's threaded server on a loopback
port; the upload's photo must be kept by the browser (search.js) and posted again
for the region search, the label filter and "More results". Skipped when
chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from tests.test_admin_browser import CHROMEDRIVER, CHROMIUM, browser  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="headless Chromium is not installed"),
]


@pytest.fixture
def site(app, runner, tmp_path: Path, photos):  # type: ignore[no-untyped-def]
    """18 gallery images (each photo, mirrored, and a crop), 9 'space' and 9 'other'."""
    from werkzeug.serving import make_server

    root = tmp_path / "gallery"
    for name, data in photos.items():
        folder = root / ("space" if name in ("astronaut", "rocket", "hubble_deep_field")
                         else "other")
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = image.size
        for suffix, variant in (("", image), ("-mirror", ImageOps.mirror(image)),
                                ("-crop", image.crop((0, 0, w * 2 // 3, h * 2 // 3)))):
            variant.save(folder / f"{name}{suffix}.jpg", quality=90)
    result = runner.invoke(args=["gallery", "add", str(root), "--label-from-folder"])
    assert "Added 18" in result.output, result.output
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_draw_a_box_search_the_region_filter_by_label_and_page(
    site, browser, tmp_path, photos  # noqa: F811
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def page_says(text: str) -> None:
        WebDriverWait(browser, 60).until(lambda d: text in d.page_source, f"waiting for {text}")

    def cards() -> list[tuple[str, str]]:
        return [(c.find_element(By.CLASS_NAME, "rank").text,
                 c.find_element(By.CLASS_NAME, "label").text)
                for c in browser.find_elements(By.CSS_SELECTOR, "li.card")]

    query = tmp_path / "rocket.jpg"
    query.write_bytes(photos["rocket"])
    browser.get(site + "/")
    browser.find_element(By.ID, "image").send_keys(str(query))
    Select(browser.find_element(By.ID, "k")).select_by_value("5")
    browser.find_element(By.CSS_SELECTOR, ".search-form button[type=submit]").click()
    page_says("Most similar images")
    assert len(cards()) == 5

    # Draw a box over the left half of the photo and search that region.
    image = browser.find_element(By.CSS_SELECTOR, "[data-box-image]")
    w, h = image.size["width"], image.size["height"]
    ActionChains(browser).move_to_element_with_offset(image, -w // 2 + 5, -h // 2 + 5) \
        .click_and_hold().move_by_offset(w // 2, h - 10).release().perform()
    button = browser.find_element(By.CSS_SELECTOR, "[data-region-button]")
    WebDriverWait(browser, 10).until(lambda d: button.is_enabled())
    value = browser.find_element(By.CSS_SELECTOR, "[data-box-value]")
    drawn = [float(v) for v in value.get_attribute("value").split(",")]
    assert drawn[0] < 0.05 and 0.45 < drawn[2] < 0.55  # the left half
    # Adjust: drag the bottom-right handle left, to about a third of the width.
    handle = browser.find_element(By.CSS_SELECTOR, ".box .handle.se")
    ActionChains(browser).click_and_hold(handle).move_by_offset(-w // 6, 0).release().perform()
    adjusted = [float(v) for v in value.get_attribute("value").split(",")]
    assert adjusted[0] == drawn[0] and 0.28 < adjusted[2] < 0.39
    button.click()
    page_says("region ")
    assert any(chip.text.startswith("region 0")
               for chip in browser.find_elements(By.CSS_SELECTOR, ".active-filters li"))
    assert "Your photo" in browser.page_source and len(cards()) == 5

    # Filter by label (the region stays), then page to more results.
    browser.find_element(By.CSS_SELECTOR, "details.refine summary").click()
    refine = browser.find_element(By.CSS_SELECTOR, "form.refine-form")
    refine.find_element(By.CSS_SELECTOR, "input[list=gallery-labels]").send_keys("space")
    refine.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    page_says("label: space")
    assert "region " in browser.page_source
    first = cards()
    assert [rank for rank, _ in first] == ["#1", "#2", "#3", "#4", "#5"]
    assert {label for _, label in first} == {"space"}
    browser.find_element(By.CSS_SELECTOR, "form.more-results button").click()
    page_says("#6")
    more = cards()
    assert [rank for rank, _ in more] == ["#6", "#7", "#8", "#9"]
    assert {label for _, label in more} == {"space"}
