/**
 * Knowledge distillation (`deno task train --teacher MODEL_DIR`): a saved
 * model (say the shipped ensemble) predicts every training image once, and
 * each training target blends its label with those probabilities
 * (`trainingTargets` in losses.ts), so one network learns what the teacher
 * knows about look-alike classes. Several teachers (`--teacher` repeated)
 * teach their mean; each is read at the training prior, as the labels are:
 * a net trained with the prior in its loss, or shipped balanced, is shifted
 * back (`balanceClasses`) before it predicts.
 */
import type * as tf from "@tensorflow/tfjs";
import { join } from "node:path";
import { DEFAULT_AUGMENT, randomMatrices } from "../data/augment.ts";
import { type FaceSet, IMAGE_SIZE, viewRow } from "../data/dataset.ts";
import { balanceClasses, trainingPrior } from "../eval/calibration.ts";
import { predictSet } from "../eval/evaluate.ts";
import { argmaxRows } from "../eval/metrics.ts";
import { loadModel, type ModelMetadata, priorStrength } from "../model/model_io.ts";
import { readJson, writeFileAtomic, writeFolderAtomic } from "../util/files.ts";
import { exists } from "../util/paths.ts";
import { seededRandom } from "../util/random.ts";
import { teacherDirs } from "./config.ts";
import { runPaths } from "./run_folder.ts";

/** What `out/teacher/source.json` records: whose probabilities these are, and on how many images. */
interface TeacherSource {
  /** The teacher folders (one as a string in runs saved before there could be several). */
  teacher: string[] | string;
  n: number;
  /** Averaged over the test-time views (mirror and shifts; `--teacher-tta`). */
  tta?: boolean;
  /** On this many augmented views of each image (`--teacher-views`), drawn with this seed; kept in `views.bin`. */
  views?: number;
  seed?: number;
}

/** With --teacher-views: how many views of each image the teacher reads, and the seed that draws them. */
export interface TeacherViews {
  count: number;
  seed: number;
}

/** How the teachers read the training images. */
export interface TeacherReading {
  /** Each reading the mean over the test-time views (mirror and shifts; `--teacher-tta`). */
  tta?: boolean;
  /** On this many augmented views of each image instead (`--teacher-views`). */
  views?: TeacherViews;
  /** Read in this many worker processes, one per core (WASM); 1 (the default): in this process. */
  workers?: number;
}

/**
 * One part of the pass: a teacher's reading of one view of every image (or
 * of the images as they are), kept at `file`.
 */
export interface TeacherPart {
  teacherDir: string;
  /** The view's transforms, 8 per image; none: the images as they are. */
  matrices?: Float32Array;
  file: string;
  label: string;
}

/** What teacher_worker.ts is asked: the images and classes once, then parts. */
export type TeacherWorkerRequest =
  | { type: "init"; train: FaceSet; labels: readonly string[] }
  | { type: "part"; tta: boolean } & TeacherPart;

/**
 * The prior strength that moves a saved model's output to the training
 * prior: minus what its loss (`--logit-adjust`) and `ship --balance` put on.
 */
export function strengthToTrainingPrior(metadata: ModelMetadata): number {
  const config = (metadata.training as { config?: { logitAdjust?: number } } | undefined)?.config;
  return -((config?.logitAdjust ?? 0) + priorStrength(metadata));
}

/**
 * The mean of the `teachers` models' probabilities on the images of
 * `train` (n x classes), each read at the training prior (with `tta`, each
 * the mean over the test-time views; with `views`, on that many augmented
 * views of each image instead, views x n x classes, their transforms beside
 * them). Kept in `out/teacher/` (written whole or not at all), so a resumed
 * run reuses them instead of predicting again; while the pass runs, each
 * teacher's reading of each view is kept in `out/teacher-parts/`, so a pass
 * stopped part-way goes on from its last part. With `workers` > 1 the
 * parts are read side by side in that many worker processes.
 */
export async function teacherProbabilities(
  teachers: readonly string[],
  out: string,
  train: FaceSet,
  labels: readonly string[],
  log: (m: string) => void,
  { tta = false, views, workers = 1 }: TeacherReading = {},
): Promise<Pick<FaceSet, "teacher" | "teacherViews">> {
  const dir = runPaths(out).teacher;
  const names = teachers.join(" + ");
  const seen = views ? ` in ${views.count} views of each` : "";
  const perImage = views?.count ?? 1;
  if (exists(join(dir, "source.json"))) {
    const source = readJson<TeacherSource>(join(dir, "source.json"));
    if (
      teacherDirs({ teacher: source.teacher }).join("\n") === teachers.join("\n") && source.n === train.n &&
      (source.tta ?? false) === tta && source.views === views?.count && source.seed === views?.seed
    ) {
      const teacher = readFloats(join(dir, "probabilities.bin"), train.n * perImage * labels.length);
      const teacherViews = views && readFloats(join(dir, "views.bin"), train.n * perImage * 8);
      if (teacher && (!views || teacherViews)) {
        log(`teacher: reusing ${dir} (${names}${tta ? " with TTA" : ""} on ${train.n} training images${seen})`);
        return { teacher, ...(teacherViews ? { teacherViews } : {}) };
      }
      log(`teacher: ${dir} is missing a file or has one of the wrong size; predicting again`);
    }
  }
  const matrices = views &&
    randomMatrices(train.n * views.count, IMAGE_SIZE, DEFAULT_AUGMENT, seededRandom(views.seed));
  const source: TeacherSource = {
    teacher: [...teachers],
    n: train.n,
    ...(tta ? { tta } : {}),
    ...(views ? { views: views.count, seed: views.seed } : {}),
  };
  const folder = openParts(runPaths(out).teacherParts, source, log);
  const parts = teachers.map((teacherDir, t) =>
    Array.from({ length: perImage }, (_, v): TeacherPart => ({
      teacherDir,
      ...(matrices ? { matrices: matrices.subarray(8 * viewRow(train, 0, v), 8 * viewRow(train, 0, v + 1)) } : {}),
      file: join(folder, `${t}-${v}.bin`),
      label: `teacher ${teacherDir}${matrices ? `, view ${v + 1}/${perImage}` : ""}`,
    }))
  );
  const partBytes = 4 * train.n * labels.length;
  const missing = parts.flat().filter(({ file }) => !exists(file) || Deno.statSync(file).size !== partBytes);
  if (workers > 1) await readPartsInWorkers(missing, train, labels, tta, workers, log);
  else await readPartsHere(missing, train, labels, tta);
  let sum: Float32Array | undefined;
  for (const [t, teacherDir] of teachers.entries()) {
    const probabilities = assembleParts(parts[t], train, labels.length);
    if (teachers.length > 1) {
      const share = agreement(probabilities, train, perImage);
      log(`teacher: ${teacherDir} agrees with ${(100 * share).toFixed(2)}% of the labels`);
    }
    if (sum) probabilities.forEach((p, i) => sum![i] += p);
    else sum = probabilities;
  }
  const mean = sum!.map((p) => p / teachers.length);
  writeFolderAtomic(dir, {
    "probabilities.bin": new Uint8Array(mean.buffer),
    ...(matrices ? { "views.bin": new Uint8Array(matrices.buffer) } : {}),
    "source.json": source,
  });
  Deno.removeSync(folder, { recursive: true });
  const share = agreement(mean, train, perImage);
  log(`teacher: ${names}${seen} agrees with ${(100 * share).toFixed(2)}% of the training labels`);
  return { teacher: mean, ...(matrices ? { teacherViews: matrices } : {}) };
}

/**
 * The folder of an unfinished pass's parts for `source`, its parts kept if
 * an earlier pass of the same source left them, cleared otherwise.
 */
function openParts(parts: string, source: TeacherSource, log: (m: string) => void): string {
  const file = join(parts, "source.json");
  const same = exists(file) && Deno.readTextFileSync(file) === JSON.stringify(source);
  const kept = same ? [...Deno.readDirSync(parts)].filter((entry) => entry.name.endsWith(".bin")).length : 0;
  if (kept) log(`teacher: going on from the ${kept} part(s) an unfinished pass kept in ${parts}`);
  if (same) return parts;
  if (exists(parts)) Deno.removeSync(parts, { recursive: true });
  Deno.mkdirSync(parts, { recursive: true });
  writeFileAtomic(file, JSON.stringify(source));
  return parts;
}

/**
 * Read `jobs` in `workers` worker processes (teacher_worker.ts), each taking
 * the next part as it finishes one; each part is kept in its file. A
 * worker's failure (a damaged teacher, say) stops the pass with its message.
 */
async function readPartsInWorkers(
  jobs: TeacherPart[],
  train: FaceSet,
  labels: readonly string[],
  tta: boolean,
  workers: number,
  log: (m: string) => void,
): Promise<void> {
  if (!jobs.length) return;
  const url = new URL("./teacher_worker.ts", import.meta.url).href;
  const pool = Array.from({ length: Math.min(workers, jobs.length) }, () => new Worker(url, { type: "module" }));
  const start = performance.now();
  let next = 0, done = 0;
  log(`teacher: reading ${jobs.length} part(s) in ${pool.length} workers`);
  try {
    await Promise.all(pool.map(async (worker) => {
      await ask(worker, { type: "init", train, labels });
      while (next < jobs.length) {
        const job = jobs[next++];
        const matrices = job.matrices?.slice(); // the view's own copy, moved to the worker
        await ask(worker, { type: "part", tta, ...job, matrices }, matrices ? [matrices.buffer] : []);
        const seconds = (performance.now() - start) / 1000, left = jobs.length - ++done;
        log(
          `teacher: ${done}/${jobs.length} parts read (${job.label}); about ${
            Math.round(seconds / done * left)
          } s left`,
        );
      }
    }));
  } finally {
    for (const worker of pool) worker.terminate();
  }
}

/** Send `request` to a teacher worker; resolves when it is done, rejects with its error. */
function ask(worker: Worker, request: TeacherWorkerRequest, transfer: Transferable[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<{ type: "done" } | { type: "error"; message: string }>) =>
      event.data.type === "error" ? reject(new Error(event.data.message)) : resolve();
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(`teacher worker: ${event.message}`));
    };
    worker.postMessage(request, transfer);
  });
}

/** The float32 values of a kept file, if it is there and holds exactly `count` of them. */
function readFloats(path: string, count: number): Float32Array | undefined {
  if (!exists(path)) return undefined;
  const bytes = Deno.readFileSync(path);
  return bytes.length === 4 * count ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : undefined;
}

/**
 * A saved model ready to teach: BatchNorm folded, its output moved to the
 * training prior; refused, in one line, if its classes are not `labels`.
 */
export async function loadTeacher(teacherDir: string, labels: readonly string[]): Promise<tf.LayersModel> {
  const { model, metadata } = await loadModel(teacherDir, { fold: true });
  if (metadata.labels.join() !== labels.join()) {
    model.dispose();
    throw new Error(
      `--teacher ${teacherDir}: its classes (${metadata.labels.join(", ")}) are not the data's (${labels.join(", ")})`,
    );
  }
  const shift = strengthToTrainingPrior(metadata);
  if (shift !== 0) balanceClasses(model, await trainingPrior(metadata), shift);
  return model;
}

/** Read `jobs` in this process, in order, each teacher loaded once; each part is kept in its file. */
async function readPartsHere(
  jobs: TeacherPart[],
  train: FaceSet,
  labels: readonly string[],
  tta: boolean,
): Promise<void> {
  const teachers = teacherLoader(labels);
  try {
    for (const job of jobs) await readPart(await teachers.load(job.teacherDir), train, tta, job, true);
  } finally {
    teachers.dispose();
  }
}

/**
 * Teachers loaded as parts ask for them (`loadTeacher`), the last one kept:
 * parts come in teacher order, so each teacher is loaded once.
 */
export function teacherLoader(labels: readonly string[]): {
  load(dir: string): Promise<tf.LayersModel>;
  dispose(): void;
} {
  let held: { dir: string; model: tf.LayersModel } | undefined;
  return {
    async load(dir) {
      if (held?.dir !== dir) {
        held?.model.dispose();
        held = undefined; // so a failed load never leaves a disposed model held
        held = { dir, model: await loadTeacher(dir, labels) };
      }
      return held.model;
    },
    dispose() {
      held?.model.dispose();
      held = undefined;
    },
  };
}

/** `model`'s probabilities on `part`'s view of `train`, kept in the part's file (with `progress`, a bar). */
export async function readPart(
  model: tf.LayersModel,
  train: FaceSet,
  tta: boolean,
  part: TeacherPart,
  progress = false,
): Promise<void> {
  const probabilities = await predictSet(model, train, {
    tta,
    ...(part.matrices ? { matrices: part.matrices } : {}),
    ...(progress ? { progressLabel: part.label } : {}),
  });
  writeFileAtomic(part.file, new Uint8Array(probabilities.buffer));
}

/** One teacher's probabilities, put together from its parts' files: views x n x classes. */
function assembleParts(parts: TeacherPart[], train: FaceSet, classes: number): Float32Array {
  const out = new Float32Array(train.n * parts.length * classes);
  for (const [v, { file }] of parts.entries()) {
    const kept = readFloats(file, train.n * classes);
    if (!kept) throw new Error(`teacher: the part ${file} is missing or of the wrong size`);
    out.set(kept, classes * viewRow(train, 0, v));
  }
  return out;
}

/**
 * The share of images whose most probable class under `probabilities` is
 * their label (with `perImage` views of each, the share of views).
 */
export function agreement(probabilities: Float32Array, set: FaceSet, perImage = 1): number {
  const top = argmaxRows(probabilities, probabilities.length / (set.n * perImage));
  return top.filter((label, i) => label === set.labels[i % set.n]).length / top.length;
}
