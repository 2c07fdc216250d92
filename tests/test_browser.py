"""The page in a real browser: Playwright drives Debian's Chromium against the app served by uvicorn.

It uploads a real TESS clip, and several as one speaker, and checks what the page draws and says
against the API's answers, that the page talks to no other host and logs no errors, and that a
refused upload shows the server's message.
Skips only when /usr/bin/chromium is absent, and fails then if SER_REQUIRE_BROWSER is set (CI installs
Chromium and sets it); no browser is ever downloaded."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from benchmarks.common import CHROMIUM, CHROMIUM_ARGS
from ser.inference import Predictor
from ser.params import ServeParams
from ser.webapp import create_app
from conftest import REPO_CLASSES, SERVED_CORPORA, served_project

CLASSES = REPO_CLASSES
TIMEOUT_MS = 15_000

if not CHROMIUM.exists() and os.environ.get("SER_REQUIRE_BROWSER"):
    raise RuntimeError(f"SER_REQUIRE_BROWSER is set but there is no Chromium at {CHROMIUM}")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


REPORT = {"protocol": "speaker", "n_test": 30, "accuracy": 0.7, "serving_accuracy": 0.55, "adapted_accuracy": {"5": 0.6, "20": 0.65}}
"""The evaluation report of the served model: the accuracy of a clip alone and of groups of 5 and 20 clips of a speaker."""


@pytest.fixture(scope="module")
def base_url(served_model_dir, tmp_path_factory):
    """The app, served for real by uvicorn on a free local port in a background thread."""
    import uvicorn

    model_dir = served_project(served_model_dir, tmp_path_factory.mktemp("project"), REPORT)
    app = create_app(Predictor(model_dir), ServeParams(max_upload_mb=5, max_duration_s=60))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def playwright():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright):
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield chromium
    chromium.close()


class Recorded:
    """What a page did: the URLs it requested, its console errors and uncaught exceptions."""

    def __init__(self, page):
        self.requests, self.console_errors, self.page_errors = [], [], []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.recorded = Recorded(page)
    page.goto(base_url + "/")
    page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model:')")
    yield page
    context.close()


def api_predict(base_url: str, path: Path, visuals: bool = False) -> dict:
    import httpx

    url = f"{base_url}/api/predict" + ("?visuals=true" if visuals else "")
    response = httpx.post(url, files={"file": (path.name, path.read_bytes())}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def api_predict_clips(base_url: str, paths: list[Path], mode: str) -> dict:
    import httpx

    files = [("files", (path.name, path.read_bytes())) for path in paths]
    response = httpx.post(f"{base_url}/api/predict/clips", files=files, data={"mode": mode}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


CANVAS_PIXELS = """(id) => {
  const canvas = document.getElementById(id);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  let painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] || data[i + 1] || data[i + 2])) painted++;
    if (colours.size < 1000) colours.add(`${data[i]},${data[i + 1]},${data[i + 2]},${data[i + 3]}`);
  }
  return {width: canvas.width, height: canvas.height, pixels: data.length / 4, painted, colours: colours.size};
}"""


def test_uploading_a_real_clip_shows_the_apis_answer_and_draws_it(page, base_url, tess_dir):
    path = tess_dir / "YAF_sad" / "YAF_back_sad.flac"
    expected = api_predict(base_url, path)

    page.set_input_files("#file", str(path))
    page.wait_for_function("document.querySelectorAll('#chart rect.bar').length === 7")
    page.wait_for_function("document.getElementById('status').textContent === 'Scored YAF_back_sad.flac.'")
    assert page.is_visible("#result")
    assert page.is_hidden("#error")

    emotion = page.text_content("#emotion")
    assert emotion.lower() in set(CLASSES)
    assert emotion.lower() == expected["emotion"]
    assert page.eval_on_selector("#emotion", "e => getComputedStyle(e).textTransform") == "capitalize"

    confidence = page.text_content("#confidence")
    assert re.fullmatch(r"\d{1,3}\.\d%", confidence), confidence
    assert float(confidence[:-1]) == pytest.approx(100 * expected["confidence"], abs=0.051)
    assert page.text_content("#clip") == f"YAF_back_sad.flac, {expected['duration']:.2f} s"
    assert page.text_content("#mode") == ("Scored one clip at a time: the clip normalized on its own. On speakers it never heard: "
                                          f"{100 * expected['accuracy']['value']:.1f}% accurate, measured with each clip scored alone.")
    assert page.text_content("#clips") == ""  # no list for one clip

    bars = chart(page)
    assert sorted(bar["label"] for bar in bars) == list(CLASSES)
    top = [bar["label"] for bar in bars if bar["top"]]
    assert top == [expected["emotion"]]
    for bar in bars:
        assert bar["p"] == pytest.approx(expected["probabilities"][bar["label"]], abs=1e-6)
    widest = max(bars, key=lambda bar: bar["width"])
    assert widest["label"] == expected["emotion"]

    for canvas in ("waveform", "spectrogram"):
        pixels = page.evaluate(CANVAS_PIXELS, canvas)
        assert pixels["width"] > 100 and pixels["height"] > 50, (canvas, pixels)
        assert pixels["painted"] > 0.01 * pixels["pixels"], (canvas, pixels)
        assert pixels["colours"] > 1, (canvas, pixels)
    assert page.evaluate(CANVAS_PIXELS, "spectrogram")["colours"] > 20  # a colour map, not a flat fill

    recorded = page.recorded
    assert recorded.console_errors == []
    assert recorded.page_errors == []
    hosts = {urlsplit(url).netloc for url in recorded.requests if urlsplit(url).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {urlsplit(base_url).netloc}, recorded.requests
    assert all(urlsplit(url).scheme in ("http", "data", "blob") for url in recorded.requests), recorded.requests
    paths = [urlsplit(url).path for url in recorded.requests if url.startswith(base_url)]
    assert {"/", "/static/style.css", "/static/app.js", "/api/model", "/api/predict"} <= set(paths)


def chart(page) -> list[dict]:
    return page.eval_on_selector_all(
        "#chart rect.bar",
        "bars => bars.map(b => ({label: b.dataset.label, p: Number(b.dataset.probability),"
        " top: b.classList.contains('top'), width: Number(b.getAttribute('width'))}))",
    )


def clip_rows(page) -> list[list[str]]:
    return page.eval_on_selector_all("#clips tr", "rows => rows.slice(1).map(r => [...r.cells].map(c => c.textContent))")


def test_clips_of_one_speaker_are_scored_together_and_the_page_says_so(page, base_url, tess_dir):
    """Tick "one speaker", choose five clips, then add a sixth: all are scored together each time, the
    page lists them and says the mode and its accuracy from the API; unticking scores them alone."""
    emotions = ("sad", "angry", "happy", "neutral", "fear", "disgust")
    paths = [tess_dir / f"YAF_{emotion}" / f"YAF_back_{emotion}.flac" for emotion in emotions]
    assert page.is_hidden("#clear")
    page.check("#one-speaker")
    assert page.is_visible("#clear")

    for chosen, scored in ((paths[:5], paths[:5]), (paths[5:], paths)):
        expected = api_predict_clips(base_url, scored, "speaker")
        page.set_input_files("#file", [str(path) for path in chosen])
        page.wait_for_function(f"document.getElementById('status').textContent === 'Scored {len(scored)} clips.'")
        accuracy = expected["accuracy"]
        assert (accuracy["value"], accuracy["clips_per_speaker"]) == (REPORT["adapted_accuracy"]["5"], 5)
        assert page.text_content("#mode") == (
            f"Scored as one speaker: {len(scored)} clips normalized together with that speaker's statistics. "
            f"On speakers it never heard: {100 * accuracy['value']:.1f}% accurate, measured with 5 clips of each speaker scored together.")
        assert clip_rows(page) == [[r["file"], f"{r['duration']:.2f}", r["emotion"], f"{100 * r['confidence']:.1f}%"]
                                   for r in expected["predictions"]]
        first_added = expected["predictions"][len(scored) - len(chosen)]  # the clips added are shown
        assert page.text_content("#clip").startswith(first_added["file"])

    third = expected["predictions"][2]
    page.click(f"#clips button:text-is('{third['file']}')")
    assert page.text_content("#clip") == f"{third['file']}, {third['duration']:.2f} s"
    assert page.eval_on_selector("#clips tr.selected", "row => row.cells[0].textContent") == third["file"]
    for bar in chart(page):
        assert bar["p"] == pytest.approx(third["probabilities"][bar["label"]], abs=1e-6)
    assert [bar["label"] for bar in chart(page) if bar["top"]] == [third["emotion"]]
    alone = api_predict(base_url, paths[2])
    assert alone["probabilities"] != third["probabilities"]  # normalized together, not alone

    page.uncheck("#one-speaker")
    page.wait_for_function("document.getElementById('mode').textContent.startsWith('Scored one clip at a time')")
    assert page.text_content("#mode") == ("Scored one clip at a time: each of 6 clips normalized on its own. On speakers it never "
                                          f"heard: {100 * REPORT['serving_accuracy']:.1f}% accurate, measured with each clip scored alone.")
    assert page.text_content("#clip").startswith(third["file"])  # the same clip, scored alone now
    for bar in chart(page):
        assert bar["p"] == pytest.approx(alone["probabilities"][bar["label"]], abs=1e-6)
    assert page.is_hidden("#clear")

    page.check("#one-speaker")
    page.wait_for_function("document.getElementById('mode').textContent.startsWith('Scored as one speaker')")
    page.click("#clear")
    page.wait_for_selector("#result", state="hidden")
    recorded = page.recorded
    assert recorded.console_errors == [] and recorded.page_errors == []
    hosts = {urlsplit(url).netloc for url in recorded.requests if urlsplit(url).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {urlsplit(base_url).netloc}, recorded.requests
    assert "/api/predict/clips" in {urlsplit(url).path for url in recorded.requests}


def test_a_refused_clip_of_a_speaker_is_named_and_the_others_stay(page, base_url, tess_dir, tmp_path):
    """A clip that cannot be scored is not added: the speaker's other clips are scored without it."""
    paths = [tess_dir / f"YAF_{emotion}" / f"YAF_back_{emotion}.flac" for emotion in ("sad", "angry")]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording\n" * 20)
    page.check("#one-speaker")
    page.set_input_files("#file", [str(path) for path in paths])
    page.wait_for_function("document.getElementById('status').textContent === 'Scored 2 clips.'")

    with page.expect_response(lambda response: "/api/predict/clips" in response.url) as answer:
        page.set_input_files("#file", str(notes))
    assert answer.value.status == 415
    detail = answer.value.json()["detail"]
    assert detail.startswith("notes.txt: cannot decode audio")
    page.wait_for_selector("#error", state="visible")
    assert page.text_content("#error") == f"Could not score 3 clips (415): {detail}"

    page.set_input_files("#file", str(paths[0]))  # the speaker's clips are still the first two
    page.wait_for_function("document.getElementById('status').textContent === 'Scored 3 clips.'")
    assert [row[0] for row in clip_rows(page)] == [paths[0].name, paths[1].name, paths[0].name]
    assert page.is_hidden("#error")
    assert page.recorded.page_errors == []


def test_a_second_upload_replaces_the_first_answer(page, base_url, tess_dir, write_tone, tmp_path):
    real = tess_dir / "OAF_fear" / "OAF_back_fear.flac"
    first = api_predict(base_url, real)["emotion"]
    # A synthetic clip the (small, seeded) model scores differently, so the top bar has to move.
    for f0 in (180.0, 120.0, 250.0, 320.0, 90.0):
        tone = write_tone(tmp_path / f"tone-{f0:.0f}.wav", sr=16000, seconds=1.5, f0=f0, seed=1)
        second = api_predict(base_url, tone)
        if second["emotion"] != first:
            break
    assert second["emotion"] != first, "no synthetic clip found that the model scores differently"

    for path, emotion in ((real, first), (tone, second["emotion"])):
        page.set_input_files("#file", str(path))
        page.wait_for_function(f"document.getElementById('status').textContent === 'Scored {path.name}.'")
        assert page.text_content("#emotion").lower() == emotion
        bars = chart(page)
        assert len(bars) == 7
        assert [bar["label"] for bar in bars if bar["top"]] == [emotion]
    for bar in bars:
        assert bar["p"] == pytest.approx(second["probabilities"][bar["label"]], abs=1e-6)
    assert page.text_content("#clip").startswith(tone.name)


def test_uploading_an_ogg_opus_clip_shows_the_apis_answer(page, base_url, tmp_path):
    """Ogg Opus (nEMO's and ASED's shared copies): the file input offers it, and the page shows the API's answer."""
    import soundfile as sf

    from conftest import make_tone

    path = tmp_path / "voice.opus"
    sf.write(path, make_tone(16000, 2.5, seed=7), 16000, format="OGG", subtype="OPUS")
    expected = api_predict(base_url, path)
    accept = page.get_attribute("#file", "accept").split(",")
    assert ".opus" in accept and ".oga" in accept

    page.set_input_files("#file", str(path))
    page.wait_for_function("document.getElementById('status').textContent === 'Scored voice.opus.'")
    assert page.is_visible("#result")
    assert page.is_hidden("#error")
    assert page.text_content("#emotion").lower() == expected["emotion"]
    assert page.text_content("#clip") == f"voice.opus, {expected['duration']:.2f} s"
    bars = chart(page)
    assert sorted(bar["label"] for bar in bars) == list(CLASSES)
    assert [bar["label"] for bar in bars if bar["top"]] == [expected["emotion"]]
    for bar in bars:
        assert bar["p"] == pytest.approx(expected["probabilities"][bar["label"]], abs=1e-6)
    for canvas in ("waveform", "spectrogram"):
        pixels = page.evaluate(CANVAS_PIXELS, canvas)
        assert pixels["painted"] > 0.01 * pixels["pixels"], (canvas, pixels)
    assert page.recorded.console_errors == []
    assert page.recorded.page_errors == []


def test_the_page_says_what_the_model_was_trained_on(page):
    """Corpora, speakers and classes of the deployable model, from /api/model."""
    info = page.text_content("#model-info")
    assert f"classes: {', '.join(CLASSES)}." in info
    speakers = sum(len(names) for names in SERVED_CORPORA.values())
    assert f"Trained on {speakers} speakers of " in info
    for corpus in SERVED_CORPORA:
        assert f"{corpus} (" in info
    assert page.recorded.page_errors == []


def test_uploading_a_non_audio_file_shows_the_servers_message(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a recording\n" * 10)

    with page.expect_response(lambda response: "/api/predict" in response.url) as answer:
        page.set_input_files("#file", str(notes))
    assert answer.value.status == 415
    detail = answer.value.json()["detail"]
    assert "notes.txt" in detail and "cannot decode audio" in detail

    page.wait_for_selector("#error", state="visible")
    message = page.text_content("#error")
    assert message == f"Could not score notes.txt (415): {detail}"
    assert page.is_hidden("#result")
    assert page.recorded.page_errors == []
    # The only console error allowed is Chromium's own note of the refused request.
    assert all("415" in text for text in page.recorded.console_errors), page.recorded.console_errors


def test_recordings_from_the_microphone_are_scored_alone_or_as_one_speaker(playwright, base_url):
    """Record (Chromium's fake microphone plays a beep), stop: the page converts the recording to WAV
    and uploads it, and shows the server's answer for it. With "one speaker" ticked, a second
    recording joins the first and both are scored together."""
    fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_microphone)
    try:
        page = chromium.new_context(permissions=["microphone"]).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        recorded = Recorded(page)
        uploads = []
        page.on("request", lambda request: request.method == "POST" and uploads.append(request))
        page.goto(base_url + "/")

        def record() -> None:
            page.click("#record")
            page.wait_for_function("document.getElementById('record').textContent.includes('Stop')")
            page.wait_for_timeout(2000)
            page.click("#record")

        record()
        page.wait_for_function("document.getElementById('status').textContent === 'Scored recording.wav.'")
        assert page.is_hidden("#error")
        assert page.text_content("#emotion").lower() in set(CLASSES)
        seconds = float(re.fullmatch(r"recording\.wav, (\d+\.\d+) s", page.text_content("#clip"))[1])
        assert 1.5 < seconds < 6
        assert len(uploads) == 1  # one upload, which libsndfile decoded: WAV, not the recorder's WebM
        assert page.text_content("#record") == "● Record"

        page.check("#one-speaker")  # the recording is scored again, as the speaker's first clip
        page.wait_for_function("document.getElementById('mode').textContent.startsWith('Scored as one speaker: 1 clip ')")
        record()
        page.wait_for_function("document.getElementById('status').textContent === 'Scored 2 clips.'")
        assert [row[0] for row in clip_rows(page)] == ["recording.wav", "recording-2.wav"]
        assert page.text_content("#mode").startswith("Scored as one speaker: 2 clips normalized together")
        assert page.text_content("#clip").startswith("recording-2.wav, ")
        assert [urlsplit(upload.url).path for upload in uploads] == ["/api/predict", "/api/predict/clips", "/api/predict/clips"]
        assert recorded.console_errors == [] and recorded.page_errors == []
    finally:
        chromium.close()
