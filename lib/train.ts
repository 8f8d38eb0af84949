/**
 * Training: Adam on categorical cross-entropy (optional label smoothing),
 * augmented batches, our own early stopping and reduce-LR-on-plateau, with
 * a run folder holding config, history, checkpoints, report and charts.
 *
 *   deno task train [--data PATH] [--arch compact] [--epochs 60] [--batch-size 64]
 *                   [--lr 0.001] [--subset N] [--out DIR] [--resume] [--seed 1]
 *                   [--recipe compact-fer] [--average-from EPOCH] [--workers 2]
 *                   [--schedule plateau|cosine|onecycle] [--min-lr 1e-5] [--init-from MODEL_DIR]
 *
 * Run folder (`--out`, default outputs/runs/<arch>-<time>):
 *   config.json  history.csv  best/  last/  curves.png|svg
 *   snapshots/epoch-NNN/  averaged/   (with --average-from: per-epoch weights, their mean)
 *   report.json  confusion_matrix.png|svg   (PublicTest, best weights)
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { initBackend } from "./backend.ts";
import {
  type FaceSet,
  type FerData,
  IMAGE_SIZE,
  loadDataset,
  resolveDataPath,
  selectRows,
  stratifiedSample,
} from "./data.ts";
import { NUM_CLASSES } from "./labels.ts";
import { buildModel, modelSummary } from "./models.ts";
import {
  cosineLr,
  oneCycleLr,
  EarlyStopping,
  type EarlyStoppingState,
  ReduceLROnPlateau,
  type ReduceLROnPlateauState,
} from "./schedules.ts";
import { crossEntropy, evaluateSet, predictSet, writeReport } from "./evaluate.ts";
import { argmaxRows, buildReport, formatReport, type Report } from "./metrics.ts";
import { type EpochRecord, learningCurvesSpec, saveChart } from "./charts.ts";
import {
  loadModel,
  loadOptimizerFiles,
  makeMetadata,
  modelFiles,
  optimizerFiles,
  saveModel,
  writeFolderAtomic,
} from "./model_io.ts";
import { ProgressBar } from "./progress.ts";
import { DataParallelTrainer } from "./parallel.ts";
import { seededRandom, shuffleInPlace } from "./random.ts";
import { displayPath, exists, projectPath } from "./paths.ts";
import { runCommand } from "./cli.ts";
import { averageRun, snapshotDir, snapshotEpochs } from "./average.ts";

/** Everything that defines a training run; saved as `config.json`. */
export interface TrainConfig {
  data?: string;
  arch: string;
  epochs: number;
  batchSize: number;
  lr: number;
  /** Decoupled weight decay of the conv and dense kernels per unit of learning rate (AdamW); 0 is plain Adam. */
  weightDecay: number;
  /** Train on a stratified subset of this many Training images. */
  subset?: number;
  out: string;
  seed: number;
  labelSmoothing: number;
  augment: boolean;
  /** Metric for early stopping, LR reduction and the best checkpoint. */
  monitor: "val_accuracy" | "val_loss";
  earlyStoppingPatience: number;
  lrPatience: number;
  lrFactor: number;
  minLr: number;
  minDelta: number;
  skipBadRows: boolean;
  /**
   * Training workers, one per core (data-parallel, see parallel.ts). Each
   * takes batchSize / workers images of every batch and computes its
   * BatchNorm statistics over its own share.
   */
  workers: number;
  /** The named recipe the settings started from, if any. */
  recipe?: string;
  /** "plateau": halve the rate when the monitored metric stalls; "cosine": anneal from `lr` to `minLr` over `epochs`. */
  schedule: "plateau" | "cosine" | "onecycle";
  /** Start from this saved model's weights (same arch) instead of a fresh initialization, e.g. a warm restart. */
  initFrom?: string;
  /** Keep each epoch's weights from this epoch on and finish with their average (`averaged/`, see average.ts). */
  averageFrom?: number;
}

export const DEFAULT_CONFIG: Omit<TrainConfig, "out"> = {
  arch: "compact",
  epochs: 60,
  batchSize: 64,
  lr: 1e-3,
  weightDecay: 0,
  seed: 1,
  labelSmoothing: 0,
  augment: true,
  monitor: "val_accuracy",
  earlyStoppingPatience: 12,
  lrPatience: 4,
  lrFactor: 0.5,
  minLr: 1e-5,
  minDelta: 1e-4,
  schedule: "plateau",
  skipBadRows: false,
  workers: navigator.hardwareConcurrency || 1,
};

/**
 * Named training recipes: the settings that produced a shipped model, so
 * `deno task train --recipe NAME` reproduces it (flags still override).
 */
export const RECIPES: Record<string, Partial<TrainConfig>> = {
  "compact-fer": {
    arch: "compact",
    epochs: 50,
    batchSize: 128,
    lr: 2e-3,
    labelSmoothing: 0.1,
    lrPatience: 3,
    earlyStoppingPatience: 8,
    seed: 1,
    averageFrom: 29,
  },
  /** A warm restart of compact-fer's best weights: one cosine cycle from a raised learning rate. */
  "compact-fer-restart": {
    arch: "compact",
    initFrom: "outputs/runs/compact-fer/best",
    schedule: "cosine",
    epochs: 18,
    batchSize: 128,
    lr: 1e-3,
    minLr: 1e-5,
    labelSmoothing: 0.1,
    earlyStoppingPatience: 18,
    seed: 2,
  },
  /**
   * A useful model in under an hour on two cores: the compact net, a
   * one-cycle schedule, AdamW and label smoothing; every epoch scored on
   * PublicTest, the best kept.
   */
  fast: {
    arch: "compact",
    schedule: "onecycle",
    epochs: 45,
    batchSize: 128,
    lr: 3e-3,
    minLr: 1e-5,
    weightDecay: 5e-3,
    labelSmoothing: 0.1,
    earlyStoppingPatience: 45,
    seed: 5,
  },
  /** A second, independent compact net on a short cosine schedule: an ensemble member that errs differently. */
  "compact-fer-short": {
    arch: "compact",
    schedule: "cosine",
    epochs: 12,
    batchSize: 128,
    lr: 2e-3,
    minLr: 1e-5,
    labelSmoothing: 0.1,
    earlyStoppingPatience: 12,
    seed: 3,
  },
  /** An independent compact net on a full-length cosine schedule: an ensemble member for compact-fer-restart. */
  "compact-fer-cosine": {
    arch: "compact",
    schedule: "cosine",
    epochs: 26,
    batchSize: 128,
    lr: 2e-3,
    minLr: 1e-5,
    labelSmoothing: 0.1,
    earlyStoppingPatience: 26,
    seed: 4,
  },
};

/** Saved with `last/` so an interrupted run resumes where it stopped. */
interface TrainState {
  epoch: number;
  lr: number;
  earlyStopping: EarlyStoppingState;
  plateau: ReduceLROnPlateauState;
  elapsedSeconds: number;
}

/** What a finished run returns. */
export interface TrainResult {
  model: tf.LayersModel;
  history: EpochRecord[];
  report: Report;
  bestEpoch: number;
  stoppedEarly: boolean;
}

export interface TrainHooks {
  /** Called after every epoch (e.g. to redraw live curves in a notebook). */
  onEpochEnd?: (history: EpochRecord[]) => void | Promise<void>;
  log?: (message: string) => void;
  /** Data already in memory (skips loading `config.data`). */
  data?: FerData;
}

/** history.csv text for a list of epochs. */
export function historyCsv(history: EpochRecord[]): string {
  const columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "rss_mib"] as const;
  return [columns.join(","), ...history.map((h) => columns.map((c) => h[c] ?? "").join(","))].join("\n") + "\n";
}

/** Parse history.csv back into records. */
export function parseHistoryCsv(text: string): EpochRecord[] {
  const [header, ...lines] = text.trim().split("\n");
  const columns = header.split(",");
  return lines.filter((l) => l.trim()).map((line) => {
    const cells = line.split(",").map(Number);
    return Object.fromEntries(columns.map((c, i) => [c, cells[i]])) as unknown as EpochRecord;
  });
}

/** Train (or resume, when `out/last` exists and `resume` is set) and write the run folder. */
export async function trainModel(config: TrainConfig, resume = false, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? ((m: string) => console.error(m));
  await initBackend();
  const lastDir = join(config.out, "last"), bestDir = join(config.out, "best");
  if (!resume && exists(lastDir)) {
    throw new Error(`${config.out} already holds a run; pass --resume to continue it, or choose another --out`);
  }
  if (resume && !exists(join(lastDir, "train_state.json"))) {
    throw new Error(`--resume: ${config.out} has no checkpoint (${lastDir}/train_state.json)`);
  }
  Deno.mkdirSync(config.out, { recursive: true });
  Deno.writeTextFileSync(join(config.out, "config.json"), JSON.stringify(config, null, 2) + "\n");

  const data = hooks.data ?? await loadDataset(resolveDataPath(config.data), {
    skipBadRows: config.skipBadRows,
    seed: config.seed,
    onProgress: log,
  });
  let train: FaceSet = data.splits.Training;
  if (config.subset) train = selectRows(train, stratifiedSample(train.labels, config.subset, config.seed));
  const validation = data.splits.PublicTest;
  log(`data: ${data.source}: ${train.n} training, ${validation.n} validation (PublicTest) images`);

  let model: tf.LayersModel;
  let state: TrainState | undefined;
  let history: EpochRecord[] = [];
  if (resume) {
    model = (await loadModel(lastDir)).model;
    state = JSON.parse(Deno.readTextFileSync(join(lastDir, "train_state.json")));
    history = parseHistoryCsv(Deno.readTextFileSync(join(config.out, "history.csv"))).slice(0, state!.epoch);
    log(`resuming ${config.out} after epoch ${state!.epoch} (lr ${state!.lr})`);
  } else {
    model = buildModel(config.arch, IMAGE_SIZE, config.seed);
    log(modelSummary(model));
    if (config.initFrom) {
      const init = (await loadModel(config.initFrom)).model;
      try {
        model.setWeights(init.getWeights());
      } catch (error) {
        throw new Error(`--init-from ${config.initFrom}: its weights do not fit arch ${config.arch} (${error})`);
      } finally {
        init.dispose();
      }
      log(`starting from the weights of ${config.initFrom}`);
    }
  }

  const monitor = { monitor: config.monitor, minDelta: config.minDelta };
  const stopper = new EarlyStopping({ ...monitor, patience: config.earlyStoppingPatience }, state?.earlyStopping);
  const plateau = new ReduceLROnPlateau(
    { ...monitor, patience: config.lrPatience, factor: config.lrFactor, minLr: config.minLr },
    state?.plateau,
  );
  let lr = state?.lr ?? config.lr;
  let elapsed = state?.elapsedSeconds ?? 0;
  const metadata = (metrics: Record<string, unknown>) =>
    makeMetadata(model, config.arch, {
      data: data.source,
      trainImages: train.n,
      epochs: history.length,
      config,
    }, metrics);

  const trainer = await DataParallelTrainer.start(model, train, {
    workers: config.workers,
    lr,
    weightDecay: config.weightDecay,
    labelSmoothing: config.labelSmoothing,
    augment: config.augment,
  }, resume ? loadOptimizerFiles(lastDir) : undefined);
  try {
    for (let epoch = (state?.epoch ?? 0) + 1; epoch <= config.epochs && !stopper.state.stopped; epoch++) {
      const started = performance.now();
      if (config.schedule === "cosine") lr = cosineLr(epoch, config.epochs, config.lr, config.minLr);
      // The one-cycle rate changes every step; `lr` records where the epoch started.
      const rateAt = config.schedule === "onecycle"
        ? (fraction: number) => oneCycleLr((epoch - 1 + fraction) / config.epochs, config.lr, config.minLr)
        : () => lr;
      lr = rateAt(0);
      const { loss, accuracy } = await trainEpoch(trainer, train, config, epoch, rateAt);
      const optimizerState = await trainer.syncTo(model);
      const probabilities = await predictSet(model, validation, { batchSize: 256 });
      const valLoss = crossEntropy(probabilities, validation.labels, NUM_CLASSES);
      const valAccuracy = buildReport("PublicTest", validation.labels, argmaxRows(probabilities, NUM_CLASSES)).accuracy;
      const seconds = (performance.now() - started) / 1000;
      elapsed += seconds;
      const rss = Math.round(Deno.memoryUsage().rss / 2 ** 20);
      const record: EpochRecord = {
        epoch,
        loss,
        accuracy,
        val_loss: valLoss,
        val_accuracy: valAccuracy,
        lr,
        seconds,
        rss_mib: rss,
      };
      history.push(record);
      Deno.writeTextFileSync(join(config.out, "history.csv"), historyCsv(history));

      const monitored = config.monitor === "val_accuracy" ? valAccuracy : valLoss;
      const { improved } = stopper.update(epoch, monitored);
      if (config.schedule === "plateau") lr = plateau.update(monitored, lr);
      log(
        `epoch ${epoch}/${config.epochs}  loss ${loss.toFixed(4)}  acc ${accuracy.toFixed(4)}  ` +
          `val_loss ${valLoss.toFixed(4)}  val_acc ${valAccuracy.toFixed(4)}  ${seconds.toFixed(0)}s  rss ${rss} MiB` +
          (improved ? "  (best)" : "") + (lr !== record.lr ? `  lr -> ${lr}` : ""),
      );
      const epochMetrics = { PublicTest: { accuracy: valAccuracy, loss: valLoss, epoch } };
      if (improved) await saveModel(bestDir, model, metadata(epochMetrics));
      if (config.averageFrom && epoch >= config.averageFrom) {
        await saveModel(snapshotDir(config.out, epoch), model, metadata(epochMetrics));
      }
      const trainState: TrainState = {
        epoch,
        lr,
        earlyStopping: stopper.state,
        plateau: plateau.state,
        elapsedSeconds: elapsed,
      };
      writeFolderAtomic(lastDir, {
        ...(await modelFiles(model)),
        "metadata.json": metadata(epochMetrics),
        ...optimizerFiles(optimizerState),
        "train_state.json": trainState,
      });
      await saveChart(learningCurvesSpec(history, `${config.arch}: learning curves`), join(config.out, "curves"));
      await hooks.onEpochEnd?.(history);
    }
  } finally {
    trainer.terminate();
  }
  if (stopper.state.stopped) {
    log(`early stopping: no ${config.monitor} improvement for ${config.earlyStoppingPatience} epochs`);
  }

  // Restore the best epoch's weights, then report PublicTest with them.
  const best = (await loadModel(bestDir)).model;
  model.setWeights(best.getWeights());
  best.dispose();
  const report = await evaluateSet(model, validation, "PublicTest", { progressLabel: "evaluate PublicTest" });
  log(formatReport(report));
  await writeReport(config.out, report, { model: bestDir, trainingSeconds: elapsed });
  await saveModel(
    bestDir,
    model,
    metadata({ PublicTest: { accuracy: report.accuracy, macro_f1: report.macro_f1, epoch: stopper.state.bestEpoch } }),
  );
  if (config.averageFrom && snapshotEpochs(config.out).some((e) => e >= config.averageFrom!)) {
    await averageRun(config.out, config.averageFrom, train, validation, log);
  }
  return { model, history, report, bestEpoch: stopper.state.bestEpoch, stoppedEarly: stopper.state.stopped };
}

/** One pass over the shuffled training set, batch by batch across the workers; mean loss and accuracy. */
async function trainEpoch(
  trainer: DataParallelTrainer,
  train: FaceSet,
  config: TrainConfig,
  epoch: number,
  rateAt: (fraction: number) => number,
): Promise<{ loss: number; accuracy: number }> {
  const random = seededRandom(config.seed * 100_003 + epoch);
  const order = Array.from({ length: train.n }, (_, i) => i);
  shuffleInPlace(order, random);
  const bar = new ProgressBar(train.n, `epoch ${epoch}/${config.epochs}`);
  let lossSum = 0, correctSum = 0, seen = 0;
  for (let start = 0; start < train.n; start += config.batchSize) {
    const rows = order.slice(start, start + config.batchSize);
    if (rows.length < 2 * config.workers) break; // BatchNorm needs more than one image per worker
    const { loss, correct } = await trainer.step(rows, Math.floor(random() * 2 ** 31), rateAt(start / train.n));
    lossSum += loss * rows.length;
    correctSum += correct;
    seen += rows.length;
    bar.update(seen, { loss: (lossSum / seen).toFixed(4), acc: (correctSum / seen).toFixed(4) });
  }
  return { loss: lossSum / seen, accuracy: correctSum / seen };
}

/** Parse command-line flags into a config (and whether to resume). */
export function parseTrainArgs(args: string[]): { config: TrainConfig; resume: boolean } {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      arch: { type: "string" },
      epochs: { type: "string" },
      "batch-size": { type: "string" },
      lr: { type: "string" },
      subset: { type: "string" },
      out: { type: "string" },
      resume: { type: "boolean", default: false },
      seed: { type: "string" },
      "label-smoothing": { type: "string" },
      "no-augment": { type: "boolean", default: false },
      monitor: { type: "string" },
      patience: { type: "string" },
      "lr-patience": { type: "string" },
      "skip-bad-rows": { type: "boolean", default: false },
      workers: { type: "string" },
      recipe: { type: "string" },
      "average-from": { type: "string" },
      schedule: { type: "string" },
      "min-lr": { type: "string" },
      "init-from": { type: "string" },
      "weight-decay": { type: "string" },
    },
  });
  const number = (flag: string, value: string | undefined, fallback: number, integer = false) => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
      throw new Error(`--${flag} ${value}: expected a ${integer ? "whole " : ""}number >= 0`);
    }
    return n;
  };
  const resume = values.resume;
  if (resume && !values.out) throw new Error("--resume needs --out DIR (the run folder to continue)");
  const saved: Partial<TrainConfig> = resume && exists(join(values.out!, "config.json"))
    ? JSON.parse(Deno.readTextFileSync(join(values.out!, "config.json")))
    : {};
  if (values.recipe && !RECIPES[values.recipe]) {
    throw new Error(`--recipe ${values.recipe}: choose one of ${Object.keys(RECIPES).join(", ")}`);
  }
  const base = { ...DEFAULT_CONFIG, ...(values.recipe ? RECIPES[values.recipe] : {}), ...saved };
  const arch = values.arch ?? base.arch;
  const monitor = (values.monitor ?? base.monitor) as TrainConfig["monitor"];
  if (monitor !== "val_accuracy" && monitor !== "val_loss") {
    throw new Error(`--monitor ${monitor}: choose val_accuracy or val_loss`);
  }
  const schedule = (values.schedule ?? base.schedule) as TrainConfig["schedule"];
  if (schedule !== "plateau" && schedule !== "cosine" && schedule !== "onecycle") {
    throw new Error(`--schedule ${schedule}: choose plateau, cosine or onecycle`);
  }
  const initFrom = values["init-from"] ?? base.initFrom;
  if (initFrom && !exists(join(initFrom, "model.json"))) {
    throw new Error(`--init-from ${initFrom}: no saved model there (model.json missing)`);
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const config: TrainConfig = {
    ...base,
    data: values.data ?? base.data,
    arch,
    epochs: number("epochs", values.epochs, base.epochs, true),
    batchSize: number("batch-size", values["batch-size"], base.batchSize, true),
    lr: number("lr", values.lr, base.lr),
    weightDecay: number("weight-decay", values["weight-decay"], base.weightDecay),
    minLr: number("min-lr", values["min-lr"], base.minLr),
    subset: values.subset === undefined ? base.subset : number("subset", values.subset, 0, true),
    out: values.out ?? displayPath(projectPath("outputs", "runs", values.recipe ?? `${arch}-${stamp}`)),
    seed: number("seed", values.seed, base.seed, true),
    labelSmoothing: number("label-smoothing", values["label-smoothing"], base.labelSmoothing),
    augment: values["no-augment"] ? false : base.augment,
    monitor,
    schedule,
    initFrom,
    earlyStoppingPatience: number("patience", values.patience, base.earlyStoppingPatience, true),
    lrPatience: number("lr-patience", values["lr-patience"], base.lrPatience, true),
    skipBadRows: values["skip-bad-rows"] || base.skipBadRows,
    workers: number("workers", values.workers, base.workers, true),
    recipe: values.recipe ?? base.recipe,
    averageFrom: values["average-from"] === undefined
      ? base.averageFrom
      : number("average-from", values["average-from"], 0, true),
  };
  if (config.workers < 1) throw new Error("--workers must be at least 1");
  if (config.batchSize < 2 * config.workers) {
    throw new Error(
      `--batch-size must be at least 2 per worker (BatchNorm); got ${config.batchSize} for ${config.workers}`,
    );
  }
  return { config, resume };
}

/** Command line: train (or resume) and say where the run folder is. */
async function main(args: string[]) {
  const { config, resume } = parseTrainArgs(args);
  const result = await trainModel(config, resume);
  console.log(
    `done: best epoch ${result.bestEpoch}, PublicTest accuracy ${(100 * result.report.accuracy).toFixed(2)}%; ` +
      `run folder ${config.out}`,
  );
}

if (import.meta.main) await runCommand(main);
