/**
 * One data-parallel training worker (see `parallel.ts`). It holds a copy of
 * the model and optimizer on its own WASM backend, computes gradients on its
 * share of each batch, and applies the averaged gradients it is sent back, so
 * every worker's weights stay identical.
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "./backend.ts";
import "./batchnorm.ts"; // registers the fast-gradient BatchNormalization for modelFromJSON
import { batchTensor, type FaceSet } from "./data.ts";
import { augmentBatch, DEFAULT_AUGMENT } from "./augment.ts";
import { NUM_CLASSES } from "./labels.ts";
import { seededRandom } from "./random.ts";
import { smoothedCrossEntropy } from "./losses.ts";
import type { WorkerReply, WorkerRequest } from "./parallel.ts";
import { readOptimizerWeights, writeOptimizerWeights } from "./model_io.ts";

let model: tf.LayersModel;
let optimizer: tf.AdamOptimizer;
let train: FaceSet;
let loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;
let augment = true;

function reply(message: WorkerReply, transfer: Transferable[] = []) {
  self.postMessage(message, transfer);
}

/** Forward and backward pass on `rows`; gradients flattened in trainable-weight order. */
function computeGradients(rows: number[], seed: number) {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const random = seededRandom(seed);
  return tf.tidy(() => {
    const images = batchTensor(train, rows);
    const x = augment ? augmentBatch(images, DEFAULT_AUGMENT, random) : images;
    const y = tf.oneHot(tf.tensor1d(rows.map((r) => train.labels[r]), "int32"), NUM_CLASSES);
    let correct = 0;
    const { value, grads } = tf.variableGrads(() => {
      const predicted = model.apply(x, { training: true }) as tf.Tensor;
      correct = tf.equal(predicted.argMax(-1), y.argMax(-1)).sum().dataSync()[0];
      return loss(y, predicted) as tf.Scalar;
    }, variables);
    const flat = tf.concat(variables.map((v) => grads[v.name].reshape([-1])));
    return { loss: value.dataSync()[0], correct, gradients: flat.dataSync() as Float32Array };
  });
}

/** Apply averaged flat gradients with the worker's Adam. */
function applyGradients(flat: Float32Array) {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  tf.tidy(() => {
    let offset = 0;
    optimizer.applyGradients(variables.map((v) => {
      const tensor = tf.tensor(flat.subarray(offset, offset + v.size), v.shape);
      offset += v.size;
      return { name: v.name, tensor };
    }));
  });
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  try {
    switch (request.type) {
      case "init": {
        await initBackend();
        model = await tf.models.modelFromJSON(request.topology as tf.io.ModelJSON["modelTopology"] as never);
        model.setWeights(request.weights.map((w) => tf.tensor(w.data, w.shape)));
        optimizer = tf.train.adam(request.lr);
        loss = smoothedCrossEntropy(request.labelSmoothing);
        augment = request.augment;
        train = request.train;
        reply({ type: "ready" });
        break;
      }
      case "gradients": {
        const { loss, correct, gradients } = computeGradients(request.rows, request.seed);
        reply({ type: "gradients", loss, correct, n: request.rows.length, gradients }, [
          gradients.buffer as ArrayBuffer,
        ]);
        break;
      }
      case "apply": {
        (optimizer as unknown as { learningRate: number }).learningRate = request.lr;
        applyGradients(request.gradients);
        reply({ type: "applied" });
        break;
      }
      case "getState": {
        const weights = model.getWeights().map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
        const optimizerWeights = await readOptimizerWeights(optimizer);
        reply({ type: "state", weights, optimizerWeights, numTensors: tf.memory().numTensors });
        break;
      }
      case "setState": {
        model.setWeights(request.weights.map((w) => tf.tensor(w.data, w.shape)));
        if (request.optimizerWeights) {
          await writeOptimizerWeights(optimizer, request.optimizerWeights);
        }
        reply({ type: "ready" });
        break;
      }
    }
  } catch (err) {
    reply({ type: "error", message: (err as Error).stack ?? String(err) });
  }
};
