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

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
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

/** The optimizer's state (moments, iteration count) as files for a checkpoint. */
export async function optimizerFiles(optimizer: tf.Optimizer): Promise<Record<string, Uint8Array | unknown>> {
  const { data, specs } = await tf.io.encodeWeights(await optimizer.getWeights());
  return { "optimizer.json": specs, "optimizer.bin": new Uint8Array(data) };
}

/** Restore optimizer state saved by `optimizerFiles` from a checkpoint folder. */
export async function restoreOptimizer(dir: string, optimizer: tf.Optimizer): Promise<void> {
  const specs = JSON.parse(Deno.readTextFileSync(join(dir, "optimizer.json")));
  const data = Deno.readFileSync(join(dir, "optimizer.bin"));
  const tensors = tf.io.decodeWeights(data.slice().buffer, specs);
  await optimizer.setWeights(specs.map((s: { name: string }) => ({ name: s.name, tensor: tensors[s.name] })));
}
