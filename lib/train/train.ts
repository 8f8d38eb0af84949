/**
 * The training loop: Adam (or AdamW) on categorical cross-entropy (optional
 * label smoothing), augmented batches on data-parallel workers, our own
 * early stopping and learning-rate schedules, and a run folder holding
 * config, history, checkpoints, report and charts (see lib/cli/train.ts).
 */
import * as tf from "@tensorflow/tfjs";
import { type ActiveBackend, initBackend } from "../backend/backend.ts";
import { type FaceSet, type FerData, IMAGE_SIZE, selectRows, stratifiedSample } from "../data/dataset.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { loadFaceFolder } from "../data/folders.ts";
import { buildModel } from "../model/architectures.ts";
import {
  EarlyStopping,
  type EarlyStoppingState,
  learningRate,
  ReduceLROnPlateau,
  type ReduceLROnPlateauState,
} from "./schedules.ts";
import { crossEntropy, evaluateSet, predictSet, writeReport } from "../eval/evaluate.ts";
import { accuracy, argmaxRows, formatReport, type Report } from "../eval/metrics.ts";
import { learningCurvesSpec, saveChart } from "../util/charts.ts";
import { type EpochRecord, historyCsv, parseHistoryCsv } from "./history.ts";
import {
  loadModel,
  loadOptimizerFiles,
  makeMetadata,
  modelFiles,
  type NamedWeightData,
  optimizerFiles,
  saveModel,
} from "../model/model_io.ts";
import { readJson, writeFileAtomic, writeFolderAtomic } from "../util/files.ts";
import { ProgressBar } from "../util/progress.ts";
import { DataParallelTrainer } from "./parallel.ts";
import { LocalTrainer, type Trainer } from "./local.ts";
import { seededRandom, shuffleInPlace } from "../util/random.ts";
import { exists } from "../util/paths.ts";
import { averageRun, recomputeBatchNorm } from "./average.ts";
import { lockRun, prepareRun, runPaths, snapshotDir, snapshotEpochs } from "./run_folder.ts";
import { teacherDirs, type TrainConfig } from "./config.ts";
import { loadTeacher, teacherProbabilities } from "./distill.ts";
import { classPrior } from "../eval/calibration.ts";
import { averagedWeights } from "./ema.ts";

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

/**
 * Take the run folder's lock, settle a crash's leftovers, and write
 * config.json with the backend and adapter the run got. Returns whether
 * training continues from `last/`, and the lock's release.
 */
function openRunFolder(
  config: TrainConfig,
  resume: boolean,
  active: ActiveBackend,
  log: (m: string) => void,
): { fromCheckpoint: boolean; release: () => void } {
  const release = lockRun(config.out, log);
  try {
    const fromCheckpoint = prepareRun(config.out, resume, log) === "resume";
    writeFileAtomic(runPaths(config.out).config, JSON.stringify({ ...config, device: active }, null, 2) + "\n");
    return { fromCheckpoint, release };
  } catch (error) {
    release();
    throw error;
  }
}

/** The images to train on (all of Training, or a stratified subset) and to validate on (PublicTest). */
function trainingSets(data: FerData, config: TrainConfig): { train: FaceSet; validation: FaceSet } {
  if (data.splits.Training.n === 0) {
    throw new Error(`${data.source} has no Training images: nothing to train on (a header only, or only test rows?)`);
  }
  const all = data.splits.Training;
  const train = config.subset ? selectRows(all, stratifiedSample(all.labels, config.subset, config.seed)) : all;
  const present = [...new Set(train.labels)].map((c) => data.labels[c]);
  if (present.length < 2) {
    throw new Error(
      `${data.source}: the Training images are all of one class (${present[0]}); a classifier learns from two or more`,
    );
  }
  if (train.n < MIN_TRAINING_IMAGES) {
    throw new Error(
      `${data.source}: ${train.n} Training images; at least ${MIN_TRAINING_IMAGES} are needed (BatchNorm and a validation split)`,
    );
  }
  return { train, validation: data.splits.PublicTest };
}

/** The fewest training images a run accepts: below this, BatchNorm statistics and the scores mean nothing. */
export const MIN_TRAINING_IMAGES = 10;

/**
 * Where training starts: the last checkpoint (resume), a saved model's
 * weights (--init-from; a model of other classes gives its trunk, and the
 * head starts new), or a fresh net for `labels`.
 */
async function startingPoint(
  config: TrainConfig,
  resume: boolean,
  labels: readonly string[],
  log: (m: string) => void,
): Promise<{ model: tf.LayersModel; state?: TrainState; history: EpochRecord[] }> {
  const paths = runPaths(config.out);
  if (resume) {
    const model = (await loadModel(paths.last)).model;
    const state = readJson<TrainState>(paths.trainState);
    const historyPath = paths.history;
    const history = exists(historyPath)
      ? parseHistoryCsv(Deno.readTextFileSync(historyPath)).slice(0, state.epoch)
      : [];
    if (history.length < state.epoch) {
      throw new Error(`${historyPath} holds ${history.length} epochs but last/ is after epoch ${state.epoch}`);
    }
    log(`resuming ${config.out} after epoch ${state.epoch} (lr ${state.lr})`);
    return { model, state, history };
  }
  const model = buildModel(config.arch, IMAGE_SIZE, config.seed, labels.length);
  log(
    `${config.arch}: ${
      model.countParams().toLocaleString("en-US")
    } parameters (its layers: notebook 02, or modelSummary)`,
  );
  if (config.initFrom) {
    const init = await loadModel(config.initFrom);
    const sameClasses = init.metadata.labels.join() === labels.join();
    try {
      for (const layer of model.layers) {
        if (layer.weights.length && (sameClasses || layer !== model.layers.at(-1))) {
          layer.setWeights(init.model.getLayer(layer.name).getWeights());
        }
      }
    } catch (error) {
      throw new Error(`--init-from ${config.initFrom}: its weights do not fit arch ${config.arch} (${error})`);
    } finally {
      init.model.dispose();
    }
    log(
      sameClasses
        ? `starting from the weights of ${config.initFrom}`
        : `starting from the trunk of ${config.initFrom}; its classes (${init.metadata.labels.join(", ")}) are not ` +
          `this data's (${labels.join(", ")}), so the head (${model.layers.at(-1)!.name}) starts new`,
    );
  }
  return { model, history: [] };
}

/**
 * The `--watch` face folder: its images whole, against the run's classes;
 * folders of other classes (CK+48's contempt) are left out and said.
 */
async function watchedSet(dir: string, labels: readonly string[], log: (m: string) => void): Promise<FaceSet> {
  const folder = await loadFaceFolder(dir, labels);
  for (const bad of folder.skipped) log(`--watch: skipped ${bad.reason}`);
  for (const o of folder.omitted) log(`--watch: left out ${dir}/${o.name} (${o.images} images: ${o.why})`);
  log(`--watch: ${folder.set.n} faces of ${dir}, scored after each epoch (not used to pick best/)`);
  return folder.set;
}

/** Loss and accuracy of the model as it is on a held-out set (PublicTest, or the `--watch` folder). */
async function scoreValidation(
  model: tf.LayersModel,
  validation: FaceSet,
): Promise<{ loss: number; accuracy: number }> {
  const probabilities = await predictSet(model, validation, { batchSize: 256 });
  const classes = model.outputs[0].shape[1] as number;
  return {
    loss: crossEntropy(probabilities, validation.labels, classes),
    accuracy: accuracy(validation.labels, argmaxRows(probabilities, classes)),
  };
}

/**
 * Train (or resume from `out/last` when `resume` is set) and write the run
 * folder, holding its lock throughout.
 */
export async function trainModel(config: TrainConfig, resume = false, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? ((m: string) => console.error(m));
  const active = await initBackend(config.backend);
  log(`backend: ${active.backend}${active.adapter ? ` on ${active.adapter}` : ""}`);
  const { fromCheckpoint, release } = openRunFolder(config, resume, active, log);
  try {
    return await trainInFolder(config, fromCheckpoint, active, hooks, log);
  } finally {
    release();
  }
}

/** The training itself, in a run folder that `openRunFolder` has prepared. */
async function trainInFolder(
  config: TrainConfig,
  resume: boolean,
  active: ActiveBackend,
  hooks: TrainHooks,
  log: (m: string) => void,
): Promise<TrainResult> {
  const paths = runPaths(config.out);
  const lastDir = paths.last, bestDir = paths.best;
  const data = hooks.data ?? await loadDataset(resolveDataPath(config.data), {
    skipBadRows: config.skipBadRows,
    seed: config.seed,
    onProgress: log,
    labels: config.labels,
    labelMode: config.labelMode,
  });
  const { train, validation } = trainingSets(data, config);
  log(`data: ${data.source}: ${train.n} training, ${validation.n} validation (PublicTest) images`);
  const watched = config.watch ? await watchedSet(config.watch, data.labels, log) : undefined;
  const { model, state, history } = await startingPoint(config, resume, data.labels, log);

  const monitor = { monitor: config.monitor, minDelta: config.minDelta };
  const stopper = new EarlyStopping({ ...monitor, patience: config.earlyStoppingPatience }, state?.earlyStopping);
  const plateau = new ReduceLROnPlateau(
    { ...monitor, patience: config.lrPatience, factor: config.lrFactor, minLr: config.minLr },
    state?.plateau,
  );
  let lr = state?.lr ?? config.lr;
  let elapsed = state?.elapsedSeconds ?? 0;
  const metadata = (metrics: Record<string, unknown>) =>
    makeMetadata(
      model,
      config.arch,
      { data: data.source, trainImages: train.n, epochs: history.length, config },
      metrics,
      data.labels,
      config.labels,
    );

  const teachers = teacherDirs(config);
  // Data-parallel workers are a CPU technique: on WebGPU the device is the parallel part, so one process trains.
  const steps = {
    weightDecay: config.weightDecay,
    labelSmoothing: config.labelSmoothing,
    augment: config.augment,
    photometric: config.photometric,
    contrast: config.contrast,
    mix: { mixup: config.mixup ?? 0, cutmix: config.cutmix ?? 0 },
    distill: config.distill,
    ema: config.ema,
    logitAdjust: config.logitAdjust ? { prior: classPrior(train, data.labels), tau: config.logitAdjust } : undefined,
    teachers: config.teacherEachStep ? { dirs: teachers, labels: data.labels } : undefined,
  };
  const views = config.teacherViews ? { count: config.teacherViews, seed: config.seed } : undefined;
  if (config.teacherEachStep) {
    // Each worker loads them; loaded here first, so a damaged teacher or one of other classes is one line, not a
    // worker's stack.
    for (const dir of teachers) (await loadTeacher(dir, data.labels)).dispose();
    log(`teacher: ${teachers.join(" + ")} read each step's images as the student sees them`);
  }
  const taught = teachers.length && !config.teacherEachStep
    ? {
      ...train,
      ...await teacherProbabilities(teachers, config.out, train, data.labels, log, {
        tta: config.teacherTta,
        views,
        workers: active.backend === "webgpu" ? 1 : config.workers,
      }),
    }
    : train;
  const optimizerState = resume ? loadOptimizerFiles(lastDir) : undefined;
  // With --ema, the weight average is what is scored and saved as best/; last/ keeps the raw weights to go on from.
  const average = config.ema
    ? {
      model: buildModel(config.arch, IMAGE_SIZE, config.seed, data.labels.length),
      normSample: selectRows(train, stratifiedSample(train.labels, Math.min(EMA_NORM_IMAGES, train.n), config.seed)),
    }
    : undefined;
  const trainer: Trainer = active.backend === "webgpu"
    ? await LocalTrainer.start(model, taught, steps, optimizerState)
    : await DataParallelTrainer.start(model, taught, { ...steps, workers: config.workers }, optimizerState);
  try {
    for (let epoch = (state?.epoch ?? 0) + 1; epoch <= config.epochs && !stopper.state.stopped; epoch++) {
      const started = performance.now();
      const plateauLr = lr;
      const rateAt = (fraction: number) => learningRate(config, epoch, fraction, plateauLr);
      lr = rateAt(0); // where the epoch starts (the one-cycle rate changes every step)
      const { loss, accuracy } = await trainEpoch(trainer, train, config, epoch, rateAt);
      const optimizerWeights = await trainer.syncTo(model);
      const scored = average ? withAverage(average.model, model, optimizerWeights, average.normSample) : model;
      const validated = await scoreValidation(scored, validation);
      if (!Number.isFinite(loss) || !Number.isFinite(validated.loss)) {
        const which = Number.isFinite(loss) ? `validation loss is ${validated.loss}` : `training loss is ${loss}`;
        throw new Error(
          `epoch ${epoch}: the ${which}; stopped without saving this epoch (lower --lr, or check the data)`,
        );
      }
      const raw = average ? ` (raw ${(await scoreValidation(model, validation)).accuracy.toFixed(4)})` : "";
      const watchAccuracy = watched ? (await scoreValidation(scored, watched)).accuracy : undefined;
      const seconds = (performance.now() - started) / 1000;
      elapsed += seconds;
      const rss = Math.round(Deno.memoryUsage().rss / 2 ** 20);
      const record: EpochRecord = {
        epoch,
        loss,
        accuracy,
        val_loss: validated.loss,
        val_accuracy: validated.accuracy,
        lr,
        seconds,
        rss_mib: rss,
        ...(watchAccuracy === undefined ? {} : { watch_accuracy: watchAccuracy }),
      };
      history.push(record);
      writeFileAtomic(paths.history, historyCsv(history));

      const monitored = config.monitor === "val_accuracy" ? validated.accuracy : validated.loss;
      const { improved } = stopper.update(epoch, monitored);
      if (config.schedule === "plateau") lr = plateau.update(monitored, lr);
      log(
        `epoch ${epoch}/${config.epochs}  loss ${loss.toFixed(4)}  acc ${accuracy.toFixed(4)}  ` +
          `val_loss ${validated.loss.toFixed(4)}  val_acc ${validated.accuracy.toFixed(4)}${raw}${
            watchAccuracy === undefined ? "" : `  watch_acc ${watchAccuracy.toFixed(4)}`
          }  ${seconds.toFixed(0)}s  ` +
          `rss ${rss} MiB` + (improved ? "  (best)" : "") + (lr !== record.lr ? `  lr -> ${lr}` : ""),
      );
      const epochMetrics = { PublicTest: { ...validated, epoch } };
      if (improved) await saveModel(bestDir, scored, metadata(epochMetrics));
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
        ...optimizerFiles(optimizerWeights),
        "train_state.json": trainState,
      });
      await saveChart(learningCurvesSpec(history, `${config.arch}: learning curves`), paths.curves);
      await hooks.onEpochEnd?.(history);
    }
  } finally {
    trainer.terminate();
    average?.model.dispose();
  }
  if (stopper.state.stopped) {
    log(`early stopping: no ${config.monitor} improvement for ${config.earlyStoppingPatience} epochs`);
  }

  // Restore the best epoch's weights, then report PublicTest with them.
  const best = (await loadModel(bestDir)).model;
  model.setWeights(best.getWeights());
  best.dispose();
  const report = await evaluateSet(model, validation, "PublicTest", data.labels, {
    progressLabel: "evaluate PublicTest",
  });
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

/**
 * Training images whose BatchNorm statistics the weight average takes each
 * epoch: the raw weights' statistics do not fit it while the rate is high
 * (medium-long, epoch 14: PublicTest 51.6% with them, 62.2% with statistics
 * recomputed on 2,000 or on 5,000 images, raw weights 59.2%).
 */
const EMA_NORM_IMAGES = 2000;

/** `averaged` holding the weight average in `optimizerWeights`, its BatchNorm statistics recomputed on `normSample`. */
function withAverage(
  averaged: tf.LayersModel,
  model: tf.LayersModel,
  optimizerWeights: NamedWeightData[],
  normSample: FaceSet,
): tf.LayersModel {
  const weights = averagedWeights(model, optimizerWeights);
  if (!weights) throw new Error("--ema: the trainer returned no weight average");
  averaged.setWeights(weights);
  tf.dispose(weights);
  recomputeBatchNorm(averaged, normSample);
  return averaged;
}

async function trainEpoch(
  trainer: Trainer,
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
