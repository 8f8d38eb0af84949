// The explorer's Plotly figure, built from explorer.json (lib/eval/explorer.ts)
// by the page (explorer.js) and by notebook 05 (lib/util/notebook.ts), so
// both draw the same picture. Plain JavaScript without imports.

/** One colour per class (Tableau 10). */
export const CLASS_COLOURS = [
  "#e15759",
  "#59a14f",
  "#b07aa1",
  "#f28e2b",
  "#4e79a7",
  "#edc948",
  "#9c755f",
  "#76b7b2",
  "#ff9da7",
  "#bab0ac",
];

/**
 * The title of principal-component axis `k` (0-based), with its share of the variance.
 * @param {number[]} explained
 * @param {number} k
 * @returns {string}
 */
export function axisTitle(explained, k) {
  return `PC${k + 1} (${(100 * explained[k]).toFixed(0)}% of variance)`;
}

/**
 * Hover text of a point: its true class, and its predicted class with probability.
 * @param {{ label: number; predicted: number; probabilities: number[]; row: number }} point
 * @param {string[]} labels
 * @returns {string}
 */
export function pointText(point, labels) {
  const verdict = point.predicted === point.label ? "right" : "wrong";
  const p = (100 * point.probabilities[point.predicted]).toFixed(0);
  return `row ${point.row}: ${labels[point.label]}<br>predicted ${labels[point.predicted]} ${p}% (${verdict})`;
}

/**
 * The scatter of the points, one trace per true class; each marker's
 * customdata is its index in data.points.
 * @param {{ split: string; labels: string[]; explained: number[]; points: { x: number; y: number; label: number; predicted: number; probabilities: number[]; row: number }[] }} data
 * @returns {{ data: object[]; layout: object }}
 */
export function explorerFigure(data) {
  const traces = data.labels.map((name, c) => {
    const indices = data.points.flatMap((p, i) => (p.label === c ? [i] : []));
    return {
      type: "scatter",
      mode: "markers",
      name,
      x: indices.map((i) => data.points[i].x),
      y: indices.map((i) => data.points[i].y),
      customdata: indices,
      text: indices.map((i) => pointText(data.points[i], data.labels)),
      hovertemplate: "%{text}<extra></extra>",
      marker: {
        size: 7,
        color: CLASS_COLOURS[c % CLASS_COLOURS.length],
        opacity: 0.75,
        symbol: indices.map((i) => (data.points[i].predicted === c ? "circle" : "x")),
      },
    };
  });
  return {
    data: traces,
    layout: {
      title: { text: `${data.split}: penultimate-layer features, PCA (x: predicted wrongly)` },
      xaxis: { title: { text: axisTitle(data.explained, 0) }, zeroline: false },
      yaxis: { title: { text: axisTitle(data.explained, 1) }, zeroline: false },
      hovermode: "closest",
      width: 760,
      height: 560,
      legend: { title: { text: "true class" } },
    },
  };
}
