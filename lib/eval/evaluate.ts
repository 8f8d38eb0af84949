/**
 * Evaluation: predict a split, build the report (accuracy, macro-F1,
 * per-class metrics, confusion matrix) and write it with its charts.
 * `deno task evaluate` is lib/cli/evaluate.ts.
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic } from "../util/files.ts";
import { join } from "node:path";
import { batchTensor, type FaceSet, inOrderBatches } from "../data/dataset.ts";
import { argmaxRows, buildReport, type Report } from "./metrics.ts";
import { confusionMatricesSpec, saveChart } from "../util/charts.ts";
import { ProgressBar } from "../util/progress.ts";
import { augmentMatrix, transformBatch } from "../data/augment.ts";

export interface PredictOptions {
  batchSize?: number;
  /** Test-time augmentation: average over TTA_VIEWS (mirror and small shifts). */
  tta?: boolean;
  /** Show a progress bar with this label. */
  progressLabel?: string;
  /** Move each image by its own transform first (n x 8, `transformBatch`): a view of the set. */
  matrices?: Float32Array;
}

/** The test-time augmentation views: the image and its mirror, each unshifted and shifted 2 px four ways. */
export const TTA_VIEWS = [false, true].flatMap((flip) =>
  [[0, 0], [2, 0], [-2, 0], [0, 2], [0, -2]].map(([shiftX, shiftY]) => ({ flip, degrees: 0, scale: 1, shiftX, shiftY }))
);

/** Mean class probabilities of `model` over the TTA views of a batch. */
function predictTta(model: tf.LayersModel, x: tf.Tensor4D): tf.Tensor {
  const size = x.shape[1];
  const [n] = x.shape;
  const views = TTA_VIEWS.map((view) =>
    tf.image.transform(
      x,
      tf.tensor2d(augmentMatrix(size, view), [1, 8]).tile([n, 1]) as tf.Tensor2D,
      "bilinear",
      "nearest",
    )
  );
  return tf.addN(views.map((v) => model.predict(v) as tf.Tensor)).div(TTA_VIEWS.length);
}

/** Class probabilities for every image of a set, row-major [n, classes]. */
export async function predictSet(
  model: tf.LayersModel,
  set: FaceSet,
  options: PredictOptions = {},
): Promise<Float32Array> {
  const batchSize = options.batchSize ?? 256;
  const classes = model.outputs[0].shape[1] as number;
  const out = new Float32Array(set.n * classes);
  const bar = options.progressLabel ? new ProgressBar(set.n, options.progressLabel) : undefined;
  for (const rows of inOrderBatches(set.n, batchSize)) {
    const probs = tf.tidy(() => {
      const images = batchTensor(set, rows);
      const x = options.matrices
        ? transformBatch(images, options.matrices.subarray(8 * rows[0], 8 * (rows[0] + rows.length)))
        : images;
      return options.tta ? predictTta(model, x) : model.predict(x) as tf.Tensor;
    });
    out.set(await probs.data(), rows[0] * classes);
    probs.dispose();
    bar?.update(rows[0] + rows.length);
  }
  return out;
}

/** Mean cross-entropy of predicted probabilities against true labels. */
export function crossEntropy(probabilities: Float32Array, labels: Uint8Array, classes: number): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) sum -= Math.log(Math.max(probabilities[i * classes + labels[i]], 1e-7));
  return sum / Math.max(labels.length, 1);
}

/**
 * Predict a split and build its report; `labels` are the set's (and the
 * model's) class names; `unanswered`, per class, images left without an
 * answer (no face found), counted as wrong.
 */
export async function evaluateSet(
  model: tf.LayersModel,
  set: FaceSet,
  split: string,
  labels: readonly string[],
  options: PredictOptions & { unanswered?: number[] } = {},
): Promise<Report> {
  const probabilities = await predictSet(model, set, options);
  return buildReport(split, set.labels, argmaxRows(probabilities, labels.length), labels, options.unanswered);
}

/** Write `report.json` and `confusion_matrix.png|svg` into `dir`. */
export async function writeReport(dir: string, report: Report, extra: Record<string, unknown> = {}): Promise<void> {
  Deno.mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, "report.json"), JSON.stringify({ ...report, ...extra }, null, 2) + "\n");
  await saveChart(confusionMatricesSpec(report.confusion_matrix, report.labels), join(dir, "confusion_matrix"));
}
