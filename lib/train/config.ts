/**
 * What defines a training run: its settings (`TrainConfig`, saved as the
 * run's config.json), their defaults, the named recipes, and the train
 * command's flags, declared once here. The flag table gives parsing,
 * validation and `--help` (lib/cli/train.ts), and the command that
 * reproduces a run (`trainCommand`, used by ship's RECIPE.md).
 */
import { join } from "node:path";
import { architectureNames } from "../model/architectures.ts";
import { BACKEND_CHOICES, type BackendChoice } from "../backend/backend.ts";
import { DATA_FLAG, type FlagTable, parseFlags } from "../cli/flags.ts";
import { displayPath, exists, projectPath } from "../util/paths.ts";
import { readJson } from "../model/model_io.ts";

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
  /** Distillation: a saved model whose probabilities on the training images blend into the targets (distill.ts). */
  teacher?: string;
  /** The teacher's share of each training target, 0-1 (with `teacher`; the label has the rest). */
  distill: number;
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
  distill: 0.5,
  workers: navigator.hardwareConcurrency || 1,
  backend: "wasm",
};

/**
 * A useful model in under an hour on two cores: the compact net, a one-cycle
 * schedule, AdamW and label smoothing; every epoch scored on PublicTest, the
 * best kept.
 */
const FAST_RECIPE: Partial<TrainConfig> = {
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
  fast: FAST_RECIPE,
  /** The pilot table's winner at full length: the medium net (700k parameters) on the fast recipe. */
  medium: { ...FAST_RECIPE, arch: "medium", seed: 11 },
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
  monitor: { type: "string", choices: ["val_accuracy", "val_loss"], key: "monitor", help: "metric that picks best/" },
  patience: {
    type: "integer",
    min: 1,
    key: "earlyStoppingPatience",
    help: "epochs without improvement before stopping",
  },
  "lr-patience": { type: "integer", min: 1, key: "lrPatience", help: "epochs without improvement before halving lr" },
  seed: { type: "integer", min: 0, key: "seed", help: "seed of initialization, data order and augmentation" },
  subset: { type: "integer", min: 1, key: "subset", help: "train on a stratified subset of this many images" },
  workers: { type: "integer", min: 1, key: "workers", help: "data-parallel workers (one per core; WASM only)" },
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
    value: "MODEL_DIR",
    key: "teacher",
    help: "distil: blend this saved model's probabilities on the training images into the targets",
  },
  distill: {
    type: "number",
    min: 0,
    max: 1,
    key: "distill",
    help: "the teacher's share of each target (with --teacher)",
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
  const savedPath = resume ? join(values.out!, "config.json") : undefined;
  const saved: Partial<TrainConfig> = savedPath && exists(savedPath) ? readJson(savedPath) : {};
  // A new run without --recipe starts from DEFAULT_RECIPE; a resumed one from what it was started with.
  const recipe = values.recipe ?? (resume ? saved.recipe : DEFAULT_RECIPE);
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG, ...(recipe ? RECIPES[recipe] : {}), ...saved };
  for (const [flag, spec] of Object.entries(TRAIN_FLAGS) as [string, FlagTable[string]][]) {
    if (!spec.key || !given.has(flag)) continue;
    const value = values[flag as keyof typeof values];
    config[spec.key] = spec.invert ? !value : value;
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  config.out = values.out ?? displayPath(projectPath("outputs", "runs", values.recipe ?? `${config.arch}-${stamp}`));
  config.recipe = recipe;
  const done = config as unknown as TrainConfig;
  if (done.initFrom && !exists(join(done.initFrom, "model.json"))) {
    throw new Error(`--init-from ${done.initFrom}: no saved model there (model.json missing)`);
  }
  if (done.teacher && !exists(join(done.teacher, "model.json"))) {
    throw new Error(`--teacher ${done.teacher}: no saved model there (model.json missing)`);
  }
  if (done.batchSize < 2 * done.workers) {
    throw new Error(
      `--batch-size must be at least 2 per worker (BatchNorm); got ${done.batchSize} for ${done.workers} workers`,
    );
  }
  return { config: done, resume };
}

/** The settings a new run starts from before its flags: the defaults, then `recipe` (DEFAULT_RECIPE if none). */
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
    } else parts.push(`--${flag} ${value}`);
  }
  return `${parts.join(" ")} --out ${out}`;
}
