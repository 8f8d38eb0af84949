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
import { readJson, writeFolderAtomic } from "../util/files.ts";
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
 * run reuses them instead of predicting again.
 */
export async function teacherProbabilities(
  teachers: readonly string[],
  out: string,
  train: FaceSet,
  labels: readonly string[],
  log: (m: string) => void,
  tta = false,
  views?: TeacherViews,
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
  let sum: Float32Array | undefined;
  for (const teacherDir of teachers) {
    const probabilities = await oneTeacher(teacherDir, train, labels, tta, matrices);
    if (teachers.length > 1) {
      const share = agreement(probabilities, train, perImage);
      log(`teacher: ${teacherDir} agrees with ${(100 * share).toFixed(2)}% of the labels`);
    }
    if (sum) probabilities.forEach((p, i) => sum![i] += p);
    else sum = probabilities;
  }
  const mean = sum!.map((p) => p / teachers.length);
  const source: TeacherSource = {
    teacher: [...teachers],
    n: train.n,
    ...(tta ? { tta } : {}),
    ...(views ? { views: views.count, seed: views.seed } : {}),
  };
  writeFolderAtomic(dir, {
    "probabilities.bin": new Uint8Array(mean.buffer),
    ...(matrices ? { "views.bin": new Uint8Array(matrices.buffer) } : {}),
    "source.json": source,
  });
  const share = agreement(mean, train, perImage);
  log(`teacher: ${names}${seen} agrees with ${(100 * share).toFixed(2)}% of the training labels`);
  return { teacher: mean, ...(matrices ? { teacherViews: matrices } : {}) };
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

/**
 * One teacher's probabilities on `train`, read at the training prior; with
 * `matrices` (views x n x 8), on each view: views x n x classes.
 */
async function oneTeacher(
  teacherDir: string,
  train: FaceSet,
  labels: readonly string[],
  tta: boolean,
  matrices?: Float32Array,
): Promise<Float32Array> {
  const model = await loadTeacher(teacherDir, labels);
  try {
    if (!matrices) return await predictSet(model, train, { tta, progressLabel: `teacher ${teacherDir}` });
    const count = matrices.length / (8 * train.n), classes = labels.length;
    const out = new Float32Array(train.n * count * classes);
    for (let v = 0; v < count; v++) {
      const label = `teacher ${teacherDir}, view ${v + 1}/${count}`;
      const [from, to] = [viewRow(train, 0, v), viewRow(train, 0, v + 1)]; // view v of every image
      const probabilities = await predictSet(model, train, {
        matrices: matrices.subarray(8 * from, 8 * to),
        progressLabel: label,
      });
      out.set(probabilities, classes * from);
    }
    return out;
  } finally {
    model.dispose();
  }
}

/**
 * The share of images whose most probable class under `probabilities` is
 * their label (with `perImage` views of each, the share of views).
 */
export function agreement(probabilities: Float32Array, set: FaceSet, perImage = 1): number {
  const top = argmaxRows(probabilities, probabilities.length / (set.n * perImage));
  return top.filter((label, i) => label === set.labels[i % set.n]).length / top.length;
}
