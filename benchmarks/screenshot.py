"""Screenshot: the README's picture of the web app (``reports/webapp.png``).

Serves the committed model with ``ser serve`` on 127.0.0.1, opens the page in
Debian's headless Chromium (as ``tests/test_browser.py`` does), uploads a long
EMOVO clip (several windows) and saves the page.

    python -m benchmarks screenshot   # needs models/ and /usr/bin/chromium
"""

from __future__ import annotations

from benchmarks.common import CHROMIUM, CHROMIUM_ARGS, CORPUS, REPO, RESULTS, smoke_or
from benchmarks.load import running_server
from ser.paths import WEBAPP_SCREENSHOT

CLIP = CORPUS.parent / "emovo" / "m1" / "tri-m1-n5.flac"
OUTPUT = smoke_or(REPO / WEBAPP_SCREENSHOT, RESULTS / WEBAPP_SCREENSHOT.name)  # a smoke run leaves the README's picture alone


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with running_server() as (url, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 960, "height": 1000})
        page.goto(url)
        page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
        page.set_input_files("#file", str(CLIP))
        page.wait_for_selector("#chart rect.bar.top")
        page.screenshot(path=str(OUTPUT), full_page=True)
        print(f"{CLIP.name}: {page.inner_text('#emotion')} {page.inner_text('#confidence')} -> {OUTPUT}")
        browser.close()
