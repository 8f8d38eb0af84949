// The page's logic: load the browser build's EmotionRecognizer (/emotion-cnn.js,
// `deno task build:browser`: lib/core/ bundled), then for each photo: its
// faces and emotions from `recognizer.detect`, and boxes, labels and a
// probability chart per face drawn. Detection, crops and answers are
// face_pipeline.js's, the file `deno task predict` runs, so a photo gets the
// same answer in both. With
// "show where the model looks" ticked, each face gets its SmoothGrad saliency
// map (saliency.js, the code notebook 05 runs) drawn over it. "Use camera" and "Open a video" run the live view
// (live.js) on the same canvas.
import * as faceapi from "/vendor/face-api.esm.js"; // for its bundled tfjs (4.22, with the WASM backend)
import {
  EmotionRecognizer,
  FACE_SETTINGS,
  faceCrop,
  faceMark,
  heatColour,
  modelInput,
  registerFilterGradient,
  saliencyMaps,
  toGray,
} from "/emotion-cnn.js";
import { say } from "/page.js";
import { liveView } from "/live.js";

const tf = faceapi.tf;
const canvas = document.getElementById("photo");
const facesPanel = document.getElementById("faces");
const saliencyToggle = document.getElementById("saliency");
const detectorChoice = document.getElementById("detector");
let recognizer, model, metadata, detector, lastFile;

/** The recognizer for a detector choice: the served model, its BlazeFace models; the one before is freed. */
async function loadRecognizer(choice) {
  const next = await EmotionRecognizer.load({ tf, model: "/model/", detectorUrl: "/detector/", detector: choice });
  recognizer?.dispose();
  recognizer = next;
  ({ model, metadata, detectors: detector } = recognizer);
}

/** Photos are drawn with their longer side at most this many pixels. */
const MAX_DRAW_SIDE = 1024;

/** Load a classic script (the WebGPU backend's UMD build). */
function loadScript(src) {
  return new Promise((done, fail) => {
    const script = Object.assign(document.createElement("script"), { src, onload: done });
    script.onerror = () => fail(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

/**
 * Run on WebGPU when the browser has a hardware GPU adapter, else on WASM.
 * `?backend=wasm` forces WASM; `?backend=webgpu` takes any adapter, even a
 * software one. The WebGPU backend's UMD build registers itself into the
 * `tf` it finds on globalThis: face-api's bundled tfjs (the same 4.22).
 */
async function chooseBackend() {
  const wanted = new URLSearchParams(location.search).get("backend") ?? "auto";
  if (wanted !== "wasm" && navigator.gpu) {
    try {
      const adapter = await navigator.gpu.requestAdapter();
      const software = adapter && (adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter);
      if (adapter && (wanted === "webgpu" || !software)) {
        globalThis.tf = { ...tf };
        await loadScript("/vendor/tf-backend-webgpu.min.js");
        if (await tf.setBackend("webgpu")) return;
      }
    } catch (err) {
      console.warn(`WebGPU unavailable, using WASM: ${err.message}`);
    }
  }
  tf.setWasmPaths("/vendor/wasm/");
  await tf.setBackend("wasm");
}

async function init() {
  registerFilterGradient(tf);
  await chooseBackend();
  await tf.ready();
  detectorChoice.value = FACE_SETTINGS.detector;
  await loadRecognizer(detectorChoice.value); // BatchNorm folded into the convolutions, as deno task predict does
  say(
    `Ready: ${metadata.architecture} model, ${metadata.labels.length} emotions, tfjs ${tf.version.tfjs} on ${tf.getBackend()}.`,
  );
  document.body.dataset.backend = tf.getBackend();
  document.body.dataset.ready = "true";
}

/** The photo's pixels, upright, at full resolution: { width, height, data } (RGBA). */
async function readPhoto(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const full = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = full.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = ctx.getImageData(0, 0, full.width, full.height);
  return { width: full.width, height: full.height, data, canvas: full };
}

/** Draw the photo on the page, its longer side at most MAX_DRAW_SIDE; returns the drawing scale. */
function drawPhoto(photo) {
  const scale = Math.min(1, MAX_DRAW_SIDE / Math.max(photo.width, photo.height));
  canvas.width = Math.round(photo.width * scale);
  canvas.height = Math.round(photo.height * scale);
  canvas.getContext("2d").drawImage(photo.canvas, 0, 0, canvas.width, canvas.height);
  return scale;
}

function probabilityChart(probabilities) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    width: 220,
    height: 130,
    data: { values: metadata.labels.map((emotion) => ({ emotion, p: probabilities[emotion] })) },
    mark: "bar",
    encoding: {
      y: { field: "emotion", type: "nominal", sort: metadata.labels, title: null },
      x: { field: "p", type: "quantitative", scale: { domain: [0, 1] }, title: "probability" },
      color: { value: "#3b82f6" },
    },
  };
}

/**
 * Draw a saliency map (size x size, 0..1) over the face's crop, its box, on
 * the page's canvas, in heatColour's colours.
 */
function drawSaliency(ctx, map, size, face, drawScale) {
  const heat = new OffscreenCanvas(size, size);
  const image = new ImageData(size, size);
  map.forEach((v, p) => {
    image.data.set(heatColour(v), 4 * p);
  });
  heat.getContext("2d").putImageData(image, 0, 0);
  const [x, y, side] = face.box;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(heat, x * drawScale, y * drawScale, side * drawScale, side * drawScale);
}

/** Counts analyses, so one that a newer photo (or a toggle) has replaced stops and draws nothing. */
let analysisCount = 0;

async function analyse(file) {
  live.stop();
  liveButtons(false);
  const analysis = ++analysisCount;
  const replaced = () => analysis !== analysisCount;
  lastFile = file;
  facesPanel.replaceChildren();
  delete document.body.dataset.results;
  delete document.body.dataset.saliency;
  if (!file.type.startsWith("image/")) {
    canvas.width = canvas.height = 0;
    return say(`"${file.name}" is not an image (${file.type || "unknown type"}). Pick a JPEG or PNG photo.`, true);
  }
  let photo;
  try {
    photo = await readPhoto(file);
  } catch {
    if (replaced()) return;
    canvas.width = canvas.height = 0;
    return say(`"${file.name}" could not be read as an image.`, true);
  }
  if (replaced()) return;
  const drawScale = drawPhoto(photo);
  say("Looking for faces…");
  const faces = await recognizer.detect(photo);
  if (replaced()) return;
  if (faces.length === 0) {
    return say(`No face found in "${file.name}". Try a photo with a clear, front-facing face.`, true);
  }
  const ctx = canvas.getContext("2d");
  if (saliencyToggle.checked) {
    const size = metadata.inputSize;
    const gray = toGray(photo);
    const batch = modelInput(faces.map((f) => faceCrop(gray, f, size)), metadata.normalization);
    const input = tf.tensor4d(batch, [faces.length, size, size, 1]);
    const bests = faces.map((f) => metadata.labels.indexOf(f.emotion));
    say("Computing where the model looks…");
    let maps;
    try {
      maps = await saliencyMaps(tf, model, input, bests);
    } catch (err) {
      input.dispose();
      if (replaced()) return;
      return say(`Could not compute where the model looks: ${err.message}`, true);
    }
    if (replaced()) return input.dispose();
    faces.forEach((f, i) =>
      drawSaliency(ctx, maps.subarray(i * size * size, (i + 1) * size * size), size, f, drawScale)
    );
    globalThis.saliencyMaps = Array.from(maps);
    document.body.dataset.saliency = String(faces.length);
    input.dispose();
  }
  faces.forEach((face, i) => {
    const box = face.box.map((v) => v * drawScale);
    const mark = faceMark(box, face.emotion, face.probabilities[face.emotion], canvas);
    const label = mark.text;
    ctx.strokeStyle = ctx.fillStyle = "#ffcc00";
    ctx.lineWidth = mark.stroke;
    ctx.strokeRect(...box);
    ctx.font = `bold ${mark.font}px sans-serif`;
    ctx.fillText(label, mark.x, mark.y);
    const card = document.createElement("div");
    card.className = "face";
    card.innerHTML = `<h3>Face ${i + 1}: <span class="emotion">${label}</span></h3><div class="chart"></div>`;
    facesPanel.append(card);
    new vega.View(vega.parse(vegaLite.compile(probabilityChart(face.probabilities)).spec), {
      renderer: "svg",
      container: card.querySelector(".chart"),
    }).run();
  });
  say(`${faces.length} face${faces.length > 1 ? "s" : ""} found in "${file.name}".`);
  document.body.dataset.results = JSON.stringify(faces);
  document.body.dataset.faces = String(faces.length);
}

const live = liveView({
  tf,
  detector: () => detector,
  model: () => model,
  metadata: () => metadata,
  canvas,
  bars: facesPanel,
  timeline: document.getElementById("timeline"),
  smoothing: document.getElementById("smoothing"),
  say,
});
const [pauseButton, stopButton] = ["pause", "stop"].map((id) => document.getElementById(id));

/** Enable Pause and Stop while the live view runs. */
function liveButtons(on) {
  pauseButton.disabled = stopButton.disabled = !on;
  pauseButton.textContent = "Pause";
}

/** Run the live view on a camera stream or a video file, once the models are loaded. */
async function goLive(source, what) {
  if (document.body.dataset.ready !== "true") return say("Still loading the models; try again in a moment.", true);
  facesPanel.replaceChildren();
  delete document.body.dataset.results;
  try {
    await live.start(await source());
    liveButtons(true);
  } catch (err) {
    say(`${what} could not be opened: ${err.message}`, true);
  }
}

document.getElementById("camera").addEventListener(
  "click",
  () => goLive(() => navigator.mediaDevices.getUserMedia({ video: true, audio: false }), "The camera"),
);
document.getElementById("video").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  if (!file.type.startsWith("video/")) {
    return say(`"${file.name}" is not a video (${file.type || "unknown type"}).`, true);
  }
  goLive(() => file, `"${file.name}"`);
});
pauseButton.addEventListener("click", () => (pauseButton.textContent = live.pause() ? "Go on" : "Pause"));
stopButton.addEventListener("click", () => (live.stop("Stopped."), liveButtons(false)));
saliencyToggle.addEventListener("change", () => lastFile && analyse(lastFile));
detectorChoice.addEventListener("change", async () => {
  await loadRecognizer(detectorChoice.value);
  if (lastFile) analyse(lastFile);
});
document.getElementById("file").addEventListener("change", (e) => e.target.files[0] && analyse(e.target.files[0]));
const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => (e.preventDefault(), drop.classList.add("over")));
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) analyse(e.dataTransfer.files[0]);
});
init().catch((err) => say(`Could not load the models: ${err.message}`, true));
