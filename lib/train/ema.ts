/**
 * An exponential moving average of the trainable weights (Polyak
 * averaging, as timm's ModelEma): after every step, average += (1 - d) *
 * (weights - average). The training loop scores and saves the average,
 * with BatchNorm statistics recomputed for it (as for SWA); the raw weights
 * go on training. It travels in the optimizer state of a
 * checkpoint, as entries named `ema/...`, so a resumed run keeps it.
 */
import * as tf from "@tensorflow/tfjs";
import type { NamedWeightData } from "../model/model_io.ts";
import { fillFromEntries, type FlatSlot, slotEntries } from "./adam.ts";

/** Optimizer-state entries of the average start with this. */
const EMA_PREFIX = "ema/";

/** The decay after `updates` steps: `decay`, held lower early on so the average does not cling to the initialization. */
export function emaDecay(decay: number, updates: number): number {
  return Math.min(decay, (1 + updates) / (10 + updates));
}

export class WeightEma {
  /** Steps folded in so far. */
  updates = 0;
  /** The averaged weights, flat in slot order. */
  readonly average: Float32Array;

  /** An average over `slots` starting at `weights` (copied), with decay `decay` per step. */
  constructor(readonly decay: number, readonly slots: FlatSlot[], weights: Float32Array) {
    this.average = weights.slice();
  }

  /** Fold in the weights after a step. */
  update(weights: Float32Array): void {
    const keep = emaDecay(this.decay, this.updates++);
    const { average } = this;
    for (let i = 0; i < average.length; i++) average[i] += (1 - keep) * (weights[i] - average[i]);
  }

  /** The average as optimizer-state entries: its step count, then each slot. */
  getWeights(): NamedWeightData[] {
    return [
      { name: `${EMA_PREFIX}updates`, data: Float32Array.of(this.updates), shape: [] },
      ...slotEntries(this.slots, this.average, (name) => `${EMA_PREFIX}${name}`),
    ];
  }

  /** Restore what `getWeights` saved (slots matched by position, as the optimizer's moments). */
  setWeights(entries: NamedWeightData[]): void {
    const [updates, ...slots] = entries;
    if (slots.length !== this.slots.length) {
      throw new Error(`weight average holds ${slots.length} slots, want ${this.slots.length}`);
    }
    this.updates = updates.data[0];
    fillFromEntries(this.slots, slots, this.average, "weight average");
  }
}

/** Split optimizer state into the optimizer's own entries and the weight average's (empty when it has none). */
export function splitEmaState(state: NamedWeightData[]): { optimizer: NamedWeightData[]; ema: NamedWeightData[] } {
  return {
    optimizer: state.filter((w) => !w.name.startsWith(EMA_PREFIX)),
    ema: state.filter((w) => w.name.startsWith(EMA_PREFIX)),
  };
}

/**
 * `model`'s weights in `setWeights` order (trainable, then the rest) with the
 * trainable ones taken from the average in `state`; the BatchNorm statistics
 * stay the model's (recomputeBatchNorm fits them to the average). Undefined
 * when `state` holds no average.
 */
export function averagedWeights(model: tf.LayersModel, state: NamedWeightData[]): tf.Tensor[] | undefined {
  const [, ...slots] = splitEmaState(state).ema;
  if (slots.length === 0) return undefined;
  if (slots.length !== model.trainableWeights.length) {
    throw new Error(`weight average holds ${slots.length} slots, the model ${model.trainableWeights.length}`);
  }
  return [
    ...slots.map((w) => tf.tensor(w.data, w.shape)),
    ...model.nonTrainableWeights.map((w) => w.read().clone()),
  ];
}
