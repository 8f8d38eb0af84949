/**
 * The data behind the interactive explorer (the /explorer page and notebook
 * 05): a test set's penultimate-layer features projected to 2-D with PCA,
 * each point with its true class, predicted probabilities and face.
 */
import * as tf from "@tensorflow/tfjs";
import { facePixels, type FaceSet, IMAGE_SIZE, selectRows } from "../data/dataset.ts";
import { encodeGrayJpeg } from "../data/images.ts";
import { encodeBase64 } from "../util/base64.ts";
import { predictSet } from "./evaluate.ts";
import { applyTemperature } from "./calibration.ts";
import { argmaxRows } from "./metrics.ts";

/** One test face in the explorer. */
export interface ExplorerPoint {
  /** Row in its split. */
  row: number;
  /** Its first two principal components. */
  x: number;
  y: number;
  label: number;
  predicted: number;
  /** Calibrated class probabilities, rounded to 4 digits. */
  probabilities: number[];
  /** The 48x48 face as a JPEG data URL. */
  face: string;
}

/** What the explorer page loads (`MODEL/explorer.json`, written by `deno task explore`). */
export interface ExplorerData {
  split: string;
  labels: string[];
  /** Fraction of the features' variance along each of the two axes. */
  explained: [number, number];
  points: ExplorerPoint[];
}

/**
 * A model that outputs the features its classifier sees: the last Dense
 * layer's input, or, for an ensemble (members averaged), every member's,
 * concatenated.
 */
export function featureModel(model: tf.LayersModel): tf.LayersModel {
  const last = model.outputs[0].sourceLayer;
  const heads = last.getClassName() === "Dense"
    ? [last]
    : (last.input as tf.SymbolicTensor[]).map((t) => t.sourceLayer);
  const features = heads.map((head) => {
    if (head.getClassName() !== "Dense") throw new Error(`featureModel: expected a Dense head, found ${head.name}`);
    return head.input as tf.SymbolicTensor;
  });
  const output = features.length === 1
    ? features[0]
    : tf.layers.concatenate({ name: "explorer_features" }).apply(features) as tf.SymbolicTensor;
  return tf.model({ inputs: model.inputs, outputs: output });
}

/**
 * The top `k` principal components of `n` rows of `d` features (row-major):
 * the rows projected on them ([n, k], row-major) and the fraction of the
 * total variance each explains. Power iteration with deflation on the
 * covariance matrix.
 */
export function principalComponents(
  features: Float32Array,
  n: number,
  d: number,
  k = 2,
): { projection: Float32Array; explained: number[] } {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += features[i * d + j] / n;
  const covariance = new Float64Array(d * d);
  const centred = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) centred[j] = features[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ca = centred[a] / Math.max(1, n - 1);
      for (let b = 0; b < d; b++) covariance[a * d + b] += ca * centred[b];
    }
  }
  let total = 0;
  for (let j = 0; j < d; j++) total += covariance[j * d + j];
  const components: Float64Array[] = [];
  const explained: number[] = [];
  for (let c = 0; c < k; c++) {
    let v = Float64Array.from({ length: d }, (_, j) => 1 + ((j * 7919 + c) % 13) / 13);
    let eigenvalue = 0;
    for (let iteration = 0; iteration < 500; iteration++) {
      const next = new Float64Array(d);
      for (let a = 0; a < d; a++) {
        let sum = 0;
        for (let b = 0; b < d; b++) sum += covariance[a * d + b] * v[b];
        next[a] = sum;
      }
      const norm = Math.hypot(...next) || 1;
      for (let a = 0; a < d; a++) next[a] /= norm;
      const change = Math.abs(norm - eigenvalue);
      [v, eigenvalue] = [next, norm];
      if (change <= 1e-12 * Math.max(1, norm)) break;
    }
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) covariance[a * d + b] -= eigenvalue * v[a] * v[b];
    components.push(v);
    explained.push(total > 0 ? eigenvalue / total : 0);
  }
  const projection = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    components.forEach((v, c) => {
      let sum = 0;
      for (let j = 0; j < d; j++) sum += (features[i * d + j] - mean[j]) * v[j];
      projection[i * k + c] = sum;
    });
  }
  return { projection, explained };
}

/** Explorer data for rows `rows` of a split: features, PCA, calibrated probabilities and faces. */
export async function explorerData(
  model: tf.LayersModel,
  set: FaceSet,
  rows: number[],
  options: { split: string; labels: readonly string[]; temperature?: number },
): Promise<ExplorerData> {
  const subset = selectRows(set, rows);
  const classes = options.labels.length;
  const features = featureModel(model);
  const width = features.outputs[0].shape[1] as number;
  const { projection, explained } = principalComponents(await predictSet(features, subset), subset.n, width);
  const probabilities = applyTemperature(await predictSet(model, subset), classes, options.temperature ?? 1);
  const predicted = argmaxRows(probabilities, classes);
  const points: ExplorerPoint[] = [];
  for (let i = 0; i < subset.n; i++) {
    const p = Array.from(probabilities.subarray(i * classes, (i + 1) * classes), (v) => Math.round(v * 1e4) / 1e4);
    const jpeg = await encodeGrayJpeg({ width: IMAGE_SIZE, height: IMAGE_SIZE, data: facePixels(subset, i) });
    points.push({
      row: rows[i],
      x: projection[2 * i],
      y: projection[2 * i + 1],
      label: subset.labels[i],
      predicted: predicted[i],
      probabilities: p,
      face: `data:image/jpeg;base64,${encodeBase64(jpeg)}`,
    });
  }
  return { split: options.split, labels: [...options.labels], explained: [explained[0], explained[1]], points };
}
