/**
 * Calibration: how far the predicted probabilities are from the accuracy
 * they claim (expected calibration error, reliability bins), and temperature
 * scaling (Guo et al. 2017), one number fitted on PublicTest that softens or
 * sharpens every prediction without changing any argmax; `calibrateModel`
 * is `deno task calibrate`'s whole workflow. And class balancing (logit
 * adjustment, Menon et al. 2021), which does change the argmax: the output
 * biases shifted so that no class wins for being common in training
 * (`deno task ship --balance`).
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { calibrate } from "../core/face_pipeline.js";
import { classCounts, type FaceSet, type FerData } from "../data/dataset.ts";
import { loadModel, type ModelMetadata } from "../model/model_io.ts";
import { loadDataset, trainedDataPath } from "../data/load.ts";
import { readJson, writeFileAtomic } from "../util/files.ts";
import { reliabilitySpec, saveChart } from "../util/charts.ts";
import { predictSet } from "./evaluate.ts";

/** Row-major probabilities [n, classes] with temperature `t` applied to every row. */
export function applyTemperature(probabilities: Float32Array, classes: number, t: number): Float32Array {
  const out = new Float32Array(probabilities.length);
  for (let r = 0; r < probabilities.length / classes; r++) {
    out.set(calibrate(probabilities.subarray(r * classes, (r + 1) * classes), t), r * classes);
  }
  return out;
}

/** Each class's share of `set`'s images; refused when a class has none (it could not be balanced). */
export function classPrior(set: FaceSet, labels: readonly string[]): number[] {
  const counts = classCounts(set.labels, labels.length);
  const missing = labels.filter((_, c) => counts[c] === 0);
  if (missing.length) throw new Error(`--balance: no training images of ${missing.join(", ")}; cannot balance`);
  return counts.map((count) => count / set.n);
}

/**
 * Shift the bias of every softmax output layer of `model` (each member's, in
 * an ensemble) by -`strength` times the log of its class's training share
 * (centred): at strength 1 the model scores each class as if all were
 * equally common; between 0 and 1 part way; below 0 toward the prior (for a
 * net trained with the prior in its loss). Returns how many layers it
 * changed; refuses a model with none.
 */
export function balanceClasses(model: tf.LayersModel, prior: readonly number[], strength = 1): number {
  const outputs = model.layers.filter((layer) => {
    const config = layer.getConfig();
    return layer.getClassName() === "Dense" && config.activation === "softmax" && config.units === prior.length;
  });
  if (outputs.length === 0) throw new Error(`--balance: the model has no softmax output of ${prior.length} classes`);
  const logs = prior.map(Math.log);
  const mean = logs.reduce((a, b) => a + b, 0) / logs.length;
  for (const layer of outputs) {
    const [kernel, bias] = layer.getWeights();
    const shifted = tf.tidy(() => bias.add(tf.tensor1d(logs.map((l) => strength * (mean - l)))));
    layer.setWeights([kernel, shifted]);
    shifted.dispose();
  }
  return outputs.length;
}

/**
 * The training class shares of the model whose metadata is `metadata`: those
 * it records (a balanced model), else those of the data it was trained on
 * (its recorded source when that is still there, else the default FER2013),
 * with its labels.
 */
export async function trainingPrior(metadata: ModelMetadata): Promise<number[]> {
  if (metadata.classPrior) return metadata.classPrior;
  const recorded = (metadata.training as { data?: string }).data;
  const data = await loadDataset(trainedDataPath(recorded), { labels: metadata.labelSet });
  return classPrior(data.splits.Training, metadata.labels);
}

/** Mean negative log-likelihood of the true classes. */
function nll(probabilities: Float32Array, labels: Uint8Array, classes: number): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) sum -= Math.log(Math.max(probabilities[i * classes + labels[i]], 1e-12));
  return sum / labels.length;
}

/** The temperature (0.05..20) that minimizes the NLL of `labels`: golden-section search on log T. */
export function fitTemperature(probabilities: Float32Array, labels: Uint8Array, classes: number): number {
  const loss = (logT: number) => nll(applyTemperature(probabilities, classes, Math.exp(logT)), labels, classes);
  let a = Math.log(0.05), b = Math.log(20);
  const ratio = (Math.sqrt(5) - 1) / 2;
  let c = b - ratio * (b - a), d = a + ratio * (b - a);
  let fc = loss(c), fd = loss(d);
  for (let i = 0; i < 40; i++) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - ratio * (b - a), fc = loss(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + ratio * (b - a), fd = loss(d);
    }
  }
  return Math.exp((a + b) / 2);
}

/** One bin of a reliability diagram: predictions whose confidence (top probability) falls in [from, to). */
export interface ReliabilityBin {
  from: number;
  to: number;
  count: number;
  confidence: number;
  accuracy: number;
}

/** Predictions grouped by confidence into `bins` equal-width bins (empty bins included, with zeros). */
export function reliabilityBins(
  probabilities: Float32Array,
  labels: Uint8Array,
  classes: number,
  bins = 15,
): ReliabilityBin[] {
  const out = Array.from(
    { length: bins },
    (_, b) => ({ from: b / bins, to: (b + 1) / bins, count: 0, confidence: 0, accuracy: 0 }),
  );
  for (let i = 0; i < labels.length; i++) {
    const row = probabilities.subarray(i * classes, (i + 1) * classes);
    let best = 0;
    for (let c = 1; c < classes; c++) if (row[c] > row[best]) best = c;
    const bin = out[Math.min(bins - 1, Math.floor(row[best] * bins))];
    bin.count++;
    bin.confidence += row[best];
    bin.accuracy += best === labels[i] ? 1 : 0;
  }
  for (const bin of out) {
    if (bin.count) [bin.confidence, bin.accuracy] = [bin.confidence / bin.count, bin.accuracy / bin.count];
  }
  return out;
}

/** Expected calibration error: the count-weighted mean gap between confidence and accuracy over the bins. */
export function expectedCalibrationError(
  probabilities: Float32Array,
  labels: Uint8Array,
  classes: number,
  bins = 15,
): number {
  return reliabilityBins(probabilities, labels, classes, bins)
    .reduce((sum, b) => sum + (b.count / labels.length) * Math.abs(b.confidence - b.accuracy), 0);
}

/** What `calibrateModel` found: the temperature, and PrivateTest's ECE before and after it. */
export interface CalibrationResult {
  temperature: number;
  fittedOn: "PublicTest";
  PrivateTest: { eceBefore: number; eceAfter: number };
}

/**
 * Fit the temperature of the model in `dir` on PublicTest, store it in its
 * metadata.json (which predict, recognizeEmotions and the page apply), and
 * write `dir/calibration/`: calibration.json and reliability diagrams of
 * PrivateTest before and after.
 */
export async function calibrateModel(dir: string, data: FerData): Promise<CalibrationResult> {
  const { model, metadata } = await loadModel(dir, { fold: true });
  const classes = metadata.labels.length;
  const [publicTest, privateTest] = [data.splits.PublicTest, data.splits.PrivateTest];
  const fitOn = await predictSet(model, publicTest, { progressLabel: "PublicTest" });
  const temperature = fitTemperature(fitOn, publicTest.labels, classes);
  const raw = await predictSet(model, privateTest, { progressLabel: "PrivateTest" });
  model.dispose();
  const scaled = applyTemperature(raw, classes, temperature);
  const eceBefore = expectedCalibrationError(raw, privateTest.labels, classes);
  const eceAfter = expectedCalibrationError(scaled, privateTest.labels, classes);
  const metadataPath = join(dir, "metadata.json");
  const saved = readJson<Record<string, unknown>>(metadataPath);
  writeFileAtomic(metadataPath, JSON.stringify({ ...saved, temperature }, null, 2) + "\n");
  const out = join(dir, "calibration");
  Deno.mkdirSync(out, { recursive: true });
  const result: CalibrationResult = { temperature, fittedOn: "PublicTest", PrivateTest: { eceBefore, eceAfter } };
  writeFileAtomic(join(out, "calibration.json"), JSON.stringify(result, null, 2) + "\n");
  await saveChart(
    reliabilitySpec({
      "before (T = 1)": reliabilityBins(raw, privateTest.labels, classes),
      [`after (T = ${temperature.toFixed(2)})`]: reliabilityBins(scaled, privateTest.labels, classes),
    }),
    join(out, "reliability"),
  );
  return result;
}
