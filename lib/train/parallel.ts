/**
 * Data-parallel training on several cores. tfjs-backend-wasm runs
 * single-threaded under Deno, so each core gets a Deno worker with its own
 * WASM backend and a copy of the model (`worker.ts`). Every step, each
 * worker computes gradients on its share of the batch; they are averaged here,
 * weighted by share size (the gradient of the whole batch's mean loss), and
 * every worker applies the same average with its own Adam, so the copies stay
 * equal. BatchNormalization uses each worker's share for its batch statistics
 * (as PyTorch's DistributedDataParallel does without SyncBatchNorm); the
 * moving averages are averaged across workers whenever the model is synced.
 */
import * as tf from "@tensorflow/tfjs";
import type { FaceSet } from "../data/dataset.ts";
import type { NamedWeightData } from "../model/model_io.ts";
import type { StepOptions, WeightData } from "./stepper.ts";
import type { Trainer } from "./local.ts";

export type WorkerRequest =
  | {
    type: "init";
    topology: unknown;
    weights: WeightData[];
    train: FaceSet;
    /** The optimizer's state, when resuming. */
    optimizerWeights?: NamedWeightData[];
  } & StepOptions
  | { type: "gradients"; rows: number[]; seed: number }
  | { type: "apply"; gradients: Float32Array; lr: number }
  | { type: "getState" }
  | { type: "setState"; weights: WeightData[] };

export type WorkerReply =
  | { type: "ready" }
  | { type: "gradients"; loss: number; correct: number; n: number; gradients: Float32Array }
  | { type: "applied" }
  | { type: "state"; weights: WeightData[]; optimizerWeights: NamedWeightData[]; numTensors: number }
  | { type: "error"; message: string };

/** The step settings, and how many workers (one per core). */
export interface ParallelOptions extends StepOptions {
  workers: number;
}

function weightData(tensors: tf.Tensor[]): WeightData[] {
  return tensors.map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
}

/** Split `rows` into `parts` contiguous shares, sizes differing by at most one. */
export function shareRows(rows: number[], parts: number): number[][] {
  const shares: number[][] = [];
  for (let k = 0, start = 0; k < parts; k++) {
    const size = Math.floor(rows.length / parts) + (k < rows.length % parts ? 1 : 0);
    shares.push(rows.slice(start, start + size));
    start += size;
  }
  return shares;
}

/** A pool of training workers holding identical copies of one model. */
export class DataParallelTrainer implements Trainer {
  private constructor(private readonly workers: Worker[]) {}

  /** Start `options.workers` workers with `model`'s weights (and the optimizer's state, when resuming). */
  static async start(
    model: tf.LayersModel,
    train: FaceSet,
    options: ParallelOptions,
    optimizerWeights?: NamedWeightData[],
  ): Promise<DataParallelTrainer> {
    const url = new URL("./worker.ts", import.meta.url).href;
    const workers = Array.from({ length: options.workers }, () => new Worker(url, { type: "module" }));
    const trainer = new DataParallelTrainer(workers);
    const topology = model.toJSON(undefined, false);
    const weights = weightData(model.getWeights());
    await trainer.all(workers.map(() => ({
      type: "init",
      topology,
      weights,
      weightDecay: options.weightDecay,
      labelSmoothing: options.labelSmoothing,
      distill: options.distill,
      ema: options.ema,
      logitAdjust: options.logitAdjust,
      augment: options.augment,
      photometric: options.photometric,
      contrast: options.contrast,
      mix: options.mix,
      teachers: options.teachers,
      train,
      optimizerWeights,
    })));
    return trainer;
  }

  /** Send one request to each worker and wait for every reply. */
  private all(requests: WorkerRequest[], transfer: Transferable[][] = []): Promise<WorkerReply[]> {
    return Promise.all(this.workers.map((worker, k) =>
      new Promise<WorkerReply>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<WorkerReply>) => {
          if (event.data.type === "error") reject(new Error(`training worker ${k}: ${event.data.message}`));
          else resolve(event.data);
        };
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(`training worker ${k}: ${event.message}`));
        };
        worker.postMessage(requests[k], transfer[k] ?? []);
      })
    ));
  }

  /** One optimizer step on `rows` (split across the workers); the batch's mean loss and correct count. */
  async step(rows: number[], seed: number, lr: number): Promise<{ loss: number; correct: number }> {
    const shares = shareRows(rows, this.workers.length);
    const replies = await this.all(shares.map((share, k) => ({ type: "gradients", rows: share, seed: seed * 31 + k })));
    const results = replies as Extract<WorkerReply, { type: "gradients" }>[];
    const average = new Float32Array(results[0].gradients.length);
    let loss = 0, correct = 0;
    for (const r of results) {
      const weight = r.n / rows.length;
      for (let i = 0; i < average.length; i++) average[i] += weight * r.gradients[i];
      loss += weight * r.loss;
      correct += r.correct;
    }
    const copies = this.workers.map((_, k) => (k === 0 ? average : average.slice()));
    await this.all(
      copies.map((gradients) => ({ type: "apply", gradients, lr })),
      copies.map((c) => [c.buffer as ArrayBuffer]),
    );
    return { loss, correct };
  }

  /**
   * Copy the workers' weights into `model`: trainable weights from worker 0
   * (all equal), BatchNorm moving statistics averaged, which are also sent
   * back so the workers agree. Returns the optimizer state, for checkpoints.
   */
  async syncTo(model: tf.LayersModel): Promise<NamedWeightData[]> {
    const states = await this.all(this.workers.map(() => ({ type: "getState" }))) as Extract<
      WorkerReply,
      { type: "state" }
    >[];
    const trainable = model.trainableWeights.length;
    const merged = states[0].weights.map((w, i) => {
      if (i < trainable) return w;
      const data = new Float32Array(w.data.length);
      for (const s of states) for (let j = 0; j < data.length; j++) data[j] += s.weights[i].data[j] / states.length;
      return { data, shape: w.shape };
    });
    tf.tidy(() => model.setWeights(merged.map((w) => tf.tensor(w.data, w.shape))));
    if (this.workers.length > 1) await this.all(this.workers.map(() => ({ type: "setState", weights: merged })));
    return states[0].optimizerWeights;
  }

  /** Live tensors in each worker (for leak checks). */
  async tensorCounts(): Promise<number[]> {
    const states = await this.all(this.workers.map(() => ({ type: "getState" })));
    return states.map((s) => (s as Extract<WorkerReply, { type: "state" }>).numTensors);
  }

  /** Stop the workers. */
  terminate(): void {
    for (const worker of this.workers) worker.terminate();
  }
}
