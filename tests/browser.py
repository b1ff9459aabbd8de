"""Drive the system's headless Chromium (Selenium + ChromeDriver), for tests and benchmarks.

Nothing is downloaded: the browser and its driver are Debian's ``chromium`` and ``chromium-driver``
packages (``/usr/bin/chromium``, ``/usr/bin/chromedriver``; override with ``ISS_CHROMIUM`` and
``ISS_CHROMEDRIVER``). Each session gets a fresh profile folder, removed on close.

Example
-------
>>> with HeadlessChromium() as browser:                       # doctest: +SKIP
...     browser.open(Path("reports/index.html"))
...     browser.screenshot("/tmp/page.png")
...     assert browser.console_errors() == []
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1")

# querySelectorAll that also looks inside shadow roots (bokeh 3 renders its widgets in them)
DEEP_QUERY_FUNCTION = """(selector) => {
  const found = [];
  const walk = (root) => {
    root.querySelectorAll(selector).forEach(el => found.push(el));
    root.querySelectorAll('*').forEach(el => { if (el.shadowRoot) walk(el.shadowRoot); });
  };
  walk(document);
  return found;
}"""


class BrowserError(Exception):
    """Chromium or ChromeDriver is missing or failed to start."""


def chromium_paths() -> tuple[str, str]:
    """``(chromium, chromedriver)`` executables, checked to exist."""
    chromium = os.environ.get("ISS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = os.environ.get("ISS_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for name, path in (("chromium", chromium), ("chromedriver", driver)):
        if not Path(path).is_file():
            raise BrowserError(f"{name} not found at {path}; install Debian's packages with "
                               f"`apt-get install -y chromium chromium-driver` (or set ISS_CHROMIUM / ISS_CHROMEDRIVER)")
    return chromium, driver


def png_pixel_std(path: str | Path) -> float:
    """Standard deviation of a PNG's grey levels: ~0 for a blank page, tens for real content."""
    from PIL import Image

    with Image.open(path) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std())


class HeadlessChromium:
    """A headless Chromium session: open pages, read console errors, screenshot, run JS, hover and click.

    Parameters
    ----------
    width, height : int, default=1400, 1000
        Window size in CSS pixels.
    page_load_timeout : float, default=60
    """

    def __init__(self, width: int = 1400, height: int = 1000, page_load_timeout: float = 60):
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        chromium, driver = chromium_paths()
        self._profile = tempfile.mkdtemp(prefix="iss-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver = webdriver.Chrome(service=Service(driver), options=options)
        except WebDriverException as exc:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"cannot start {chromium} through {driver}: {exc.msg}") from exc
        self.driver.set_page_load_timeout(page_load_timeout)
        self._console: list[dict] = []

    # --- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Quit the browser and remove its profile folder."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- pages -----------------------------------------------------------------------------------
    @staticmethod
    def url_of(target: str | Path) -> str:
        """A URL for a page: paths become ``file://`` URLs, URLs are kept."""
        text = str(target)
        if "://" in text or text.startswith(("data:", "about:")):
            return text
        return Path(target).resolve().as_uri()

    def open(self, target: str | Path, wait_js: str | None = None, timeout: float = 30) -> float:
        """Load a page (waits for its load event), then optionally until ``wait_js`` is truthy.

        Returns
        -------
        float
            Seconds from the start of navigation until the page was ready (load event, and
            ``wait_js`` when given), measured in the page with the Performance API.
        """
        self.reset_console()  # errors are counted per page
        self.driver.get(self.url_of(target))
        if wait_js:
            self.wait_for(wait_js, timeout=timeout)
        # performance.now() counts from the navigation start of this document
        return float(self.js("return performance.now()")) / 1000.0

    def wait_for(self, js_expression: str, timeout: float = 30, poll: float = 0.05):
        """Poll ``return (<js_expression>)`` until truthy; returns its value. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(f"return ({js_expression})")
            if value:
                return value
            if time.monotonic() > deadline:
                errors = self.console_errors()
                raise TimeoutError(f"page never satisfied `{js_expression}` within {timeout} s; "
                                   f"console errors: {errors or 'none'}")
            time.sleep(poll)

    def js(self, script: str, *args):
        """Run JavaScript in the page (``return`` gives a value back)."""
        return self.driver.execute_script(script, *args)

    def deep_query_all(self, selector: str) -> list:
        """Elements matching a CSS selector, including inside shadow roots."""
        return self.js(f"return ({DEEP_QUERY_FUNCTION})(arguments[0])", selector)

    def deep_eval(self, selector: str, function_js: str):
        """``function_js`` (a JS function of an array of elements) applied to :meth:`deep_query_all`'s
        elements, in one round trip (elements re-rendered meanwhile cannot go stale)."""
        return self.js(f"return ({function_js})(({DEEP_QUERY_FUNCTION})(arguments[0]))", selector)

    # --- console -----------------------------------------------------------------------------------
    def collect_console(self) -> list[dict]:
        """Every console entry since the last call (``level``, ``message``, ``source``)."""
        entries = self.driver.get_log("browser")
        self._console.extend(entries)
        return entries

    def reset_console(self) -> None:
        """Forget every console message so far (e.g. between tests sharing one browser)."""
        self.collect_console()
        self._console.clear()

    def console_errors(self) -> list[str]:
        """Messages of console errors (and failed loads) logged since the page was opened."""
        self.collect_console()
        return [e["message"] for e in self._console if e.get("level") == "SEVERE"]

    # --- looking and pointing ---------------------------------------------------------------------
    def screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the viewport."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(path)):
            raise BrowserError(f"screenshot to {path} failed")
        return path

    def _pointer(self):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        chain = ActionChains(self.driver)
        return chain, ActionBuilder(self.driver)

    def hover(self, x: float, y: float) -> None:
        """Move the mouse to viewport coordinates (CSS pixels), firing real pointer events."""
        _, builder = self._pointer()
        # approach from a nearby point so the page sees a move, not a jump onto the target
        builder.pointer_action.move_to_location(max(int(x) - 6, 0), max(int(y) - 6, 0))
        builder.pointer_action.move_to_location(int(x), int(y))
        builder.perform()

    def click(self, x: float, y: float) -> None:
        """Click at viewport coordinates (CSS pixels)."""
        _, builder = self._pointer()
        builder.pointer_action.move_to_location(int(x), int(y))
        builder.pointer_action.click()
        builder.perform()

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Press at the first point, move through the others and release at the last (a lasso or a box)."""
        _, builder = self._pointer()
        builder.pointer_action.move_to_location(int(points[0][0]), int(points[0][1]))
        builder.pointer_action.pointer_down()
        for x, y in points[1:]:
            builder.pointer_action.move_to_location(int(x), int(y))
        builder.pointer_action.pointer_up()
        builder.perform()

    def select_option(self, css: str, value: str) -> None:
        """Choose ``value`` in a ``<select>`` (fires its change event like a user would)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        Select(self.driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)


def started_or_fail(width: int = 1400, height: int = 1000) -> HeadlessChromium:
    """A started :class:`HeadlessChromium`, or the calling test fails saying what to install: a browser
    test never skips silently. The caller closes it."""
    import pytest

    try:
        return HeadlessChromium(width=width, height=height)
    except BrowserError as exc:
        pytest.fail(f"browser tests need Debian's chromium and chromium-driver: {exc}", pytrace=False)
