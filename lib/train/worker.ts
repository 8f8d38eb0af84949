/**
 * One data-parallel training worker (see `parallel.ts`). It holds a copy of
 * the model and optimizer on its own WASM backend, computes gradients on its
 * share of each batch, and applies the averaged gradients it is sent back, so
 * every worker's weights stay identical.
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend/backend.ts";
import "../model/layers.ts"; // registers the fast-gradient BatchNormalization for modelFromJSON
import { batchTensor, type FaceSet } from "../data/dataset.ts";
import { augmentBatch, DEFAULT_AUGMENT } from "../data/augment.ts";
import { NUM_CLASSES } from "../data/labels.ts";
import { seededRandom } from "../util/random.ts";
import { smoothedCrossEntropy } from "./losses.ts";
import type { WorkerReply, WorkerRequest } from "./parallel.ts";
import { ADAM_DEFAULTS, FlatAdam } from "./adam.ts";

let model: tf.LayersModel;
let optimizer: FlatAdam;
/** The trainable weights, flat in `model.trainableWeights` order: the optimizer's copy. */
let weights: Float32Array;
let train: FaceSet;
let loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;
let augment = true;

function reply(message: WorkerReply, transfer: Transferable[] = []) {
  self.postMessage(message, transfer);
}

function trainableVariables(): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** Forward and backward pass on `rows`; gradients flattened in trainable-weight order. */
function computeGradients(rows: number[], seed: number) {
  const variables = trainableVariables();
  const random = seededRandom(seed);
  const gradients = new Float32Array(weights.length);
  // The Float32Array stays outside the tidy: tidy walks whatever its function returns,
  // element by element, looking for tensors (100 ms for 300k numbers).
  const { loss: lossValue, correct } = tf.tidy(() => {
    const images = batchTensor(train, rows);
    const x = augment ? augmentBatch(images, DEFAULT_AUGMENT, random) : images;
    const y = tf.oneHot(tf.tensor1d(rows.map((r) => train.labels[r]), "int32"), NUM_CLASSES);
    let correct = 0;
    const { value, grads } = tf.variableGrads(() => {
      const predicted = model.apply(x, { training: true }) as tf.Tensor;
      correct = tf.equal(predicted.argMax(-1), y.argMax(-1)).sum().dataSync()[0];
      return loss(y, predicted) as tf.Scalar;
    }, variables);
    // Copied one by one: tf.concat of ~30 gradients costs more than the whole optimizer step.
    let offset = 0;
    for (const v of variables) {
      gradients.set(grads[v.name].dataSync() as Float32Array, offset);
      offset += v.size;
    }
    return { loss: value.dataSync()[0], correct };
  });
  return { loss: lossValue, correct, gradients };
}

/** Apply averaged flat gradients: one Adam pass over the flat weights, then each variable takes its slice. */
function applyGradients(gradients: Float32Array, lr: number) {
  optimizer.step(weights, gradients, lr);
  let offset = 0;
  for (const v of trainableVariables()) {
    const value = tf.tensor(weights.subarray(offset, offset + v.size), v.shape);
    v.assign(value); // the variable takes a reference to the new data
    value.dispose();
    offset += v.size;
  }
}

/** The flat copy of the trainable weights, read from the model. */
function readTrainableWeights(): Float32Array {
  const variables = trainableVariables();
  const flat = new Float32Array(variables.reduce((n, v) => n + v.size, 0));
  let offset = 0;
  for (const v of variables) {
    flat.set(v.dataSync() as Float32Array, offset);
    offset += v.size;
  }
  return flat;
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  try {
    switch (request.type) {
      case "init": {
        await initBackend();
        model = await tf.models.modelFromJSON(request.topology as tf.io.ModelJSON["modelTopology"] as never);
        model.setWeights(request.weights.map((w) => tf.tensor(w.data, w.shape)));
        optimizer = new FlatAdam(
          trainableVariables().map((v) => ({ name: v.name, shape: v.shape, decay: v.rank >= 2 })),
          { ...ADAM_DEFAULTS, weightDecay: request.weightDecay },
        );
        weights = readTrainableWeights();
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
        applyGradients(request.gradients, request.lr);
        reply({ type: "applied" });
        break;
      }
      case "getState": {
        const weights = model.getWeights().map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
        const optimizerWeights = optimizer.getWeights();
        reply({ type: "state", weights, optimizerWeights, numTensors: tf.memory().numTensors });
        break;
      }
      case "setState": {
        model.setWeights(request.weights.map((w) => tf.tensor(w.data, w.shape)));
        weights = readTrainableWeights();
        if (request.optimizerWeights) optimizer.setWeights(request.optimizerWeights);
        reply({ type: "ready" });
        break;
      }
    }
  } catch (err) {
    reply({ type: "error", message: (err as Error).stack ?? String(err) });
  }
};
