"""A real headless Chromium uploads a picture on the upload page of the running server
(uvicorn on 127.0.0.1) and sees the results with their thumbnails; then browses a cluster."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def chromium():
    from tests.browser import started_or_fail

    browser = started_or_fail(width=1280, height=900)
    yield browser
    browser.close()


LOADED_THUMBS = ("Array.from(document.querySelectorAll('#results img'))"
                 ".filter(i => i.complete && i.naturalWidth > 0).length")


def test_upload_a_picture_and_see_results(chromium, server_url, search_env):
    from selenium.webdriver.common.by import By

    picture = sorted(search_env.collection.glob("*.jpg"))[12]
    chromium.open(server_url + "/")
    chromium.driver.find_element(By.ID, "file").send_keys(str(picture))
    chromium.driver.find_element(By.ID, "search").click()
    chromium.wait_for("document.querySelector('#results') !== null", timeout=30)
    # every result thumbnail was fetched from /thumbs/ and decoded by the browser
    loaded = chromium.wait_for(f"{LOADED_THUMBS} === 12 && {LOADED_THUMBS}", timeout=30)
    assert loaded == 12
    assert chromium.js("return document.querySelector('#verdict').textContent").strip().startswith("Good match")
    first = chromium.js("return document.querySelector('#results .card a').getAttribute('href')")
    assert first == f"/pictures/{picture.stem}"
    assert chromium.js("return document.querySelector('#query-thumb').naturalWidth") > 0
    assert chromium.console_errors() == []

    # follow the first result to its picture page, then to its cluster mosaic
    chromium.driver.find_element(By.CSS_SELECTOR, "#results .card a").click()
    chromium.wait_for("document.querySelector('#neighbours') !== null", timeout=30)
    chromium.driver.find_element(By.CSS_SELECTOR, "a[href^='/clusters/']").click()
    chromium.wait_for("document.querySelectorAll('#mosaic img').length > 0", timeout=30)
    assert chromium.console_errors() == []


def test_upload_of_a_real_photograph_says_no_good_match(chromium, server_url):
    """scikit-learn's temple photograph, uploaded as a person would."""
    from selenium.webdriver.common.by import By

    from tests.search.photographs import real_photograph_files

    query = real_photograph_files()["china"]
    chromium.open(server_url + "/")
    chromium.driver.find_element(By.ID, "file").send_keys(str(query))
    chromium.driver.find_element(By.ID, "search").click()
    chromium.wait_for("document.querySelector('#verdict') !== null", timeout=30)
    assert "No good match" in chromium.js("return document.querySelector('#verdict').textContent")
    assert "colours and textures" in chromium.js("return document.querySelector('#verdict ul').textContent")
    assert "80 %" in chromium.js("return document.querySelector('#confidence-means').textContent")
    assert chromium.console_errors() == []
