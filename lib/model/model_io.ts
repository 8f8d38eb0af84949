/**
 * Saving and loading models as folders: tfjs layers format (`model.json` +
 * `weights.bin`, loadable by `tf.loadLayersModel` in a browser too) plus
 * `metadata.json`; training checkpoints add the optimizer state. Folders are
 * written beside the target and renamed into place, so a crash never leaves
 * a half-written checkpoint.
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { EMOTIONS } from "../data/labels.ts";
import { type LabelSet, NORMALIZATION } from "../data/dataset.ts";
import { exists } from "../util/paths.ts";
import { readJson, regularFile, writeFolderAtomic } from "../util/files.ts";
import { metadataProblem } from "../core/face_pipeline.js";
import { foldBatchNorm } from "../core/fold.js";
import { keepFilterTransforms } from "../backend/conv.ts";

/** What a model folder says about how to use the model. */
export interface ModelMetadata {
  labels: string[];
  inputSize: number;
  channels: 1;
  normalization: { scale: number; offset: number; description: string };
  architecture: string;
  parameters: number;
  training: Record<string, unknown>;
  metrics: Record<string, unknown>;
  /** Temperature scaling fitted on PublicTest (`deno task calibrate`); predictions use softmax(log p / T). */
  temperature?: number;
  /** Whose labels the model learnt on FER2013's images: FER2013's own or FER+'s (evaluate reads the same). */
  labelSet?: LabelSet;
  /** Each class's share of the training images, by which `ship --balance` shifted the output biases. */
  classPrior?: number[];
  /** The strength of that shift, when not 1 (`ship --balance-strength`). */
  balanceStrength?: number;
  /** A shipped model's version (`ship` writes the date and the run it came from). */
  version?: string;
  /** SHA-256 of weights.bin, hex (`ship` writes it); checked when the model loads. */
  weightsSha256?: string;
}

/** The prior strength a saved model's output biases carry: `ship --balance-strength S` (1 for `--balance`), 0 as trained. */
export function priorStrength(metadata: Pick<ModelMetadata, "classPrior" | "balanceStrength">): number {
  return metadata.classPrior ? metadata.balanceStrength ?? 1 : 0;
}

/** SHA-256 of `bytes`, hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice().buffer));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Metadata for a model trained by this project, on FER2013's classes unless `labels` says otherwise. */
export function makeMetadata(
  model: tf.LayersModel,
  architecture: string,
  training: Record<string, unknown>,
  metrics: Record<string, unknown> = {},
  labels: readonly string[] = EMOTIONS,
  labelSet: LabelSet = "fer2013",
): ModelMetadata {
  return {
    labels: [...labels],
    labelSet,
    inputSize: model.inputs[0].shape[1] as number,
    channels: 1,
    normalization: { ...NORMALIZATION },
    architecture,
    parameters: model.countParams(),
    training,
    metrics,
  };
}

/**
 * The model's topology and weights as tfjs layers-format files; with
 * `float16`, each weight stored as a half-precision float (tfjs's float16
 * quantization, which tf.loadLayersModel decodes): half the download.
 */
export async function modelFiles(
  model: tf.LayersModel,
  { float16 = false } = {},
): Promise<Record<string, Uint8Array | unknown>> {
  let files: Record<string, Uint8Array | unknown> = {};
  await model.save(tf.io.withSaveHandler((artifacts) => {
    const weightData = tf.io.concatenateArrayBuffers(
      Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData!],
    );
    const weights = float16
      ? artifacts.weightSpecs!.map((spec) => ({ ...spec, quantization: { dtype: "float16" as const } }))
      : artifacts.weightSpecs;
    files = {
      "model.json": {
        format: "layers-model",
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights }],
      },
      "weights.bin": float16
        ? new Uint8Array(toFloat16(new Float32Array(weightData)).buffer)
        : new Uint8Array(weightData),
    };
    return Promise.resolve({ modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) });
  }));
  return files;
}

/** Float32 values as IEEE half-precision bits, rounded to nearest even (overflow to infinity, underflow to zero). */
export function toFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i], sign = (x >>> 16) & 0x8000, exponent = (x >>> 23) & 0xff, mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 112; // rebias 127 -> 15
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    // Normal halves keep 10 mantissa bits; subnormal ones shift the implicit 1 in and keep fewer.
    const shift = e > 0 ? 13 : 14 - e;
    if (shift > 24) {
      out[i] = sign;
      continue;
    }
    const full = e > 0 ? mantissa : mantissa | 0x800000;
    let half = (e > 0 ? e << 10 : 0) | (full >>> shift);
    const rest = full & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half++;
    out[i] = sign | half;
  }
  return out;
}

/** Bytes per stored weight of a manifest entry: 4 for float32, fewer when quantized. */
function bytesPerWeight(spec: tf.io.WeightsManifestEntry): number {
  const dtype = spec.quantization?.dtype;
  return dtype === "uint8" ? 1 : dtype === "float16" || dtype === "uint16" ? 2 : 4;
}

/** Save a model folder: model.json, weights.bin, metadata.json (+ `extra` files). */
export async function saveModel(
  dir: string,
  model: tf.LayersModel,
  metadata: ModelMetadata,
  extra: Record<string, Uint8Array | unknown> = {},
): Promise<void> {
  writeFolderAtomic(dir, { ...(await modelFiles(model)), "metadata.json": metadata, ...extra });
}

/** A loaded model folder. */
export interface LoadedModel {
  model: tf.LayersModel;
  metadata: ModelMetadata;
  dir: string;
}

/**
 * Load a model folder saved by `saveModel` (one call; the backend must be
 * initialised). With `fold`, for prediction only: BatchNorm folded into the
 * convolutions (`foldBatchNorm`), the same probabilities in fewer kernels,
 * each filter's Winograd transform kept between calls (`keepFilterTransforms`).
 */
export async function loadModel(dir: string, { fold = false } = {}): Promise<LoadedModel> {
  if (!exists(join(dir, "model.json"))) {
    throw new Error(`${dir}: not a saved model folder (missing model.json); pass the folder holding model.json`);
  }
  const modelJson = readJson<tf.io.ModelJSON>(join(dir, "model.json"));
  const metadata = readJson<ModelMetadata>(join(dir, "metadata.json"));
  if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
    throw new Error(`${join(dir, "model.json")} is damaged: no modelTopology or weightsManifest`);
  }
  const weightSpecs = modelJson.weightsManifest.flatMap((group) => group.weights);
  const weightData = modelJson.weightsManifest.flatMap((group) => group.paths).map((path) => {
    if (exists(join(dir, path))) regularFile(join(dir, path));
    try {
      return Deno.readFileSync(join(dir, path));
    } catch {
      throw new Error(`${join(dir, path)} is missing`);
    }
  });
  const expected = weightSpecs.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1) * bytesPerWeight(w), 0);
  const actual = weightData.reduce((n, b) => n + b.length, 0);
  if (actual !== expected) {
    const files = modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => join(dir, p)).join(", ");
    throw new Error(`${files} is damaged: ${actual} bytes where model.json describes ${expected}`);
  }
  if (
    metadata.weightsSha256 && weightData.length === 1 && (await sha256Hex(weightData[0])) !== metadata.weightsSha256
  ) {
    throw new Error(
      `${
        join(dir, modelJson.weightsManifest[0].paths[0])
      } is damaged: its SHA-256 is not metadata.json's weightsSha256`,
    );
  }
  const buffer = tf.io.concatenateArrayBuffers(weightData.map((b: Uint8Array) => b.slice().buffer));
  const bad = nonFiniteWeights(weightSpecs, buffer);
  if (bad) {
    const files = modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => join(dir, p)).join(", ");
    throw new Error(`${files} is damaged: ${bad} of its weights are not finite numbers`);
  }
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData: buffer }),
    );
  } catch (error) {
    throw new Error(`${join(dir, "model.json")} is damaged: ${(error as Error).message}`);
  }
  try {
    await checkModel(model, metadata, dir);
  } catch (error) {
    model.dispose();
    throw error;
  }
  if (!fold) return { model, metadata, dir };
  const folded = foldBatchNorm(tf, model) as tf.LayersModel;
  model.dispose();
  keepFilterTransforms(folded);
  return { model: folded, metadata, dir };
}

/** How many float weights of a weights buffer are NaN or infinite (damaged bytes; ReLU can hide them from a probe). */
function nonFiniteWeights(specs: tf.io.WeightsManifestEntry[], buffer: ArrayBuffer): number {
  let offset = 0, bad = 0;
  for (const spec of specs) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.quantization?.dtype === "float16") {
      const values = new Uint16Array(buffer.slice(offset, offset + 2 * count));
      for (let i = 0; i < count; i++) if ((values[i] & 0x7c00) === 0x7c00) bad++;
    } else if (!spec.quantization && (spec.dtype ?? "float32") === "float32") {
      const values = new Float32Array(buffer, offset, count);
      for (let i = 0; i < count; i++) if (!Number.isFinite(values[i])) bad++;
    }
    offset += count * bytesPerWeight(spec);
  }
  return bad;
}

/**
 * Refuse a model whose metadata.json does not fit it (face_pipeline.js's
 * `metadataProblem`), or whose weights give non-finite probabilities on a
 * plain gray probe image (damaged weights).
 */
async function checkModel(model: tf.LayersModel, metadata: ModelMetadata, dir: string): Promise<void> {
  const inputShape = model.inputs[0].shape;
  const problem = metadataProblem(metadata, { inputShape, classes: model.outputs[0].shape[1] as number });
  if (problem) throw new Error(`${join(dir, "metadata.json")}: ${problem}`);
  const size = metadata.inputSize, { scale, offset } = metadata.normalization;
  const output = tf.tidy(() => model.predict(tf.fill([1, size, size, 1], 128 * scale + offset)) as tf.Tensor);
  const row = Array.from(await output.data() as Float32Array);
  output.dispose();
  const total = row.reduce((a, b) => a + b, 0);
  if (!row.every(Number.isFinite) || Math.abs(total - 1) > 1e-3) {
    throw new Error(
      `${join(dir, "weights.bin")} is damaged: the model's output on a gray probe image is not a probability ` +
        `distribution (${row.map((v) => v.toPrecision(3)).join(", ")})`,
    );
  }
}

/** A named array of weights, as plain data (for files and messages between workers). */
export interface NamedWeightData {
  name: string;
  data: Float32Array;
  shape: number[];
}

/** The optimizer's state (iteration count, moments) as plain data. */
export async function readOptimizerWeights(optimizer: tf.Optimizer): Promise<NamedWeightData[]> {
  const weights = await optimizer.getWeights();
  const out = await Promise.all(weights.map(async (w) => ({
    name: w.name,
    data: Float32Array.from(await w.tensor.data()),
    shape: w.tensor.shape,
  })));
  // getWeights() makes a new tensor for the iteration count; the moments are the optimizer's own variables.
  for (const w of weights) if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
  return out;
}

/** Set an optimizer's state from `readOptimizerWeights` data. */
export async function writeOptimizerWeights(optimizer: tf.Optimizer, weights: NamedWeightData[]): Promise<void> {
  const tensors = weights.map((w) => ({ name: w.name, tensor: tf.tensor(w.data, w.shape) }));
  await optimizer.setWeights(tensors); // copies them into the optimizer's variables
  tf.dispose(tensors.map((t) => t.tensor));
}

/** Optimizer state as checkpoint files: `optimizer.json` (names, shapes) and `optimizer.bin` (float32). */
export function optimizerFiles(weights: NamedWeightData[]): Record<string, Uint8Array | unknown> {
  const specs = weights.map((w) => ({ name: w.name, shape: w.shape, dtype: "float32" }));
  const bin = new Float32Array(weights.reduce((n, w) => n + w.data.length, 0));
  let offset = 0;
  for (const w of weights) {
    bin.set(w.data, offset);
    offset += w.data.length;
  }
  return { "optimizer.json": specs, "optimizer.bin": new Uint8Array(bin.buffer) };
}

/** Read optimizer state written by `optimizerFiles` from a checkpoint folder; a damaged one is refused, named. */
export function loadOptimizerFiles(dir: string): NamedWeightData[] {
  const specs = readJson<{ name: string; shape: number[] }[]>(join(dir, "optimizer.json"));
  const size = (s: { name?: unknown; shape?: unknown }) =>
    typeof s?.name === "string" && Array.isArray(s.shape) ? s.shape.reduce((a, b) => a * b, 1) : NaN;
  const sizes = Array.isArray(specs) ? specs.map(size) : [NaN];
  if (!sizes.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new Error(`${join(dir, "optimizer.json")} is damaged: not a list of { name, shape }`);
  }
  const bytes = Deno.readFileSync(join(dir, "optimizer.bin"));
  const needed = 4 * sizes.reduce((a, b) => a + b, 0);
  if (bytes.length !== needed) {
    throw new Error(
      `${join(dir, "optimizer.bin")} is damaged: ${bytes.length} bytes where optimizer.json's shapes need ${needed}`,
    );
  }
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  let offset = 0;
  return specs.map(({ name, shape }, i) => {
    const data = all.slice(offset, offset + sizes[i]);
    offset += sizes[i];
    return { name, shape, data };
  });
}
