/**
 * Training in this process, on whichever tfjs backend is active: for WebGPU,
 * where the device does the parallel work and data-parallel workers (a CPU
 * technique, parallel.ts) would only split it. Same interface as
 * `DataParallelTrainer`.
 */
import * as tf from "@tensorflow/tfjs";
import type { FaceSet } from "../data/dataset.ts";
import type { NamedWeightData } from "../model/model_io.ts";
import { type StepOptions, Stepper } from "./stepper.ts";

/** What the training loop asks of a trainer (DataParallelTrainer or LocalTrainer). */
export interface Trainer {
  /** One optimizer step on `rows`; the batch's mean loss and correct count. */
  step(rows: number[], seed: number, lr: number): Promise<{ loss: number; correct: number }>;
  /** Copy the trained weights into `model`; returns the optimizer state, for checkpoints. */
  syncTo(model: tf.LayersModel): Promise<NamedWeightData[]>;
  /** Live tensors of each training copy (for leak checks). */
  tensorCounts(): Promise<number[]>;
  terminate(): void;
}

export class LocalTrainer implements Trainer {
  private constructor(private readonly stepper: Stepper) {}

  /** Train a copy of `model` (so `model` changes only on `syncTo`, as with workers). */
  static async start(
    model: tf.LayersModel,
    train: FaceSet,
    options: StepOptions,
    optimizerWeights?: NamedWeightData[],
  ): Promise<LocalTrainer> {
    const copy = await tf.models.modelFromJSON(model.toJSON(undefined, false) as never);
    copy.setWeights(model.getWeights());
    return new LocalTrainer(await Stepper.create(copy, train, options, optimizerWeights));
  }

  async step(rows: number[], seed: number, lr: number): Promise<{ loss: number; correct: number }> {
    const { loss, correct, gradients } = await this.stepper.computeGradients(rows, seed * 31);
    this.stepper.applyGradients(gradients, lr);
    return { loss, correct };
  }

  syncTo(model: tf.LayersModel): Promise<NamedWeightData[]> {
    model.setWeights(this.stepper.model.getWeights()); // the variables take references, nothing is read back
    return Promise.resolve(this.stepper.optimizerWeights());
  }

  tensorCounts(): Promise<number[]> {
    return Promise.resolve([tf.memory().numTensors]);
  }

  terminate(): void {
    this.stepper.dispose();
  }
}
