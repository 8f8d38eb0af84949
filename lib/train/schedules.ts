/**
 * Early stopping and reduce-learning-rate-on-plateau, as small state
 * machines over the monitored metric (no tfjs callbacks). Their state is
 * plain JSON so an interrupted run can resume them.
 */

export type Mode = "min" | "max";

export interface MonitorOptions {
  /** Name of the metric watched, e.g. "val_loss" or "val_accuracy". */
  monitor: string;
  /** "min" for losses, "max" for accuracies; inferred from the name when omitted. */
  mode?: Mode;
  /** Epochs without improvement tolerated. */
  patience: number;
  /** Smallest change that counts as an improvement. */
  minDelta?: number;
}

/** "max" for accuracy-like names, "min" otherwise. */
export function inferMode(monitor: string): Mode {
  return /acc|f1|auc/i.test(monitor) ? "max" : "min";
}

function improves(value: number, best: number, mode: Mode, minDelta: number): boolean {
  return mode === "min" ? value < best - minDelta : value > best + minDelta;
}

export interface EarlyStoppingState {
  best: number;
  bestEpoch: number;
  wait: number;
  stopped: boolean;
}

/** Stops training when the monitored metric has not improved for `patience` epochs. */
export class EarlyStopping {
  readonly monitor: string;
  readonly mode: Mode;
  readonly patience: number;
  readonly minDelta: number;
  /** Whether the loop should put back the best epoch's weights at the end. */
  readonly restoreBestWeights: boolean;
  state: EarlyStoppingState;

  constructor(options: MonitorOptions & { restoreBestWeights?: boolean }, state?: EarlyStoppingState) {
    this.monitor = options.monitor;
    this.mode = options.mode ?? inferMode(options.monitor);
    this.patience = options.patience;
    this.minDelta = options.minDelta ?? 0;
    this.restoreBestWeights = options.restoreBestWeights ?? true;
    this.state = state ?? {
      best: this.mode === "min" ? Infinity : -Infinity,
      bestEpoch: -1,
      wait: 0,
      stopped: false,
    };
  }

  /** Record an epoch's metric; says whether it is a new best and whether to stop. */
  update(epoch: number, value: number): { improved: boolean; stop: boolean } {
    if (!Number.isFinite(value)) {
      throw new Error(`EarlyStopping: ${this.monitor} is ${value} at epoch ${epoch}`);
    }
    const improved = improves(value, this.state.best, this.mode, this.minDelta);
    if (improved) {
      this.state = { ...this.state, best: value, bestEpoch: epoch, wait: 0 };
    } else {
      this.state = { ...this.state, wait: this.state.wait + 1 };
      if (this.state.wait >= this.patience) this.state.stopped = true;
    }
    return { improved, stop: this.state.stopped };
  }
}

export interface ReduceLROnPlateauState {
  best: number;
  wait: number;
  cooldownLeft: number;
}

/** Multiplies the learning rate by `factor` when the metric stalls for `patience` epochs. */
export class ReduceLROnPlateau {
  readonly monitor: string;
  readonly mode: Mode;
  readonly patience: number;
  readonly minDelta: number;
  readonly factor: number;
  readonly minLr: number;
  /** Epochs after a reduction during which stalls are not counted. */
  readonly cooldown: number;
  state: ReduceLROnPlateauState;

  constructor(
    options: MonitorOptions & { factor: number; minLr?: number; cooldown?: number },
    state?: ReduceLROnPlateauState,
  ) {
    if (!(options.factor > 0 && options.factor < 1)) {
      throw new Error(`ReduceLROnPlateau: factor must be in (0, 1), got ${options.factor}`);
    }
    this.monitor = options.monitor;
    this.mode = options.mode ?? inferMode(options.monitor);
    this.patience = options.patience;
    this.minDelta = options.minDelta ?? 0;
    this.factor = options.factor;
    this.minLr = options.minLr ?? 0;
    this.cooldown = options.cooldown ?? 0;
    this.state = state ?? { best: this.mode === "min" ? Infinity : -Infinity, wait: 0, cooldownLeft: 0 };
  }

  /** Record an epoch's metric and return the learning rate to use next. */
  update(value: number, lr: number): number {
    if (improves(value, this.state.best, this.mode, this.minDelta)) {
      this.state = { ...this.state, best: value, wait: 0 };
      if (this.state.cooldownLeft > 0) this.state.cooldownLeft--;
      return lr;
    }
    if (this.state.cooldownLeft > 0) {
      this.state = { ...this.state, cooldownLeft: this.state.cooldownLeft - 1 };
      return lr;
    }
    const wait = this.state.wait + 1;
    if (wait >= this.patience && lr > this.minLr) {
      this.state = { ...this.state, wait: 0, cooldownLeft: this.cooldown };
      return Math.max(lr * this.factor, this.minLr);
    }
    this.state = { ...this.state, wait };
    return lr;
  }
}

/**
 * Cosine annealing: the learning rate for `epoch` (1-based) of `epochs`,
 * falling from `maxLr` at epoch 1 to `minLr` at the last epoch.
 */
export function cosineLr(epoch: number, epochs: number, maxLr: number, minLr = 0): number {
  if (epochs <= 1) return maxLr;
  const progress = Math.min(Math.max((epoch - 1) / (epochs - 1), 0), 1);
  return minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * progress));
}

/**
 * One-cycle schedule (Smith & Topin 2019), per step: the rate climbs
 * linearly from `maxLr / 25` to `maxLr` over the first `warmup` fraction of
 * training, then anneals by cosine to `minLr`. `progress` runs from 0 (the
 * first step) to 1 (the end of the last epoch).
 */
export function oneCycleLr(progress: number, maxLr: number, minLr = 0, warmup = 0.15): number {
  const p = Math.min(Math.max(progress, 0), 1);
  if (p < warmup) return maxLr / 25 + (maxLr - maxLr / 25) * (p / warmup);
  const q = warmup >= 1 ? 1 : (p - warmup) / (1 - warmup);
  return minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * q));
}

/** The settings a learning rate depends on. */
export interface ScheduleSettings {
  schedule: "plateau" | "cosine" | "onecycle";
  epochs: number;
  lr: number;
  minLr: number;
}

/**
 * The learning rate at step `fraction` (0..1) of `epoch` (1-based), the one
 * place the schedules are told apart (as nanoGPT's get_lr): cosine changes
 * once an epoch, one-cycle every step, and the plateau schedule keeps
 * `plateauLr`, the rate ReduceLROnPlateau last set.
 */
export function learningRate(settings: ScheduleSettings, epoch: number, fraction: number, plateauLr: number): number {
  switch (settings.schedule) {
    case "cosine":
      return cosineLr(epoch, settings.epochs, settings.lr, settings.minLr);
    case "onecycle":
      return oneCycleLr((epoch - 1 + fraction) / settings.epochs, settings.lr, settings.minLr);
    case "plateau":
      return plateauLr;
  }
}
