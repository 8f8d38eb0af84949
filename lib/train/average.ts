/**
 * Weight averaging (SWA, Izmailov et al. 2018): the mean of the weights a
 * run saved at the end of its last epochs. At a low learning rate those
 * epochs circle a minimum; their mean sits nearer its centre and usually
 * generalises better than any one of them. BatchNorm statistics are then
 * recomputed for the averaged weights, as PyTorch's `update_bn` does.
 *
 *   deno task average --run outputs/runs/compact-fer [--from 29]
 *
 * Reads `RUN/snapshots/epoch-NNN/` (written by `train --average-from N`),
 * writes `RUN/averaged/` with its PublicTest accuracy in metadata.json.
 */
import * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { batchTensor, type FaceSet, inOrderBatches } from "../data/dataset.ts";
import { evaluateSet } from "../eval/evaluate.ts";
import { loadModel, saveModel } from "../model/model_io.ts";
import { readJson } from "../util/files.ts";
import { formatReport, type Report } from "../eval/metrics.ts";
import { ProgressBar } from "../util/progress.ts";
import { exists } from "../util/paths.ts";
import { runPaths, snapshotDir, snapshotEpochs } from "./run_folder.ts";

/** Element-wise mean of several weight lists of one architecture. */
export function meanWeights(weightLists: Float32Array[][]): Float32Array[] {
  if (weightLists.length === 0) throw new Error("meanWeights: no weights to average");
  return weightLists[0].map((first, w) => {
    const mean = new Float32Array(first.length);
    for (const weights of weightLists) {
      if (weights[w].length !== first.length) throw new Error(`meanWeights: weight ${w} differs in size`);
      for (let i = 0; i < mean.length; i++) mean[i] += weights[w][i];
    }
    for (let i = 0; i < mean.length; i++) mean[i] /= weightLists.length;
    return mean;
  });
}

/**
 * Reset every BatchNormalization layer's moving mean and variance to the
 * plain average of its batch statistics over `set` (training-mode forward
 * passes; at step k the layers' momentum is 1 - 1/k, a cumulative mean).
 */
export function recomputeBatchNorm(model: tf.LayersModel, set: FaceSet, batchSize = 256, label?: string): void {
  // deno-lint-ignore no-explicit-any
  const norms = model.layers.filter((l) => l.getClassName() === "BatchNormalization") as any[];
  const momentum = norms.map((l) => l.momentum);
  const bar = label ? new ProgressBar(set.n, label) : undefined;
  try {
    let step = 0;
    for (const rows of inOrderBatches(set.n, batchSize)) {
      step++;
      for (const layer of norms) layer.momentum = 1 - 1 / step;
      tf.tidy(() => {
        model.apply(batchTensor(set, rows), { training: true });
      });
      bar?.update(rows[0] + rows.length);
    }
  } finally {
    norms.forEach((layer, i) => layer.momentum = momentum[i]);
  }
}

/** What averaging a run produced. */
export interface AverageResult {
  epochs: number[];
  report: Report;
  dir: string;
}

/**
 * Average the snapshots of epochs >= `fromEpoch` in `run`, recompute
 * BatchNorm on `train`, evaluate on `validation` (PublicTest) and save the
 * result as `run/averaged/`; logs its accuracy beside `run/best/`'s.
 */
export async function averageRun(
  run: string,
  fromEpoch: number,
  train: FaceSet,
  validation: FaceSet,
  log: (message: string) => void = console.error,
): Promise<AverageResult> {
  const epochs = snapshotEpochs(run).filter((e) => e >= fromEpoch);
  if (epochs.length === 0) throw new Error(`${run}: no snapshots from epoch ${fromEpoch} on (in ${run}/snapshots)`);
  const weightLists: Float32Array[][] = [];
  let loaded: Awaited<ReturnType<typeof loadModel>> | undefined;
  for (const epoch of epochs) {
    const snapshot = await loadModel(snapshotDir(run, epoch));
    weightLists.push(await Promise.all(snapshot.model.getWeights().map((w) => w.data() as Promise<Float32Array>)));
    if (loaded) snapshot.model.dispose();
    else loaded = snapshot;
  }
  const { model, metadata } = loaded!;
  const shapes = model.getWeights().map((w) => w.shape);
  const mean = meanWeights(weightLists).map((data, i) => tf.tensor(data, shapes[i]));
  model.setWeights(mean);
  tf.dispose(mean);
  log(`averaged the weights of epochs ${epochs[0]}-${epochs.at(-1)} (${epochs.length} snapshots)`);
  recomputeBatchNorm(model, train, 256, "BatchNorm statistics");
  const report = await evaluateSet(model, validation, "PublicTest", metadata.labels, {
    progressLabel: "evaluate PublicTest",
  });
  log(formatReport(report));
  const dir = runPaths(run).averaged;
  await saveModel(dir, model, {
    ...metadata,
    training: { ...metadata.training, averagedEpochs: epochs },
    metrics: { PublicTest: { accuracy: report.accuracy, macro_f1: report.macro_f1, epochs } },
  });
  model.dispose();
  const best = join(runPaths(run).best, "metadata.json");
  if (exists(best)) {
    const bestAccuracy = readJson<{ metrics: { PublicTest: { accuracy: number } } }>(best).metrics.PublicTest.accuracy;
    log(
      `PublicTest accuracy: averaged ${(100 * report.accuracy).toFixed(2)}% ` +
        `vs best epoch ${(100 * bestAccuracy).toFixed(2)}%`,
    );
  }
  return { epochs, report, dir };
}
