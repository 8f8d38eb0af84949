/**
 * Saving and loading models as folders: tfjs layers format (`model.json` +
 * `weights.bin`, loadable by `tf.loadLayersModel` in a browser too) plus
 * `metadata.json`; training checkpoints add the optimizer state. Folders are
 * written beside the target and renamed into place, so a crash never leaves
 * a half-written checkpoint.
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { EMOTIONS } from "./labels.ts";
import { NORMALIZATION } from "./data.ts";
import { exists } from "./paths.ts";

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
}

/** Metadata for a model trained by this project. */
export function makeMetadata(
  model: tf.LayersModel,
  architecture: string,
  training: Record<string, unknown>,
  metrics: Record<string, unknown> = {},
): ModelMetadata {
  return {
    labels: [...EMOTIONS],
    inputSize: model.inputs[0].shape[1] as number,
    channels: 1,
    normalization: { ...NORMALIZATION },
    architecture,
    parameters: model.countParams(),
    training,
    metrics,
  };
}

/** Write `files` (name -> bytes or JSON value) as folder `dir`, replacing it atomically. */
export function writeFolderAtomic(dir: string, files: Record<string, Uint8Array | unknown>): void {
  const tmp = `${dir}.tmp-${Deno.pid}`;
  const old = `${dir}.old-${Deno.pid}`;
  if (exists(tmp)) Deno.removeSync(tmp, { recursive: true });
  Deno.mkdirSync(tmp, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const bytes = content instanceof Uint8Array
      ? content
      : new TextEncoder().encode(JSON.stringify(content, null, 2) + "\n");
    Deno.writeFileSync(join(tmp, name), bytes);
  }
  const hadOld = exists(dir);
  if (hadOld) Deno.renameSync(dir, old);
  Deno.renameSync(tmp, dir);
  if (hadOld) Deno.removeSync(old, { recursive: true });
}

/** The model's topology and weights as tfjs layers-format files. */
export async function modelFiles(model: tf.LayersModel): Promise<Record<string, Uint8Array | unknown>> {
  let files: Record<string, Uint8Array | unknown> = {};
  await model.save(tf.io.withSaveHandler((artifacts) => {
    const weightData = tf.io.concatenateArrayBuffers(
      Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData!],
    );
    files = {
      "model.json": {
        format: "layers-model",
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs }],
      },
      "weights.bin": new Uint8Array(weightData),
    };
    return Promise.resolve({ modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) });
  }));
  return files;
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

/** Load a model folder saved by `saveModel` (one call; the backend must be initialised). */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const read = (name: string) => {
    try {
      return Deno.readFileSync(join(dir, name));
    } catch {
      throw new Error(`${dir}: not a saved model folder (missing ${name}); pass the folder holding model.json`);
    }
  };
  const modelJson = JSON.parse(new TextDecoder().decode(read("model.json")));
  const metadata = JSON.parse(new TextDecoder().decode(read("metadata.json"))) as ModelMetadata;
  const weightSpecs = modelJson.weightsManifest.flatMap((group: tf.io.WeightsManifestConfig[number]) => group.weights);
  const weightData = modelJson.weightsManifest
    .flatMap((group: tf.io.WeightsManifestConfig[number]) => group.paths)
    .map((path: string) => read(path));
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: modelJson.modelTopology,
    weightSpecs,
    weightData: tf.io.concatenateArrayBuffers(weightData.map((b: Uint8Array) => b.slice().buffer)),
  }));
  return { model, metadata, dir };
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
  const out = weights.map((w) => ({
    name: w.name,
    data: Float32Array.from(w.tensor.dataSync()),
    shape: w.tensor.shape,
  }));
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

/** Read optimizer state written by `optimizerFiles` from a checkpoint folder. */
export function loadOptimizerFiles(dir: string): NamedWeightData[] {
  const specs = JSON.parse(Deno.readTextFileSync(join(dir, "optimizer.json"))) as { name: string; shape: number[] }[];
  const bytes = Deno.readFileSync(join(dir, "optimizer.bin"));
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  let offset = 0;
  return specs.map(({ name, shape }) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = all.slice(offset, offset + size);
    offset += size;
    return { name, shape, data };
  });
}
