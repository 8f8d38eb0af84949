/**
 * Charts as Vega-Lite specs (shown inline in notebooks) and rendered to
 * SVG and PNG files (vega's headless SVG renderer, then resvg-wasm).
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import { axisTitle, CLASS_COLOURS } from "../core/explorer_figure.js";

// deno-lint-ignore no-explicit-any
export type VegaLiteSpec = Record<string, any>;

const SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json";

/** What a learning curve plots of one epoch (history.csv's rows have these and more). */
export interface CurvePoint {
  epoch: number;
  loss: number;
  accuracy: number;
  val_loss: number;
  val_accuracy: number;
  /** Accuracy on a run's `--watch` face folder, where it has one. */
  watch_accuracy?: number;
}

/** Train and validation accuracy and loss per epoch, side by side (and a watched folder's accuracy, if any). */
export function learningCurvesSpec(history: CurvePoint[], title = "Learning curves"): VegaLiteSpec {
  const values = history.flatMap((h) => [
    { epoch: h.epoch, metric: "accuracy", split: "train", value: h.accuracy },
    { epoch: h.epoch, metric: "accuracy", split: "validation", value: h.val_accuracy },
    { epoch: h.epoch, metric: "loss", split: "train", value: h.loss },
    { epoch: h.epoch, metric: "loss", split: "validation", value: h.val_loss },
    ...(h.watch_accuracy === undefined
      ? []
      : [{ epoch: h.epoch, metric: "accuracy", split: "watched", value: h.watch_accuracy }]),
  ]);
  const panel = (metric: string) => ({
    title: metric,
    width: 300,
    height: 220,
    transform: [{ filter: `datum.metric === '${metric}'` }],
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "epoch", type: "quantitative", axis: { tickMinStep: 1 } },
      y: { field: "value", type: "quantitative", title: metric, scale: { zero: false } },
      color: { field: "split", type: "nominal", title: null },
    },
  });
  return { $schema: SCHEMA, title, data: { values }, hconcat: [panel("accuracy"), panel("loss")] };
}

/** Each face track's smoothed probabilities over a video's time, a panel per track, a line per class. */
export function emotionTimelineSpec(
  points: { time: number; track: number; probabilities: Record<string, number> }[],
  labels: readonly string[],
  title = "Emotions over time",
): VegaLiteSpec {
  const values = points.flatMap(({ time, track, probabilities }) =>
    labels.map((emotion) => ({ time, track: `face #${track}`, emotion, p: probabilities[emotion] }))
  );
  return {
    $schema: SCHEMA,
    title,
    data: { values },
    facet: { row: { field: "track", type: "nominal", title: null } },
    spec: {
      width: 560,
      height: 140,
      mark: { type: "line", interpolate: "monotone" },
      encoding: {
        x: { field: "time", type: "quantitative", title: "seconds" },
        y: { field: "p", type: "quantitative", title: "probability", scale: { domain: [0, 1] } },
        color: { field: "emotion", type: "nominal", sort: labels, scale: { range: CLASS_COLOURS } },
      },
    },
  };
}

/** Confusion matrix heatmap; `normalized` shows each row as fractions of the true class. */
export function confusionMatrixSpec(
  matrix: number[][],
  labels: readonly string[],
  normalized = false,
): VegaLiteSpec {
  const values = matrix.flatMap((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return row.map((count, p) => ({
      true: labels[t],
      predicted: labels[p],
      value: normalized ? count / total : count,
    }));
  });
  const max = Math.max(...values.map((v) => v.value));
  return {
    $schema: SCHEMA,
    title: normalized ? "Confusion matrix (row-normalized)" : "Confusion matrix (counts)",
    data: { values },
    width: 280,
    height: 280,
    encoding: {
      x: { field: "predicted", type: "nominal", sort: labels, title: "predicted" },
      y: { field: "true", type: "nominal", sort: labels, title: "true" },
    },
    layer: [
      {
        mark: "rect",
        encoding: { color: { field: "value", type: "quantitative", scale: { scheme: "blues" }, legend: null } },
      },
      {
        mark: { type: "text", fontSize: 11 },
        encoding: {
          text: { field: "value", type: "quantitative", format: normalized ? ".2f" : "d" },
          color: { condition: { test: `datum.value > ${max / 2}`, value: "white" }, value: "black" },
        },
      },
    ],
  };
}

/** Both confusion matrices (counts and row-normalized) side by side. */
export function confusionMatricesSpec(matrix: number[][], labels: readonly string[]): VegaLiteSpec {
  const { $schema, ...counts } = confusionMatrixSpec(matrix, labels, false);
  const { $schema: _, ...normalized } = confusionMatrixSpec(matrix, labels, true);
  return { $schema, hconcat: [counts, normalized], resolve: { scale: { color: "independent" } } };
}

/** Images per class in each split, as grouped bars. */
export function classDistributionSpec(
  countsBySplit: Record<string, number[]>,
  labels: readonly string[],
): VegaLiteSpec {
  const values = Object.entries(countsBySplit).flatMap(([split, counts]) =>
    counts.map((count, c) => ({ split, emotion: labels[c], count }))
  );
  return {
    $schema: SCHEMA,
    title: "Images per class",
    data: { values },
    mark: "bar",
    width: { step: 12 },
    height: 220,
    encoding: {
      column: { field: "emotion", type: "nominal", sort: labels, title: null },
      x: { field: "split", type: "nominal", axis: null },
      y: { field: "count", type: "quantitative" },
      color: { field: "split", type: "nominal" },
      tooltip: [{ field: "split" }, { field: "emotion" }, { field: "count" }],
    },
  };
}

/** Precision, recall and F1 per class as grouped bars. */
export function perClassSpec(
  perClass: Record<string, { precision: number; recall: number; f1: number }>,
): VegaLiteSpec {
  const values = Object.entries(perClass).flatMap(([emotion, m]) =>
    (["precision", "recall", "f1"] as const).map((metric) => ({ emotion, metric, value: m[metric] }))
  );
  return {
    $schema: SCHEMA,
    title: "Per-class metrics",
    data: { values },
    mark: "bar",
    width: { step: 10 },
    height: 200,
    encoding: {
      column: { field: "emotion", type: "nominal", sort: Object.keys(perClass), title: null },
      x: { field: "metric", type: "nominal", axis: null },
      y: { field: "value", type: "quantitative", scale: { domain: [0, 1] } },
      color: { field: "metric", type: "nominal" },
    },
  };
}

/** Reliability diagrams side by side: accuracy against confidence per bin, the diagonal being perfect calibration. */
export function reliabilitySpec(
  diagrams: Record<string, { from: number; to: number; count: number; confidence: number; accuracy: number }[]>,
): VegaLiteSpec {
  const values = Object.entries(diagrams).flatMap(([name, bins]) =>
    bins.filter((b) => b.count > 0).map((b) => ({ name, ...b, mid: (b.from + b.to) / 2 }))
  );
  return {
    $schema: SCHEMA,
    title: "Reliability: accuracy against confidence (PrivateTest)",
    data: { values },
    facet: { column: { field: "name", type: "nominal", title: null } },
    spec: {
      width: 220,
      height: 220,
      layer: [
        {
          mark: { type: "bar", opacity: 0.8 },
          encoding: {
            x: { field: "from", type: "quantitative", scale: { domain: [0, 1] }, title: "confidence" },
            x2: { field: "to" },
            y: { field: "accuracy", type: "quantitative", scale: { domain: [0, 1] }, title: "accuracy" },
            tooltip: [{ field: "count" }, { field: "confidence", format: ".3f" }, { field: "accuracy", format: ".3f" }],
          },
        },
        {
          data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
          mark: { type: "line", color: "#888", strokeDash: [4, 4] },
          encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
        },
      ],
    },
  } as unknown as VegaLiteSpec;
}

/** Parameters of each architecture, as bars. */
export function parametersSpec(rows: { architecture: string; parameters: number }[]): VegaLiteSpec {
  return {
    $schema: SCHEMA,
    title: "Parameters per architecture",
    width: 360,
    height: 24 * rows.length,
    data: { values: rows },
    mark: "bar",
    encoding: {
      y: { field: "architecture", type: "nominal", sort: null, title: null },
      x: { field: "parameters", type: "quantitative", title: "trainable and non-trainable parameters" },
    },
  };
}

/**
 * Candidates on two sets: one line per model through its prior strengths
 * (each point labelled with its strength), accuracy on `x` against accuracy
 * on `y` in percent, with a dashed rule at each of `bars` (the bars to pass).
 */
export function tradeoffSpec(
  points: { model: string; strength: number; x: number; y: number }[],
  titles: { x: string; y: string },
  bars: { x?: number; y?: number } = {},
): VegaLiteSpec {
  const encoding = {
    x: { field: "x", type: "quantitative", title: titles.x, scale: { zero: false } },
    y: { field: "y", type: "quantitative", title: titles.y, scale: { zero: false } },
    color: { field: "model", type: "nominal", sort: null, legend: { orient: "bottom", columns: 1, labelLimit: 400 } },
    order: { field: "strength", type: "quantitative" },
  };
  const rules = (["x", "y"] as const).flatMap((axis) =>
    bars[axis] === undefined ? [] : [{
      data: { values: [{ [axis]: bars[axis] }] },
      mark: { type: "rule", strokeDash: [4, 4], color: "gray" },
      encoding: { [axis]: { field: axis, type: "quantitative" } },
    }]
  );
  return {
    $schema: SCHEMA,
    title: `${titles.y} against ${titles.x}, each model at its prior strengths`,
    width: 420,
    height: 300,
    layer: [
      { data: { values: points }, mark: { type: "line", point: true }, encoding },
      {
        data: { values: points },
        mark: { type: "text", dx: 12, dy: -6, fontSize: 9 },
        encoding: { x: encoding.x, y: encoding.y, text: { field: "strength", type: "quantitative" } },
      },
      ...rules,
    ],
  };
}

/** The explorer's scatter as Vega-Lite, in the Plotly figure's colours: the picture beside it for viewers without Plotly. */
export function explorerScatterSpec(
  data: {
    split: string;
    labels: string[];
    explained: number[];
    points: { x: number; y: number; label: number; predicted: number }[];
  },
): VegaLiteSpec {
  const values = data.points.map((p) => ({
    x: p.x,
    y: p.y,
    class: data.labels[p.label],
    prediction: p.predicted === p.label ? "right" : "wrong",
  }));
  return {
    $schema: SCHEMA,
    title: `${data.split}: penultimate-layer features, PCA`,
    width: 460,
    height: 340,
    data: { values },
    mark: { type: "point", filled: true, size: 30, opacity: 0.75 },
    encoding: {
      x: { field: "x", type: "quantitative", title: axisTitle(data.explained, 0) },
      y: { field: "y", type: "quantitative", title: axisTitle(data.explained, 1) },
      color: {
        field: "class",
        type: "nominal",
        sort: data.labels,
        title: "true class",
        scale: { domain: data.labels, range: data.labels.map((_, c) => CLASS_COLOURS[c % CLASS_COLOURS.length]) },
      },
      shape: { field: "prediction", type: "nominal", scale: { range: ["circle", "cross"] } },
    },
  };
}

/** Escape text for SVG. */
function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);
}

/**
 * A grid of images (data URLs) as SVG: a title per row on the left (no
 * margin when no row has one), a title per column on top, each image drawn
 * in a `cell` x `cellHeight` box (square by default; pixelated), with an
 * optional caption under it.
 */
export function imageGridSvg(
  rows: { title: string; images: { url: string; caption?: string }[] }[],
  columnTitles: string[],
  cell = 96,
  cellHeight = cell,
): string {
  const left = rows.some((row) => row.title) ? 90 : 8, top = 24, gap = 8, captionHeight = 16;
  const width = left + columnTitles.length * (cell + gap);
  const rowHeight = cellHeight + captionHeight + gap;
  const height = top + rows.length * rowHeight;
  const text = (x: number, y: number, t: string, anchor = "middle") =>
    `<text x="${x}" y="${y}" font-family="DejaVu Sans" font-size="12" text-anchor="${anchor}">${escapeXml(t)}</text>`;
  const parts = columnTitles.map((t, c) => text(left + c * (cell + gap) + cell / 2, 16, t));
  rows.forEach((row, r) => {
    const y = top + r * rowHeight;
    parts.push(text(left - 8, y + cellHeight / 2, row.title, "end"));
    row.images.forEach((image, c) => {
      const x = left + c * (cell + gap);
      parts.push(
        `<image x="${x}" y="${y}" width="${cell}" height="${cellHeight}" image-rendering="optimizeSpeed" ` +
          `href="${image.url}"/>`,
      );
      if (image.caption) parts.push(text(x + cell / 2, y + cellHeight + 12, image.caption));
    });
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<rect width="100%" height="100%" fill="white"/>${parts.join("")}</svg>`;
}

/** Render a Vega-Lite spec to SVG text. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec as vl.TopLevelSpec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

const FONT_FILES = [
  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
  "/usr/share/fonts/TTF/DejaVuSans.ttf",
  "/System/Library/Fonts/Helvetica.ttc",
];
let resvgReady: Promise<Uint8Array[]> | undefined;

/** Start resvg's WASM once and find a font for chart text (charts render without text if none). */
function initResvg(): Promise<Uint8Array[]> {
  resvgReady ??= (async () => {
    const entry = new URL(import.meta.resolve("@resvg/resvg-wasm")).pathname;
    await initWasm(Deno.readFileSync(entry.replace(/[^/]+$/, "index_bg.wasm")));
    const fonts: Uint8Array[] = [];
    for (const file of FONT_FILES) {
      try {
        fonts.push(Deno.readFileSync(file));
        break;
      } catch { /* try the next one */ }
    }
    if (fonts.length === 0) console.warn("charts: no DejaVu Sans font found; PNG text will be missing");
    return fonts;
  })();
  return resvgReady;
}

/** Rasterize SVG text to PNG bytes at `scale` x. */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  const fontBuffers = await initResvg();
  const resvg = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: scale },
    font: { fontBuffers, loadSystemFonts: false, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
  });
  const png = resvg.render().asPng();
  resvg.free();
  return png;
}

/** Write `<basePath>.svg` and `<basePath>.png` for a spec. */
export async function saveChart(spec: VegaLiteSpec, basePath: string): Promise<void> {
  const svg = await renderSvg(spec);
  Deno.writeTextFileSync(`${basePath}.svg`, svg);
  Deno.writeFileSync(`${basePath}.png`, await svgToPng(svg));
}
