/**
 * One data-parallel training worker (see `parallel.ts`). It holds a copy of
 * the model and optimizer on its own WASM backend (a `Stepper`), computes
 * gradients on its share of each batch, and applies the averaged gradients
 * it is sent back, so every worker's weights stay identical.
 */
/// <reference lib="deno.worker" />
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend/backend.ts";
import "../model/layers.ts"; // registers the fast-training layers for modelFromJSON
import type { WorkerReply, WorkerRequest } from "./parallel.ts";
import { Stepper } from "./stepper.ts";

let stepper: Stepper;

function reply(message: WorkerReply, transfer: Transferable[] = []) {
  self.postMessage(message, transfer);
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  try {
    switch (request.type) {
      case "init": {
        await initBackend();
        const model = await tf.models.modelFromJSON(request.topology as tf.io.ModelJSON["modelTopology"] as never);
        model.setWeights(request.weights.map((w) => tf.tensor(w.data, w.shape)));
        stepper = await Stepper.create(model, request.train, request, request.optimizerWeights);
        reply({ type: "ready" });
        break;
      }
      case "gradients": {
        const { loss, correct, gradients } = await stepper.computeGradients(request.rows, request.seed);
        reply({ type: "gradients", loss, correct, n: request.rows.length, gradients }, [
          gradients.buffer as ArrayBuffer,
        ]);
        break;
      }
      case "apply": {
        stepper.applyGradients(request.gradients, request.lr);
        reply({ type: "applied" });
        break;
      }
      case "getState": {
        reply({ type: "state", ...(await stepper.getState()), numTensors: tf.memory().numTensors });
        break;
      }
      case "setState": {
        await stepper.setWeights(request.weights);
        reply({ type: "ready" });
        break;
      }
    }
  } catch (err) {
    reply({ type: "error", message: (err as Error).stack ?? String(err) });
  }
};
