/**
 * One model's training steps: the forward and backward pass on a share of a
 * batch (flat gradients out), and the flat Adam update with gradients in.
 * A data-parallel worker (worker.ts) holds one on the WASM backend; the
 * in-process trainer (local.ts, for WebGPU) holds one on the active backend.
 */
import * as tf from "@tensorflow/tfjs";
import { batchTensor, type FaceSet, viewRow } from "../data/dataset.ts";
import {
  augmentBatch,
  contrastBatch,
  DEFAULT_AUGMENT,
  mixBatch,
  type MixOptions,
  PHOTOMETRIC_AUGMENT,
  photometricBatch,
  transformBatch,
} from "../data/augment.ts";
import { seededRandom } from "../util/random.ts";
import { smoothedCrossEntropy, trainingTargets } from "./losses.ts";
import { ADAM_DEFAULTS, FlatAdam } from "./adam.ts";
import type { NamedWeightData } from "../model/model_io.ts";
import { withDropoutRandom } from "../model/layers.ts";
import { splitEmaState, WeightEma } from "./ema.ts";
import { loadTeacher } from "./distill.ts";

/** What a step needs besides the model and the data. */
export interface StepOptions {
  labelSmoothing: number;
  augment: boolean;
  /** With `augment`: also the photometric changes (blur, gamma, contrast, noise, occlusion, JPEG; augment.ts). */
  photometric?: boolean;
  /** With `augment`: each image's contrast scaled by a factor drawn from 1 +- this (augment.ts); absent or 0: none. */
  contrast?: number;
  /** Decoupled weight decay of the kernels (AdamW); 0 for plain Adam. */
  weightDecay: number;
  /** The teacher's share of each target, when the training set carries its probabilities (distillation; default 0). */
  distill?: number;
  /** Decay per step of an average of the weights kept beside them (ema.ts); 0 or absent: none. */
  ema?: number;
  /** Logit-adjusted loss: the training class shares and their exponent tau (losses.ts); absent or 0: plain. */
  logitAdjust?: { prior: number[]; tau: number };
  /** Each batch mixed with itself shuffled, targets too (mixup, cutmix; augment.ts); absent or both 0: none. */
  mix?: MixOptions;
  /**
   * --teacher-each-step: these saved models (checked against the data's
   * `labels`) read each step's images as the student sees them, and their
   * mean probabilities are the teacher's part of the targets.
   */
  teachers?: { dirs: readonly string[]; labels: readonly string[] };
}

/** A weight list as plain data. */
export type WeightData = Omit<NamedWeightData, "name">;

export class Stepper {
  private readonly optimizer: FlatAdam;
  private readonly ema?: WeightEma;
  private readonly loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

  private constructor(
    readonly model: tf.LayersModel,
    private readonly train: FaceSet,
    private readonly options: StepOptions,
    /** The trainable weights, flat in `model.trainableWeights` order: the optimizer's copy. */
    private weights: Float32Array,
    /** The teachers that read every step's images (`options.teachers`), loaded. */
    private readonly teachers: tf.LayersModel[],
  ) {
    this.optimizer = new FlatAdam(
      this.variables().map((v) => ({ name: v.name, shape: v.shape, decay: v.rank >= 2 })),
      { ...ADAM_DEFAULTS, weightDecay: options.weightDecay },
    );
    if (options.ema) this.ema = new WeightEma(options.ema, this.optimizer.slots, weights);
    this.loss = smoothedCrossEntropy(options.labelSmoothing, options.logitAdjust?.prior, options.logitAdjust?.tau);
  }

  /**
   * A stepper for `model`, its optimizer (and weight average) resuming from
   * `optimizerWeights` when given; a checkpoint without an average starts one
   * at its weights (the weights are read asynchronously: WebGPU has no
   * synchronous read in Deno).
   */
  static async create(
    model: tf.LayersModel,
    train: FaceSet,
    options: StepOptions,
    optimizerWeights?: NamedWeightData[],
  ): Promise<Stepper> {
    const teachers = [];
    for (const dir of options.teachers?.dirs ?? []) teachers.push(await loadTeacher(dir, options.teachers!.labels));
    const stepper = new Stepper(model, train, options, await flatWeights(model), teachers);
    if (optimizerWeights) {
      const { optimizer, ema } = splitEmaState(optimizerWeights);
      stepper.optimizer.setWeights(optimizer);
      if (ema.length) stepper.ema?.setWeights(ema);
    }
    return stepper;
  }

  /** One of the teacher's views for each of `rows` and its transform; none when the teacher saw only the images. */
  private drawViews(rows: number[], random: () => number): { drawn: number[]; matrices: Float32Array } | undefined {
    const all = this.train.teacherViews;
    if (!all) return undefined;
    const perImage = all.length / (8 * this.train.n);
    const drawn = rows.map(() => Math.floor(random() * perImage));
    const matrices = new Float32Array(8 * rows.length);
    rows.forEach((row, i) => {
      const at = 8 * viewRow(this.train, row, drawn[i]);
      matrices.set(all.subarray(at, at + 8), 8 * i);
    });
    return { drawn, matrices };
  }

  private variables(): tf.Variable[] {
    return this.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Forward and backward pass on `rows`: the mean loss, the correct count, gradients flat in weight order. */
  async computeGradients(
    rows: number[],
    seed: number,
  ): Promise<{ loss: number; correct: number; gradients: Float32Array }> {
    const random = seededRandom(seed);
    // With the teacher's views (--teacher-views), each image is seen in one of them, drawn here, and taught its target.
    const views = this.options.augment ? this.drawViews(rows, random) : undefined;
    const x = tf.tidy(() => {
      const images = batchTensor(this.train, rows);
      const moved = views
        ? transformBatch(images, views.matrices)
        : this.options.augment
        ? augmentBatch(images, DEFAULT_AUGMENT, random)
        : images;
      if (!this.options.augment) return moved;
      if (this.options.photometric) return photometricBatch(moved, PHOTOMETRIC_AUGMENT, random);
      return this.options.contrast
        ? contrastBatch(moved, this.options.contrast, random).clipByValue(0, 1) as tf.Tensor4D
        : moved;
    });
    const { value, correct, grads } = await this.lossAndGradients(rows, x, views?.drawn, random)
      .finally(() => x.dispose());
    // Copied one by one: tf.concat of ~30 gradients costs more than the whole optimizer step.
    const gradients = new Float32Array(this.weights.length);
    let offset = 0;
    for (const g of grads) {
      gradients.set(await g.data() as Float32Array, offset);
      offset += g.size;
    }
    const result = { loss: (await value.data())[0], correct: (await correct.data())[0], gradients };
    tf.dispose([value, correct, ...grads]);
    return result;
  }

  /** The loss, correct count and gradients (kept tensors) of `rows` shown as `x` (in their teacher's `views`). */
  private async lossAndGradients(
    rows: number[],
    x: tf.Tensor4D,
    views: readonly number[] | undefined,
    random: () => number,
  ): Promise<{ value: tf.Scalar; correct: tf.Tensor; grads: tf.Tensor[] }> {
    const variables = this.variables();
    const live = this.teachers.length ? await this.teach(x) : undefined;
    const classes = this.model.outputs[0].shape[1] as number;
    const distill = this.options.distill ?? 0;
    const targets = trainingTargets(this.train, rows, classes, distill, random, { views, live });
    // Kept out of the tidy and read afterwards, with the asynchronous read every backend has.
    return tf.tidy(() => {
      const labels = tf.tensor1d(rows.map((r) => this.train.labels[r]), "int32");
      const mixed = this.options.mix ? mixBatch(x, targets, classes, this.options.mix, random) : { images: x, targets };
      const y = tf.tensor2d(mixed.targets, [rows.length, classes]);
      let correct!: tf.Tensor;
      const { value, grads } = tf.variableGrads(() => {
        const predicted = withDropoutRandom(
          random,
          () => this.model.apply(mixed.images, { training: true }) as tf.Tensor,
        );
        correct = tf.keep(tf.equal(predicted.argMax(-1), labels).sum());
        return this.loss(y, predicted) as tf.Scalar;
      }, variables);
      return { value, correct, grads: variables.map((v) => grads[v.name]) };
    });
  }

  /** The teachers' mean probabilities on a batch as this step shows it, rows x classes (read asynchronously). */
  private async teach(x: tf.Tensor4D): Promise<Float32Array> {
    const mean = tf.tidy(() =>
      tf.addN(this.teachers.map((t) => t.predict(x, { batchSize: x.shape[0] }) as tf.Tensor)).div(this.teachers.length)
    );
    const data = await mean.data() as Float32Array;
    mean.dispose();
    return data;
  }

  /** Free the model and the teachers. */
  dispose(): void {
    this.model.dispose();
    this.teachers.forEach((t) => t.dispose());
  }

  /** One Adam pass over the flat weights with (averaged) flat gradients; each variable takes its slice. */
  applyGradients(gradients: Float32Array, lr: number): void {
    this.optimizer.step(this.weights, gradients, lr);
    this.ema?.update(this.weights);
    let offset = 0;
    for (const v of this.variables()) {
      const value = tf.tensor(this.weights.subarray(offset, offset + v.size), v.shape);
      v.assign(value); // the variable takes a reference to the new data
      value.dispose();
      offset += v.size;
    }
  }

  /** All weights (BatchNorm statistics too) and the optimizer state. */
  async getState(): Promise<{ weights: WeightData[]; optimizerWeights: NamedWeightData[] }> {
    const weights = await Promise.all(
      this.model.getWeights().map(async (t) => ({ data: await t.data() as Float32Array, shape: t.shape })),
    );
    return { weights, optimizerWeights: this.optimizerWeights() };
  }

  /** The optimizer's state, in tfjs Adam's layout, then the weight average's, if any (for checkpoints). */
  optimizerWeights(): NamedWeightData[] {
    return [...this.optimizer.getWeights(), ...(this.ema?.getWeights() ?? [])];
  }

  /** Set all weights (the workers' merged BatchNorm statistics, say). */
  async setWeights(weights: WeightData[]): Promise<void> {
    tf.tidy(() => this.model.setWeights(weights.map((w) => tf.tensor(w.data, w.shape))));
    this.weights = await flatWeights(this.model);
  }
}

/** A model's trainable weights, flat in `trainableWeights` order. */
async function flatWeights(model: tf.LayersModel): Promise<Float32Array> {
  const variables = model.trainableWeights.map((w) => w.read());
  const flat = new Float32Array(variables.reduce((n, v) => n + v.size, 0));
  let offset = 0;
  for (const v of variables) {
    flat.set(await v.data() as Float32Array, offset);
    offset += v.size;
  }
  return flat;
}
