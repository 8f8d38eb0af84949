// The page's logic: load the face detector and our emotion model, then for
// each photo: scale it down, detect faces, crop each to the model's gray
// input, classify, and draw boxes, labels and a probability chart per face.
import * as faceapi from "/vendor/face-api.esm.js";

const tf = faceapi.tf;
const MAX_SIDE = 1024; // large photos are scaled down before detection
const MARGIN = 0.15; // border added around each detected face box
const status = document.getElementById("status");
const canvas = document.getElementById("photo");
const facesPanel = document.getElementById("faces");
let model, metadata;

function say(text, isError = false) {
  status.textContent = text;
  status.className = isError ? "error" : "";
  document.body.dataset.state = isError ? "error" : "ok";
}

async function init() {
  tf.setWasmPaths("/vendor/wasm/");
  await tf.setBackend("wasm");
  await tf.ready();
  await faceapi.nets.tinyFaceDetector.loadFromUri("/face-models");
  metadata = await (await fetch("/model/metadata.json")).json();
  model = await tf.loadLayersModel("/model/model.json");
  say(
    `Ready: ${metadata.architecture} model, ${metadata.labels.length} emotions, tfjs ${tf.version.tfjs} on ${tf.getBackend()}.`,
  );
  document.body.dataset.ready = "true";
}

/** The photo drawn on the page canvas, scaled so its longer side is at most MAX_SIDE. */
async function drawPhoto(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
}

/** A square gray crop of a box (grown by MARGIN), as the model's normalized input. */
function faceInput(box) {
  const size = metadata.inputSize;
  const side = Math.max(box.width, box.height) * (1 + 2 * MARGIN);
  const crop = new OffscreenCanvas(size, size);
  const ctx = crop.getContext("2d");
  ctx.drawImage(
    canvas,
    box.x + box.width / 2 - side / 2,
    box.y + box.height / 2 - side / 2,
    side,
    side,
    0,
    0,
    size,
    size,
  );
  const rgba = ctx.getImageData(0, 0, size, size).data;
  const gray = new Float32Array(size * size);
  for (let i = 0; i < gray.length; i++) {
    const luma = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
    gray[i] = Math.round(luma) * metadata.normalization.scale + metadata.normalization.offset;
  }
  return gray;
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

async function analyse(file) {
  facesPanel.replaceChildren();
  if (!file.type.startsWith("image/")) {
    canvas.width = canvas.height = 0;
    return say(`"${file.name}" is not an image (${file.type || "unknown type"}). Pick a JPEG or PNG photo.`, true);
  }
  try {
    await drawPhoto(file);
  } catch {
    canvas.width = canvas.height = 0;
    return say(`"${file.name}" could not be read as an image.`, true);
  }
  say("Looking for faces…");
  const detections = await faceapi.detectAllFaces(
    canvas,
    new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.4 }),
  );
  if (detections.length === 0) {
    return say(`No face found in "${file.name}". Try a photo with a clear, front-facing face.`, true);
  }
  const size = metadata.inputSize;
  const inputs = detections.map((d) => faceInput(d.box));
  const batch = new Float32Array(inputs.length * size * size);
  inputs.forEach((x, i) => batch.set(x, i * size * size));
  const output = tf.tidy(() => model.predict(tf.tensor4d(batch, [inputs.length, size, size, 1])));
  const rows = await output.array();
  output.dispose();
  const ctx = canvas.getContext("2d");
  const line = Math.max(2, canvas.width / 300);
  rows.forEach((row, i) => {
    const { x, y, width, height } = detections[i].box;
    const best = row.indexOf(Math.max(...row));
    const label = `${metadata.labels[best]} ${(100 * row[best]).toFixed(0)}%`;
    ctx.strokeStyle = ctx.fillStyle = "#ffcc00";
    ctx.lineWidth = line;
    ctx.strokeRect(x, y, width, height);
    ctx.font = `bold ${Math.max(14, canvas.width / 40)}px sans-serif`;
    ctx.fillText(label, x, y > 20 ? y - 6 : y + height + 18);
    const card = document.createElement("div");
    card.className = "face";
    card.innerHTML = `<h3>Face ${i + 1}: <span class="emotion">${label}</span></h3><div class="chart"></div>`;
    facesPanel.append(card);
    const probabilities = Object.fromEntries(metadata.labels.map((l, c) => [l, row[c]]));
    new vega.View(vega.parse(vegaLite.compile(probabilityChart(probabilities)).spec), {
      renderer: "svg",
      container: card.querySelector(".chart"),
    }).run();
  });
  say(`${rows.length} face${rows.length > 1 ? "s" : ""} found in "${file.name}".`);
  document.body.dataset.faces = String(rows.length);
}

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
