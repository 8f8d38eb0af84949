/**
 * Adam (and AdamW) over one flat array of all trainable weights: one pass
 * per step, where tfjs's `AdamOptimizer` runs about ten kernels per
 * variable. Same update, same defaults and the same state layout as tfjs
 * (`iter`, then `<variable>/m` for every variable, then `<variable>/v`), so
 * checkpoints move between the two.
 */
import * as tf from "@tensorflow/tfjs";
import type { NamedWeightData } from "../model/model_io.ts";

/** One trainable variable's place in the flat array. */
export interface FlatSlot {
  name: string;
  shape: number[];
  /** Whether decoupled weight decay applies (kernels; not biases or BatchNorm's scale and offset). */
  decay: boolean;
}

export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Decoupled weight decay (AdamW, Loshchilov & Hutter 2019), per unit of learning rate; 0 is plain Adam. */
  weightDecay: number;
}

/** tfjs's defaults (`tf.train.adam(lr)`: epsilon is the float32 backend's 1e-7), no weight decay. */
export const ADAM_DEFAULTS: AdamOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 };

export class FlatAdam {
  /** Completed steps. */
  iterations = 0;
  readonly m: Float32Array;
  readonly v: Float32Array;
  private readonly decayMask: Uint8Array;

  constructor(readonly slots: FlatSlot[], readonly options: AdamOptions = ADAM_DEFAULTS) {
    const size = slots.reduce((n, s) => n + tf.util.sizeFromShape(s.shape), 0);
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
    this.decayMask = new Uint8Array(size);
    let offset = 0;
    for (const slot of slots) {
      const n = tf.util.sizeFromShape(slot.shape);
      if (slot.decay) this.decayMask.fill(1, offset, offset + n);
      offset += n;
    }
  }

  /** One step: `weights` updated in place from `gradients` (both flat, in slot order). */
  step(weights: Float32Array, gradients: Float32Array, lr: number): void {
    const { beta1, beta2, epsilon, weightDecay } = this.options;
    const t = ++this.iterations;
    const correction1 = 1 - beta1 ** t, correction2 = 1 - beta2 ** t;
    const { m, v, decayMask } = this;
    const decay = lr * weightDecay;
    for (let i = 0; i < weights.length; i++) {
      const g = gradients[i];
      const mi = (m[i] = beta1 * m[i] + (1 - beta1) * g);
      const vi = (v[i] = beta2 * v[i] + (1 - beta2) * g * g);
      const w = decayMask[i] ? weights[i] - decay * weights[i] : weights[i];
      weights[i] = w - (lr * (mi / correction1)) / (Math.sqrt(vi / correction2) + epsilon);
    }
  }

  /** The state in tfjs Adam's layout. */
  getWeights(): NamedWeightData[] {
    const out: NamedWeightData[] = [{ name: "iter", data: Float32Array.of(this.iterations), shape: [] }];
    for (const [suffix, moments] of [["m", this.m], ["v", this.v]] as const) {
      out.push(...slotEntries(this.slots, moments, (name) => `${name}/${suffix}`));
    }
    return out;
  }

  /**
   * Restore state saved by `getWeights` (or by tfjs's Adam) for the same
   * variables. As in tfjs, moments are matched by position (every first
   * moment, then every second), not by name: variable names can differ
   * between processes.
   */
  setWeights(weights: NamedWeightData[]): void {
    const [iter, ...moments] = weights;
    if (iter?.name !== "iter") throw new Error("optimizer state does not start with its 'iter' entry");
    if (moments.length !== 2 * this.slots.length) {
      throw new Error(`optimizer state holds ${moments.length} moments, want ${2 * this.slots.length}`);
    }
    this.iterations = iter.data[0];
    const count = this.slots.length;
    fillFromEntries(this.slots, moments.slice(0, count), this.m, "optimizer state");
    fillFromEntries(this.slots, moments.slice(count), this.v, "optimizer state");
  }
}

/** A flat array cut into one named entry per slot (`nameOf` names each from its slot's name). */
export function slotEntries(
  slots: FlatSlot[],
  flat: Float32Array,
  nameOf: (name: string) => string,
): NamedWeightData[] {
  let offset = 0;
  return slots.map(({ name, shape }) => {
    const n = tf.util.sizeFromShape(shape);
    offset += n;
    return { name: nameOf(name), data: flat.slice(offset - n, offset), shape };
  });
}

/**
 * Copy saved entries into a flat array, one per slot, matched by position;
 * an entry of the wrong size is refused in one line starting with `what`.
 */
export function fillFromEntries(slots: FlatSlot[], entries: NamedWeightData[], flat: Float32Array, what: string): void {
  let offset = 0;
  slots.forEach((slot, i) => {
    const saved = entries[i], n = tf.util.sizeFromShape(slot.shape);
    if (saved.data.length !== n) throw new Error(`${what} ${saved.name}: ${saved.data.length} values, want ${n}`);
    flat.set(saved.data, offset);
    offset += n;
  });
}
