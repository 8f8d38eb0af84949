/**
 * What defines a training run: its settings (`TrainConfig`, saved as the
 * run's config.json), their defaults, the named recipes, and the train
 * command's flags, declared once here. The flag table gives parsing,
 * validation and `--help` (lib/cli/train.ts), and the command that
 * reproduces a run (`trainCommand`, used by ship's RECIPE.md).
 */
import { join, resolve } from "node:path";
import { architectureNames } from "../model/architectures.ts";
import { BACKEND_CHOICES, type BackendChoice } from "../backend/backend.ts";
import { DATA_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { exists, projectPath, workingPath } from "../util/paths.ts";
import { readJson } from "../util/files.ts";
import { LABEL_SETS, type LabelSet } from "../data/dataset.ts";
import { LABEL_MODES, type LabelMode } from "../data/ferplus.ts";
import { runPaths } from "./run_folder.ts";

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
  /** With `augment`: also blur, gamma, contrast, noise, occluding patches and JPEG re-encoding (augment.ts). */
  photometric?: boolean;
  /** With `augment`: each image's contrast scaled about its mean by a factor drawn from 1 +- this (augment.ts); 0: off. */
  contrast?: number;
  /** mixup's Beta(alpha, alpha) parameter: each image blended with another of its batch (augment.ts); 0: off. */
  mixup?: number;
  /** cutmix's Beta(alpha, alpha) parameter: a box of another image of the batch pasted in; 0: off. */
  cutmix?: number;
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
  /** The tfjs backend: WASM (data-parallel workers), WebGPU (one process), or WebGPU on a hardware adapter. */
  backend: BackendChoice;
  /** The named recipe the settings started from, if any. */
  recipe?: string;
  /** "plateau": halve the rate when the monitored metric stalls; "cosine": anneal from `lr` to `minLr` over `epochs`. */
  schedule: "plateau" | "cosine" | "onecycle";
  /** Start from this saved model's weights (same arch) instead of a fresh initialization, e.g. a warm restart. */
  initFrom?: string;
  /** Keep each epoch's weights from this epoch on and finish with their average (`averaged/`, see average.ts). */
  averageFrom?: number;
  /**
   * Distillation: saved models whose mean probabilities on the training
   * images blend into the targets (distill.ts). A run saved before teachers
   * could be several recorded one folder as a string.
   */
  teacher?: string[] | string;
  /** The teacher's share of each training target, 0-1 (with `teacher`; the label has the rest). */
  distill: number;
  /** With `teacher`: its probabilities averaged over the test-time views (mirror and shifts). */
  teacherTta?: boolean;
  /**
   * With `teacher`: its probabilities on this many augmented views of each
   * image, each step showing one view and teaching its own (consistent teaching).
   */
  teacherViews?: number;
  /**
   * With `teacher`: it reads every step's images as the student sees them
   * (consistent teaching with fresh views; slower), not the images once.
   */
  teacherEachStep?: boolean;
  /** Logit-adjusted loss (Menon et al. 2021): the exponent tau of the class prior in the loss; 0 is plain. */
  logitAdjust?: number;
  /** The labels of the FER2013 CSV's images: its own, or the FER+ votes (8 classes; lib/data/ferplus.ts). */
  labels: LabelSet;
  /** With FER+ labels: how the votes become training targets. */
  labelMode: LabelMode;
  /** Decay per step of an exponential moving average of the weights, scored and saved as best/ (ema.ts); 0: none. */
  ema?: number;
  /** A face folder (one subfolder per class, e.g. CK+48) also scored after each epoch; it never picks best/. */
  watch?: string;
}

/**
 * The settings of `deno task train` with no flags (the `fast` recipe): a
 * useful model in under an hour on two cores. Every recipe and flag is a
 * change to these.
 */
export const DEFAULT_CONFIG: Omit<TrainConfig, "out"> = {
  arch: "compact", // the 312k-parameter net (lib/model/architectures.ts)
  epochs: 45, // epochs to train
  batchSize: 128, // images per step, shared by the workers
  lr: 3e-3, // peak learning rate of the one-cycle schedule
  minLr: 1e-5, // where the schedules end (and plateau halving stops)
  schedule: "onecycle", // warm-up, then cosine annealing (schedules.ts: learningRate)
  weightDecay: 5e-3, // AdamW's decoupled decay per unit of learning rate
  labelSmoothing: 0.1, // share of each target spread over all classes
  augment: true, // random shifts, rotations, zooms and mirror images
  photometric: false, // with augment: also blur, gamma, contrast, noise, occlusion, JPEG
  contrast: 0, // with augment: each image's contrast scaled by 1 +- up to this (0: off; 0.3: 0.7x-1.3x)
  mixup: 0, // mixup's Beta(a, a): each image blended with another of its batch (0: off; 0.2 is usual)
  cutmix: 0, // cutmix's Beta(a, a): a box of another image of the batch pasted in (0: off; 1 is usual)
  monitor: "val_accuracy", // PublicTest metric that picks best/ and drives stopping
  earlyStoppingPatience: 45, // epochs without improvement before stopping (45: never, on this schedule)
  lrPatience: 4, // plateau schedule: epochs without improvement before halving
  lrFactor: 0.5, // plateau schedule: the halving
  minDelta: 1e-4, // the least change that counts as an improvement
  seed: 5, // initialization, data order, augmentation, dropout
  skipBadRows: false, // malformed CSV rows stop the load
  distill: 0.5, // with --teacher: the teacher's share of each target
  labels: "fer2013", // the CSV's own labels (ferplus: the FER+ votes beside it, 8 classes)
  labelMode: "majority", // with FER+ labels: each image's majority answer
  ema: 0, // decay of a moving average of the weights, which best/ then holds (0: none; 0.999: about 1,000 steps)
  workers: globalThis.navigator?.hardwareConcurrency || 1, // data-parallel workers, one per core (Node 20: no navigator)
  backend: "wasm", // tfjs backend
};

/** The settings of the recipes that trained the committed runs before the one-cycle defaults (plateau, Adam). */
const PLATEAU_ADAM: Partial<TrainConfig> = { schedule: "plateau", weightDecay: 0, seed: 1 };

/**
 * Named recipes: settings only, each a change to DEFAULT_CONFIG, so that
 * `deno task train --recipe NAME` trains that way (flags still override).
 */
export const RECIPES: Record<string, Partial<TrainConfig>> = {
  /** The defaults: the compact net, 45 one-cycle epochs. */
  fast: {},
  /** A first model in under ten minutes on two cores: five one-cycle epochs of the compact net. */
  quick: { epochs: 5, earlyStoppingPatience: 5 },
  /** The medium net (24-48-96-192, 700k parameters) on the fast recipe. */
  medium: { arch: "medium", seed: 11 },
  /**
   * The medium net on FER+'s eight classes, trained on the votes as soft
   * targets; meant to start from a FER2013 medium model (--init-from keeps
   * its trunk and starts a new head), hence the shorter, gentler schedule.
   */
  "medium-ferplus": { arch: "medium", labels: "ferplus", labelMode: "crossentropy", epochs: 24, lr: 1.5e-3, seed: 21 },
  /**
   * The medium net on FER2013's own labels, each training target half the
   * label and half the FER+ vote distribution (lib/data/ferplus.ts); meant to
   * continue a FER2013 medium model (--init-from), hence the shorter schedule.
   */
  "medium-votes": { arch: "medium", labels: "fer2013-votes", epochs: 20, lr: 1.5e-3, seed: 31 },
  /**
   * The medium net continued (--init-from) with the photometric augmentations
   * as well, for faces from other cameras; weighed by PublicTest and CK+48.
   */
  "medium-photometric": { arch: "medium", photometric: true, epochs: 8, lr: 5e-4, seed: 41 },
  /**
   * The medium recipe and seed on twice the schedule (90 epochs), best/
   * holding a moving average of the weights: one network towards the
   * three-net ensemble's accuracy.
   */
  "medium-long": { arch: "medium", epochs: 90, ema: 0.999, seed: 11 },
  /**
   * medium-long with the class prior in the loss (logit adjustment, Menon et
   * al. 2021): the net learns to score classes as if equally common, for faces
   * from elsewhere (#36); the same seed, for a paired comparison, and the
   * prior's strength chosen at ship time on PublicTest and CK+48.
   */
  "medium-long-la": { arch: "medium", epochs: 90, ema: 0.999, seed: 11, logitAdjust: 1 },
  /**
   * A warm restart of medium-long (--init-from its best/): one short cosine
   * cycle from a low rate, scored as a moving average of the weights and as
   * the mean of its last epochs' weights (SWA).
   */
  "medium-long-restart": {
    arch: "medium",
    schedule: "cosine",
    epochs: 8,
    lr: 3e-4,
    ema: 0.999,
    averageFrom: 4,
    seed: 12,
  },
  /** The compact net halving its rate on plateaus, weights averaged from epoch 29. */
  "compact-fer": {
    ...PLATEAU_ADAM,
    epochs: 50,
    lr: 2e-3,
    lrPatience: 3,
    earlyStoppingPatience: 8,
    averageFrom: 29,
  },
  /** A warm restart (with --init-from a compact model): one cosine cycle from a raised learning rate. */
  "compact-fer-restart": {
    ...PLATEAU_ADAM,
    schedule: "cosine",
    epochs: 18,
    lr: 1e-3,
    earlyStoppingPatience: 18,
    seed: 2,
  },
  /** The compact net on a short cosine schedule. */
  "compact-fer-short": {
    ...PLATEAU_ADAM,
    schedule: "cosine",
    epochs: 12,
    lr: 2e-3,
    earlyStoppingPatience: 12,
    seed: 3,
  },
  /** The compact net on a full-length cosine schedule. */
  "compact-fer-cosine": {
    ...PLATEAU_ADAM,
    schedule: "cosine",
    epochs: 26,
    lr: 2e-3,
    earlyStoppingPatience: 26,
    seed: 4,
  },
};

/** The recipe a new run starts from when no --recipe is given: a useful model in under an hour on two cores. */
export const DEFAULT_RECIPE = "fast";

/** The train command's flags; `key` names the setting each one sets. */
export const TRAIN_FLAGS = {
  recipe: {
    type: "string",
    choices: Object.keys(RECIPES),
    value: "NAME",
    help: "start from a named recipe's settings (flags override; a new run without it starts from fast)",
  },
  data: { ...DATA_FLAG, key: "data" },
  arch: { type: "string", choices: architectureNames(), key: "arch", help: "architecture" },
  epochs: { type: "integer", min: 1, key: "epochs", help: "epochs to train" },
  "batch-size": { type: "integer", min: 2, key: "batchSize", help: "images per step, shared by the workers" },
  lr: { type: "number", min: 1e-9, key: "lr", help: "learning rate (the peak, for cosine and onecycle)" },
  "min-lr": { type: "number", min: 0, key: "minLr", help: "lowest learning rate of the schedules" },
  "weight-decay": {
    type: "number",
    min: 0,
    key: "weightDecay",
    help: "AdamW decay of conv and dense kernels; 0 is Adam",
  },
  schedule: {
    type: "string",
    choices: ["plateau", "cosine", "onecycle"],
    key: "schedule",
    help: "halve the rate on a plateau, or anneal by cosine (onecycle: after a warm-up)",
  },
  "label-smoothing": { type: "number", min: 0, max: 0.99, key: "labelSmoothing", help: "label smoothing of the loss" },
  "no-augment": { type: "boolean", key: "augment", invert: true, help: "train on the images as they are" },
  photometric: {
    type: "boolean",
    key: "photometric",
    help: "also augment as other cameras change faces: blur, gamma, contrast, noise, occluding patches, JPEG",
  },
  contrast: {
    type: "number",
    min: 0,
    max: 0.9,
    value: "A",
    key: "contrast",
    help: "also scale each image's contrast about its mean by a factor drawn from 1 +- A (0.3: 0.7x to 1.3x)",
  },
  mixup: {
    type: "number",
    min: 0,
    max: 10,
    value: "A",
    key: "mixup",
    help:
      "mixup: blend each image and its target with another of its batch, a share drawn from Beta(A, A) (0.2 is usual)",
  },
  cutmix: {
    type: "number",
    min: 0,
    max: 10,
    value: "A",
    key: "cutmix",
    help: "cutmix: paste a box of another image of the batch, its area drawn from Beta(A, A) (1 is usual); with " +
      "--mixup, each batch takes one of the two",
  },
  monitor: { type: "string", choices: ["val_accuracy", "val_loss"], key: "monitor", help: "metric that picks best/" },
  patience: {
    type: "integer",
    min: 1,
    key: "earlyStoppingPatience",
    help: "epochs without improvement before stopping",
  },
  "lr-patience": { type: "integer", min: 1, key: "lrPatience", help: "epochs without improvement before halving lr" },
  seed: { type: "integer", min: 0, key: "seed", help: "seed of initialization, data order, augmentation and dropout" },
  subset: { type: "integer", min: 1, key: "subset", help: "train on a stratified subset of this many images" },
  workers: {
    type: "integer",
    min: 1,
    key: "workers",
    help: "data-parallel workers (one per core; WASM only), also for the teacher pass",
  },
  backend: {
    type: "string",
    choices: BACKEND_CHOICES,
    key: "backend",
    help: "wasm, webgpu, or auto (webgpu on a hardware GPU, else wasm)",
  },
  "average-from": { type: "integer", min: 1, key: "averageFrom", help: "keep weights from this epoch on and average" },
  "init-from": { type: "string", value: "MODEL_DIR", key: "initFrom", help: "start from a saved model's weights" },
  teacher: {
    type: "string",
    multiple: true,
    value: "MODEL_DIR",
    key: "teacher",
    help: "distil: blend this saved model's probabilities on the training images into the targets (several: " +
      "their mean, each read at the training prior)",
  },
  distill: {
    type: "number",
    min: 0,
    max: 1,
    key: "distill",
    help: "the teacher's share of each target (with --teacher)",
  },
  "teacher-tta": {
    type: "boolean",
    key: "teacherTta",
    help: "with --teacher: its probabilities averaged over mirror and shifted views",
  },
  "teacher-views": {
    type: "integer",
    min: 1,
    value: "K",
    key: "teacherViews",
    help: "with --teacher: it reads K augmented views of each image once; each step shows one view and teaches " +
      "the teacher's probabilities on that view, not on the image as it is",
  },
  "teacher-each-step": {
    type: "boolean",
    key: "teacherEachStep",
    help: "with --teacher: it reads each step's augmented images as the student sees them and teaches its " +
      "probabilities on them (every step: slower), not its probabilities on the images as they are",
  },
  "logit-adjust": {
    type: "number",
    min: 0,
    max: 2,
    key: "logitAdjust",
    help: "logit-adjusted loss: the class prior to this power in the loss (1: the net scores classes as if balanced)",
  },
  labels: {
    type: "string",
    choices: LABEL_SETS,
    key: "labels",
    help: "the CSV's own labels; ferplus: the FER+ votes beside it (fer2013new.csv; 8 classes); " +
      "fer2013-votes: the CSV's labels, training targets softened by the votes",
  },
  "label-mode": {
    type: "string",
    choices: LABEL_MODES,
    key: "labelMode",
    help: "with FER+ labels: majority, or the vote distribution (probability: a label drawn per step; crossentropy)",
  },
  ema: {
    type: "number",
    min: 0,
    max: 0.99999,
    key: "ema",
    help: "score and keep as best/ a moving average of the weights with this decay per step (0: none)",
  },
  watch: {
    type: "string",
    value: "DIR",
    key: "watch",
    help: "also score this face folder (a subfolder per class, e.g. CK+48) after each epoch: history.csv's " +
      "watch_accuracy and the curves; best/ is still picked on PublicTest",
  },
  "skip-bad-rows": { type: "boolean", key: "skipBadRows", help: "leave malformed CSV rows out instead of stopping" },
  out: { type: "string", value: "DIR", help: "run folder (default outputs/runs/<recipe or arch-time>)" },
  resume: { type: "boolean", help: "continue the run in --out from its last checkpoint" },
} as const satisfies FlagTable;

/** Settings from parsed train flags, layered over a resumed run's saved config, a recipe, and the defaults. */
export function parseTrainArgs(args: string[]): { config: TrainConfig; resume: boolean } {
  const base = newRunBase() as Record<string, unknown>;
  const shownDefaults = Object.fromEntries(
    (Object.entries(TRAIN_FLAGS) as [string, FlagTable[string]][]).map(([flag, spec]) => [flag, base[spec.key ?? ""]]),
  );
  const { values, given } = parseFlags(
    { name: "train", summary: "Train (or resume) a model; writes a run folder.", shownDefaults },
    TRAIN_FLAGS,
    args,
  );
  const resume = values.resume;
  if (resume && !values.out) throw new Error("--resume needs --out DIR (the run folder to continue)");
  const savedPath = resume ? runPaths(values.out!).config : undefined;
  const saved: Partial<TrainConfig> = savedPath && exists(savedPath) ? readJson(savedPath) : {};
  // A new run without --recipe starts from DEFAULT_RECIPE; a resumed one from what it was started with.
  const recipe = values.recipe ?? (resume ? saved.recipe : DEFAULT_RECIPE);
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG, ...(recipe ? RECIPES[recipe] : {}), ...saved };
  for (const [flag, spec] of Object.entries(TRAIN_FLAGS) as [string, FlagTable[string]][]) {
    if (!spec.key || !given.has(flag)) continue;
    const value = values[flag as keyof typeof values];
    if (
      resume && savedPath && FIXED_ON_RESUME.has(flag) &&
      !sameSetting(spec.key, saved[spec.key as keyof TrainConfig], value)
    ) {
      throw new Error(
        `--resume: --${flag} ${value} differs from the run's ${spec.key} (${
          saved[spec.key as keyof TrainConfig] ?? "the default"
        } ` +
          `in ${savedPath}); the checkpoint was trained that way: train a new run with --out elsewhere`,
      );
    }
    config[spec.key] = spec.invert ? !value : value;
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  config.out = values.out ?? workingPath(projectPath("outputs", "runs", values.recipe ?? `${config.arch}-${stamp}`));
  config.recipe = recipe;
  const done = config as unknown as TrainConfig;
  if (done.initFrom && !exists(join(done.initFrom, "model.json"))) {
    throw new Error(`--init-from ${done.initFrom}: no saved model there (model.json missing)`);
  }
  // A new run from a saved model takes its architecture, unless --arch or the recipe names one.
  if (done.initFrom && !resume && !given.has("arch") && !(recipe && RECIPES[recipe].arch)) {
    const saved = readJson<{ architecture: string }>(join(done.initFrom, "metadata.json")).architecture;
    if (!architectureNames().includes(saved)) {
      throw new Error(`--init-from ${done.initFrom}: its architecture (${saved}) is not one a run trains; pass --arch`);
    }
    done.arch = saved;
  }
  done.teacher = teacherDirs(done);
  if (!done.teacher.length) delete done.teacher;
  const missing = done.teacher?.find((dir) => !exists(join(dir, "model.json")));
  if (missing) throw new Error(`--teacher ${missing}: no saved model there (model.json missing)`);
  if (done.watch && !(exists(done.watch) && Deno.statSync(done.watch).isDirectory)) {
    throw new Error(`--watch ${done.watch}: not a folder (expected a face folder with a subfolder per class)`);
  }
  checkSettings(done);
  if (done.batchSize < 2 * done.workers) {
    throw new Error(
      `--batch-size must be at least 2 per worker (BatchNorm); got ${done.batchSize} for ${done.workers} workers`,
    );
  }
  return { config: done, resume };
}

/** A run's teacher folders (none without --teacher; one from a run saved when a run had at most one). */
export function teacherDirs(config: Pick<TrainConfig, "teacher">): string[] {
  return config.teacher === undefined ? [] : [config.teacher].flat();
}

/** The flags a resumed run refuses to change: they decide what its checkpoint is. */
const FIXED_ON_RESUME = new Set(["arch", "data", "subset", "labels", "label-mode"]);

/** Whether a resumed run's saved setting and a given flag value agree (data paths compared resolved). */
function sameSetting(key: string, saved: unknown, given: unknown): boolean {
  if (key !== "data") return saved === given;
  return saved !== undefined && resolve(String(saved)) === resolve(String(given));
}

/** Refuse settings that cannot work together, in one line naming them. */
function checkSettings(config: TrainConfig): void {
  if (config.minLr > config.lr) {
    throw new Error(`--min-lr ${config.minLr} is above --lr ${config.lr}: the schedule would raise the rate`);
  }
  if (config.averageFrom !== undefined && config.averageFrom > config.epochs) {
    throw new Error(`--average-from ${config.averageFrom} is after the last epoch (--epochs ${config.epochs})`);
  }
  if (config.contrast && (config.photometric || !config.augment)) {
    throw new Error(
      `--contrast ${config.contrast} ${
        config.photometric
          ? "and --photometric both change contrast; pass one"
          : "needs augmentation; drop --no-augment"
      }`,
    );
  }
  if (config.teacherViews !== undefined) {
    const why = !config.teacher
      ? "needs --teacher"
      : config.teacherTta
      ? "and --teacher-tta both say which views the teacher reads; pass one"
      : !config.augment
      ? "needs augmentation (the views are augmented images); drop --no-augment"
      : "";
    if (why) throw new Error(`--teacher-views ${config.teacherViews} ${why}`);
  }
  if (config.teacherEachStep) {
    const why = !config.teacher
      ? "needs --teacher"
      : config.teacherTta || config.teacherViews !== undefined
      ? `and --${config.teacherTta ? "teacher-tta" : "teacher-views"} both say which views the teacher reads; pass one`
      : "";
    if (why) throw new Error(`--teacher-each-step ${why}`);
  }
  const cores = navigator.hardwareConcurrency || 1;
  if (config.workers > cores) {
    throw new Error(
      `--workers ${config.workers}: this machine has ${cores} cores; more workers than cores only slow down`,
    );
  }
}

/** The settings a new run starts from before its flags: the defaults, then `recipe`'s changes. */
export function newRunBase(recipe = DEFAULT_RECIPE): Omit<TrainConfig, "out"> {
  return { ...DEFAULT_CONFIG, ...RECIPES[recipe] };
}

/**
 * The train command that reproduces `config` into `out`: its recipe, if it
 * has one, then every setting that differs from what that recipe (or a new
 * run) starts from.
 */
export function trainCommand(config: Partial<TrainConfig>, out: string): string {
  const parts = config.recipe ? [`deno task train --recipe ${config.recipe}`] : ["deno task train"];
  const base = newRunBase(config.recipe);
  for (const [flag, spec] of Object.entries(TRAIN_FLAGS) as [string, FlagTable[string]][]) {
    if (!spec.key || spec.key === "data") continue;
    const value = config[spec.key as keyof TrainConfig];
    const fallback = base[spec.key as keyof typeof base];
    if (value === undefined || value === fallback) continue;
    if (spec.type === "boolean") {
      if (value === !spec.invert) parts.push(`--${flag}`);
    } else for (const each of [value].flat()) parts.push(`--${flag} ${each}`);
  }
  return `${parts.join(" ")} --out ${out}`;
}
