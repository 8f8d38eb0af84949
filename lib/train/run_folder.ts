/**
 * The run folder, and the one place its layout is known: every path in it,
 * the lock that keeps one writer at a time, and what a crash at any point
 * leaves (settled before a run starts or resumes). Training, averaging,
 * distillation, shipping and the notebooks ask this module for paths.
 *
 *   RUN/
 *     config.json        every setting of the run
 *     history.csv        one row per epoch (history.ts)
 *     last/              checkpoint: weights, optimizer state, train_state.json (a resume continues from it)
 *     best/              the best epoch's weights on PublicTest
 *     snapshots/epoch-NNN/, averaged/   with --average-from: per-epoch weights and their mean
 *     teacher/           with --teacher: the teacher's probabilities on the training images
 *     teacher-parts/     while the teacher pass runs: each teacher's reading of each view, to go on from
 *     report.json, confusion_matrix.png|svg, curves.png|svg   PublicTest report of best/, learning curves
 *     command.txt, train.log   how the run was started, its console (committed runs)
 *     lock               held by the process writing the run: its PID and start time
 */
import { join } from "node:path";
import { recoverFolder } from "../util/files.ts";
import { exists } from "../util/paths.ts";

/** The paths of a run folder's parts. */
export function runPaths(run: string) {
  return {
    config: join(run, "config.json"),
    history: join(run, "history.csv"),
    last: join(run, "last"),
    trainState: join(run, "last", "train_state.json"),
    best: join(run, "best"),
    averaged: join(run, "averaged"),
    snapshots: join(run, "snapshots"),
    teacher: join(run, "teacher"),
    teacherParts: join(run, "teacher-parts"),
    curves: join(run, "curves"),
    report: join(run, "report.json"),
    lock: join(run, "lock"),
  };
}

/** Where a run keeps the weights of one epoch for averaging. */
export function snapshotDir(run: string, epoch: number): string {
  return join(runPaths(run).snapshots, `epoch-${String(epoch).padStart(3, "0")}`);
}

/** Every snapshot folder in `run`, also those only present as a crash's leftovers (`epoch-NNN.new`). */
function snapshotDirs(run: string): string[] {
  const dir = runPaths(run).snapshots;
  if (!exists(dir)) return [];
  const names = [...Deno.readDirSync(dir)].map((e) => /^(epoch-\d+)(\..+)?$/.exec(e.name)?.[1]).filter((n) => n);
  return [...new Set(names)].map((name) => join(dir, name!));
}

/** Epochs with a saved snapshot in `run`, ascending. */
export function snapshotEpochs(run: string): number[] {
  const dir = runPaths(run).snapshots;
  if (!exists(dir)) return [];
  return [...Deno.readDirSync(dir)]
    .map((entry) => /^epoch-(\d+)$/.exec(entry.name))
    .filter((match) => match !== null)
    .map((match) => Number(match![1]))
    .sort((a, b) => a - b);
}

/** What the lock file says about its holder. */
interface LockHolder {
  pid: number;
  /** The process's start time (Linux: /proc/PID/stat field 22), so a reused PID is not taken for the holder. */
  start?: string;
  host: string;
  since: string;
}

/** A process's start time on Linux, or undefined when it is not running (or there is no /proc). */
function processStart(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Whether the lock's holder may still be running (when it cannot be known, it is taken to be). */
function holderAlive(holder: LockHolder): boolean {
  if (holder.host !== Deno.hostname() || !exists("/proc/self/stat")) return true;
  const start = processStart(holder.pid);
  return start !== undefined && (holder.start === undefined || holder.start === start);
}

/**
 * Take `run`'s lock for this process: the lock file is created only if
 * absent (atomic), holding the PID. A live holder is refused in one line
 * naming it; the lock of a process that is gone is taken over. Returns the
 * release function.
 */
export function lockRun(run: string, log: (m: string) => void = () => {}): () => void {
  Deno.mkdirSync(run, { recursive: true });
  const path = runPaths(run).lock;
  const me: LockHolder = {
    pid: Deno.pid,
    start: processStart(Deno.pid),
    host: Deno.hostname(),
    since: new Date().toISOString(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      Deno.writeTextFileSync(path, JSON.stringify(me) + "\n", { createNew: true });
      return () => {
        if (readHolder(path)?.pid === Deno.pid) Deno.removeSync(path);
      };
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const holder = readHolder(path);
    if (holder && holderAlive(holder)) {
      throw new Error(
        `${run} is in use by process ${holder.pid} on ${holder.host} (since ${holder.since}; ${path}): ` +
          `wait for it to finish, or stop it`,
      );
    }
    log(`${path}: taking over the lock of process ${holder?.pid ?? "?"}, which is no longer running`);
    try {
      Deno.removeSync(path);
    } catch { /* another process took it over first: try again */ }
  }
  throw new Error(`${path}: could not take the lock (other processes keep taking it)`);
}

/** The lock file's holder, or undefined when it is unreadable (a crash while writing it: stale). */
function readHolder(path: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(Deno.readTextFileSync(path));
    return typeof holder?.pid === "number" ? holder : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Settle what a crash left in `run` and say how training goes on: from
 * `last/` ("resume"), or from the start ("fresh") when the run had not yet
 * written a checkpoint (whatever an earlier start left is cleared). A new
 * run over a checkpoint, or a resume with nothing to resume, is refused.
 */
export function prepareRun(run: string, resume: boolean, log: (m: string) => void): "resume" | "fresh" {
  const paths = runPaths(run);
  for (const dir of [paths.last, paths.best, paths.averaged, paths.teacher, ...snapshotDirs(run)]) {
    for (const line of recoverFolder(dir)) log(`recovered after a crash: ${line}`);
  }
  const checkpoint = exists(paths.trainState);
  if (checkpoint && !resume) {
    throw new Error(`${run} already holds a run; pass --resume to continue it, or choose another --out`);
  }
  if (checkpoint) return "resume";
  if (resume && !exists(paths.config)) throw new Error(`--resume: ${run} holds no run (no ${paths.config})`);
  const leftovers = [paths.history, paths.best, paths.averaged, paths.snapshots, paths.report].filter(exists);
  if (leftovers.length || resume) {
    log(`${run}: the run stopped before its first checkpoint; starting it again from epoch 1`);
    for (const path of leftovers) Deno.removeSync(path, { recursive: true });
  }
  return "fresh";
}
