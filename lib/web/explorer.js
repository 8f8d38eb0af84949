// The explorer page: loads the model's explorer.json (written by `deno task
// explore`), draws the Plotly scatter of explorer_figure.js, and shows the
// face and probabilities of the point under the pointer.
import { explorerFigure } from "/emotion-cnn.js";
import { say } from "/page.js";

/** Show one point's face, verdict and probability bars beside the plot. */
function showPoint(data, index) {
  const point = data.points[index];
  document.getElementById("detail").hidden = false;
  document.getElementById("face").src = point.face;
  const right = point.predicted === point.label;
  document.getElementById("verdict").textContent = `${data.split} row ${point.row}: ${data.labels[point.label]}, ` +
    `predicted ${data.labels[point.predicted]} (${right ? "right" : "wrong"})`;
  document.getElementById("bars").replaceChildren(...data.labels.map((label, c) => {
    const bar = document.createElement("div");
    bar.className = "bar";
    const p = point.probabilities[c];
    bar.innerHTML = `<span>${label}</span><div style="width:${(150 * p).toFixed(1)}px"></div><span>${
      (100 * p).toFixed(1)
    }%</span>`;
    return bar;
  }));
  document.body.dataset.shown = String(point.row);
}

async function init() {
  const response = await fetch("/model/explorer.json");
  if (!response.ok) {
    return say("This model has no explorer data yet: run `deno task explore --model MODEL_DIR`, then reload.", true);
  }
  const data = await response.json();
  const figure = explorerFigure(data);
  const plot = document.getElementById("plot");
  await Plotly.newPlot(plot, figure.data, figure.layout);
  plot.on("plotly_hover", (event) => showPoint(data, event.points[0].customdata));
  plot.on("plotly_click", (event) => showPoint(data, event.points[0].customdata));
  const wrong = data.points.filter((p) => p.predicted !== p.label).length;
  say(`${data.points.length} ${data.split} faces, ${wrong} predicted wrongly. Hover over a point.`);
  document.body.dataset.points = String(data.points.length);
  document.body.dataset.ready = "true";
}

init().catch((err) => say(`Could not load the explorer: ${err.message}`, true));
