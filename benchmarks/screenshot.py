"""Screenshot: the README's picture of the web app (``reports/webapp.png``).

Serves the committed model with ``ser serve`` on 127.0.0.1, opens the page in
Debian's headless Chromium (as ``tests/test_browser.py`` does), uploads a clip
of the held-out speaker and saves the page.

    python -m benchmarks screenshot   # needs models/ and /usr/bin/chromium
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.common import CORPUS, REPO
from benchmarks.load import free_port, wait_until_up

CLIP = CORPUS / "YAF_sad" / "YAF_back_sad.flac"
OUTPUT = REPO / "reports" / "webapp.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).with_name("ser")), "serve", "--port", str(port), "--log-level", "warning"],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(url, server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 960, "height": 1000})
            page.goto(url)
            page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")
            page.set_input_files("#file", str(CLIP))
            page.wait_for_selector("#chart rect.bar.top")
            page.screenshot(path=str(OUTPUT), full_page=True)
            print(f"{CLIP.name}: {page.inner_text('#emotion')} {page.inner_text('#confidence')} -> {OUTPUT.relative_to(REPO)}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
