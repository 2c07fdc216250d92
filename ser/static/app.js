"use strict";
// The page of `ser serve`: upload or record clips, POST them to /api/predict (one clip) or to
// /api/predict/clips (several, or one speaker's), draw the answer.
const $ = (id) => document.getElementById(id);
const percent = (p) => `${(100 * p).toFixed(1)}%`;
// What the test clips of each evaluation protocol hold that training did not (random: nothing but the clips).
const HELD_OUT = {
  speaker: "speakers it never heard",
  corpus: "corpora it never heard",
  text: "words and sentences it never heard, from speakers it did",
  random: "clips it never heard, from speakers and sentences it did",
};

async function showModel() {
  const response = await fetch("/api/model");
  const model = await response.json();
  const m = model.metrics;
  let text = `Model: ${model.arch}, classes: ${model.classes.join(", ")}.`;
  const seen = model.trained_on;
  if (seen) {
    const corpora = Object.entries(seen.corpora).map(([name, clips]) => `${name} (${clips} clips)`).join(", ");
    text += ` Trained on ${seen.speakers} speakers of ${corpora}.`;
  }
  if (m) {
    text += ` On ${HELD_OUT[m.protocol] || "held-out clips"} (${m.protocol} protocol, ${m.fold}): ${percent(m.accuracy)} accurate`;
    if (m.serving_accuracy !== undefined) text += `, ${percent(m.serving_accuracy)} on clips scored one at a time`;
    for (const [clips, accuracy] of Object.entries(m.adapted_accuracy || {})) {
      text += `, ${percent(accuracy)} with ${clips} clips of a speaker scored together`;
    }
    text += ".";
  }
  $("model-info").textContent = text;
}

function setStatus(text) { $("status").textContent = text; }

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("result").hidden = true;
}

let clips = [];  // the clips of the answer shown: {blob, name}
let results = [];  // that answer's result for each clip
let shown = 0;  // the clip drawn below the list
let scoring = Promise.resolve();  // one request at a time, so that clips added meanwhile are not lost
const oneSpeaker = () => $("one-speaker").checked;

// Clips chosen or recorded replace the ones shown, or with "one speaker" join them; then all are scored.
function addClips(added) {
  scoring = scoring.then(() => score(oneSpeaker() ? clips.concat(added) : added, oneSpeaker() ? clips.length : 0));
  return scoring;
}

async function score(next, show) {
  $("error").hidden = true;
  const mode = oneSpeaker() ? "speaker" : "single";
  const label = next.length === 1 ? next[0].name : `${next.length} clips`;
  setStatus(`Scoring ${label}…`);
  const form = new FormData();
  let url = "/api/predict/clips?visuals=true";
  if (next.length === 1 && mode === "single") {
    form.append("file", next[0].blob, next[0].name);
    url = "/api/predict?visuals=true";
  } else {
    next.forEach((clip) => form.append("files", clip.blob, clip.name));
    form.append("mode", mode);
  }
  try {
    const response = await fetch(url, { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      showError(`Could not score ${label} (${response.status}): ${detail}`);
      setStatus("");
      return;
    }
    clips = next;
    render(body.predictions ? body : { mode, clips: 1, accuracy: body.accuracy, predictions: [body] }, show);
    setStatus(`Scored ${label}.`);
  } catch (err) {
    showError(`Could not reach the server: ${err}`);
  }
}

// How the clips were scored, and what that is worth on the evaluation's held-out clips.
function modeLine(answer) {
  const a = answer.accuracy, count = answer.clips === 1 ? "1 clip" : `${answer.clips} clips`;
  const text = answer.mode === "speaker"
    ? `Scored as one speaker: ${count} normalized together with that speaker's statistics.`
    : `Scored one clip at a time: ${answer.clips === 1 ? "the clip" : `each of ${count}`} normalized on its own.`;
  if (a.value === null) return `${text} Accuracy of this mode on speakers it never heard: unknown (no evaluation report).`;
  const measured = a.clips_per_speaker === 1 ? "each clip scored alone" : `${a.clips_per_speaker} clips of each speaker scored together`;
  return `${text} On ${HELD_OUT[a.protocol] || "held-out clips"}: ${percent(a.value)} accurate, measured with ${measured}.`;
}

function render(answer, show) {
  results = answer.predictions;
  $("result").hidden = false;
  $("mode").textContent = modeLine(answer);
  drawClips();
  select(Math.min(show, results.length - 1));
}

function drawClips() {
  const box = $("clips");
  box.replaceChildren();
  if (results.length < 2) return;
  const table = document.createElement("table");
  table.innerHTML = "<tr><th>clip (choose one to see it below)</th><th>seconds</th><th>emotion</th><th>probability</th></tr>";
  results.forEach((result, index) => {
    const row = table.insertRow();
    const name = document.createElement("button");
    name.type = "button"; name.className = "link"; name.textContent = result.file;
    name.addEventListener("click", () => select(index));
    row.insertCell().append(name);
    row.insertCell().textContent = result.duration.toFixed(2);
    row.insertCell().textContent = result.emotion;
    row.insertCell().textContent = percent(result.confidence);
  });
  box.append(table);
}

// Show one clip's answer: emotion, chart, waveform, spectrogram, windows.
function select(index) {
  const result = results[index];
  shown = index;
  $("clips").querySelectorAll("tr").forEach((row, i) => row.classList.toggle("selected", i === index + 1));
  $("emotion").textContent = result.emotion;
  $("confidence").textContent = percent(result.confidence);
  $("clip").textContent = `${result.file}, ${result.duration.toFixed(2)} s`;
  drawChart(result.probabilities, result.emotion);
  drawWaveform(result.visuals.waveform);
  drawSpectrogram(result.visuals.spectrogram);
  drawWindows(result.windows);
}

function drawChart(probabilities, top) {
  const svg = $("chart");
  const entries = Object.entries(probabilities).sort((a, b) => a[0].localeCompare(b[0]));
  const rowHeight = 30, labelWidth = 150, width = svg.clientWidth || 800, barSpace = width - labelWidth - 70;
  svg.setAttribute("viewBox", `0 0 ${width} ${entries.length * rowHeight}`);
  svg.style.height = `${entries.length * rowHeight}px`;
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  entries.forEach(([name, p], i) => {
    const y = i * rowHeight;
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", 0); text.setAttribute("y", y + 19); text.textContent = name;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("class", name === top ? "bar top" : "bar");
    bar.setAttribute("x", labelWidth); bar.setAttribute("y", y + 5);
    bar.setAttribute("width", Math.max(1, p * barSpace)); bar.setAttribute("height", rowHeight - 10);
    bar.setAttribute("rx", 3); bar.dataset.label = name; bar.dataset.probability = p;
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", labelWidth + Math.max(1, p * barSpace) + 6); value.setAttribute("y", y + 19);
    value.textContent = percent(p);
    svg.append(text, bar, value);
  });
}

function fitCanvas(canvas) {
  canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1);
  canvas.height = canvas.clientHeight * (window.devicePixelRatio || 1);
  return canvas.getContext("2d");
}

function drawWaveform(wave) {
  const canvas = $("waveform"), ctx = fitCanvas(canvas), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#7aa2ff";
  const n = wave.min.length;
  for (let i = 0; i < n; i++) {
    const x = (i + 0.5) * w / n;
    ctx.beginPath();
    ctx.moveTo(x, h / 2 - wave.max[i] * h / 2);
    ctx.lineTo(x, h / 2 - wave.min[i] * h / 2 + 1);
    ctx.stroke();
  }
}

// A perceptual dark-to-bright colour map (after matplotlib's magma): [position, r, g, b].
const COLOURS = [[0, 0, 0, 4], [0.25, 80, 18, 123], [0.5, 182, 54, 121], [0.75, 251, 136, 97], [1, 252, 253, 191]];
function colour(t) {
  for (let i = 1; i < COLOURS.length; i++) {
    const [p1, ...c1] = COLOURS[i], [p0, ...c0] = COLOURS[i - 1];
    if (t <= p1) return c0.map((c, k) => c + (c1[k] - c) * (t - p0) / (p1 - p0));
  }
  return COLOURS[COLOURS.length - 1].slice(1);
}

function drawSpectrogram(spec) {
  const canvas = $("spectrogram"), ctx = fitCanvas(canvas);
  const bands = spec.db.length, frames = spec.db[0].length;
  const image = ctx.createImageData(frames, bands);
  for (let b = 0; b < bands; b++) {
    for (let f = 0; f < frames; f++) {
      const [r, g, bl] = colour(Math.min(1, Math.max(0, (spec.db[b][f] + 80) / 80)));
      const at = ((bands - 1 - b) * frames + f) * 4;  // low frequencies at the bottom
      image.data.set([r, g, bl, 255], at);
    }
  }
  const scratch = document.createElement("canvas");
  scratch.width = frames; scratch.height = bands;
  scratch.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

function drawWindows(windows) {
  const box = $("windows");
  box.replaceChildren();
  if (!windows || windows.length < 2) return;
  const heading = document.createElement("h2");
  heading.textContent = `The ${windows.length} windows (their mean is the answer above)`;
  const table = document.createElement("table");
  table.innerHTML = "<tr><th>window (s)</th><th>emotion</th><th>probability</th></tr>";
  for (const w of windows) {
    const [best, p] = Object.entries(w.probabilities).sort((a, b) => b[1] - a[1])[0];
    const row = table.insertRow();
    row.insertCell().textContent = `${w.start.toFixed(2)}–${w.end.toFixed(2)}`;
    row.insertCell().textContent = best;
    row.insertCell().textContent = percent(p);
  }
  box.append(heading, table);
}

// Microphone: record with MediaRecorder, decode in the browser, upload as 16-bit PCM WAV.
let recorder = null, recordings = 0;

function wavFile(buffer) {
  const samples = buffer.getChannelData(0), rate = buffer.sampleRate;
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([view], { type: "audio/wav" });
}

async function toggleRecording() {
  const button = $("record");
  if (recorder) { recorder.stop(); return; }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError(`The microphone is not available: ${err.message || err}`);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => chunks.push(event.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((track) => track.stop());
    recorder = null;
    button.textContent = "● Record"; button.classList.remove("recording");
    const context = new AudioContext();
    try {
      const decoded = await context.decodeAudioData(await new Blob(chunks).arrayBuffer());
      recordings += 1;
      await addClips([{ blob: wavFile(decoded), name: recordings === 1 ? "recording.wav" : `recording-${recordings}.wav` }]);
    } catch (err) {
      showError(`Could not decode the recording: ${err.message || err}`);
    } finally {
      context.close();
    }
  };
  recorder.start();
  button.textContent = "■ Stop"; button.classList.add("recording");
  setStatus("Recording… speak, then press Stop.");
}

$("file").addEventListener("change", (event) => {
  const files = [...event.target.files];
  if (files.length) addClips(files.map((file) => ({ blob: file, name: file.name })));
  event.target.value = "";
});
// Toggling "one speaker" scores the clips shown again, the other way.
$("one-speaker").addEventListener("change", () => {
  $("clear").hidden = !oneSpeaker();
  if (clips.length) scoring = scoring.then(() => score(clips, shown));
});
$("clear").addEventListener("click", () => {
  scoring = scoring.then(() => {
    clips = []; results = [];
    $("result").hidden = true; $("error").hidden = true;
    setStatus("No clips: choose or record the speaker's clips.");
  });
});
$("record").addEventListener("click", toggleRecording);
showModel().catch((err) => { $("model-info").textContent = `Could not load the model's description: ${err}`; });
