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
import { join } from "node:path";
import type { FaceSet } from "../data/dataset.ts";
import { balanceClasses, trainingPrior } from "../eval/calibration.ts";
import { predictSet } from "../eval/evaluate.ts";
import { argmaxRows } from "../eval/metrics.ts";
import { loadModel, type ModelMetadata, priorStrength } from "../model/model_io.ts";
import { readJson, writeFolderAtomic } from "../util/files.ts";
import { exists } from "../util/paths.ts";
import { teacherDirs } from "./config.ts";
import { runPaths } from "./run_folder.ts";

/** What `out/teacher/source.json` records: whose probabilities these are, and on how many images. */
interface TeacherSource {
  /** The teacher folders (one as a string in runs saved before there could be several). */
  teacher: string[] | string;
  n: number;
  /** Averaged over the test-time views (mirror and shifts; `--teacher-tta`). */
  tta?: boolean;
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
 * the mean over the test-time views). Kept in `out/teacher/` (written whole
 * or not at all), so a resumed run reuses them instead of predicting again.
 */
export async function teacherProbabilities(
  teachers: readonly string[],
  out: string,
  train: FaceSet,
  labels: readonly string[],
  log: (m: string) => void,
  tta = false,
): Promise<Float32Array> {
  const dir = runPaths(out).teacher;
  const names = teachers.join(" + ");
  if (exists(join(dir, "source.json"))) {
    const source = readJson<TeacherSource>(join(dir, "source.json"));
    if (
      teacherDirs({ teacher: source.teacher }).join("\n") === teachers.join("\n") && source.n === train.n &&
      (source.tta ?? false) === tta
    ) {
      log(`teacher: reusing ${dir} (${names}${tta ? " with TTA" : ""} on ${train.n} training images)`);
      return new Float32Array(Deno.readFileSync(join(dir, "probabilities.bin")).buffer);
    }
  }
  let sum: Float32Array | undefined;
  for (const teacherDir of teachers) {
    const probabilities = await oneTeacher(teacherDir, train, labels, tta);
    if (teachers.length > 1) {
      log(`teacher: ${teacherDir} agrees with ${(100 * agreement(probabilities, train)).toFixed(2)}% of the labels`);
    }
    if (sum) probabilities.forEach((p, i) => sum![i] += p);
    else sum = probabilities;
  }
  const mean = sum!.map((p) => p / teachers.length);
  const source: TeacherSource = { teacher: [...teachers], n: train.n, ...(tta ? { tta } : {}) };
  writeFolderAtomic(dir, { "probabilities.bin": new Uint8Array(mean.buffer), "source.json": source });
  log(`teacher: ${names} agrees with ${(100 * agreement(mean, train)).toFixed(2)}% of the training labels`);
  return mean;
}

/** One teacher's probabilities on `train`, read at the training prior. */
async function oneTeacher(
  teacherDir: string,
  train: FaceSet,
  labels: readonly string[],
  tta: boolean,
): Promise<Float32Array> {
  const { model, metadata } = await loadModel(teacherDir, { fold: true });
  try {
    if (metadata.labels.join() !== labels.join()) {
      throw new Error(
        `--teacher ${teacherDir}: its classes (${metadata.labels.join(", ")}) are not the data's (${
          labels.join(", ")
        })`,
      );
    }
    const shift = strengthToTrainingPrior(metadata);
    if (shift !== 0) balanceClasses(model, await trainingPrior(metadata), shift);
    return await predictSet(model, train, { tta, progressLabel: `teacher ${teacherDir}` });
  } finally {
    model.dispose();
  }
}

/** The share of images whose most probable class under `probabilities` is their label. */
export function agreement(probabilities: Float32Array, set: FaceSet): number {
  const top = argmaxRows(probabilities, probabilities.length / set.n);
  return top.filter((label, i) => label === set.labels[i]).length / set.n;
}
