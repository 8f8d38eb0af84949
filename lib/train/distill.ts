/**
 * Knowledge distillation (`deno task train --teacher MODEL_DIR`): a saved
 * model (say the shipped ensemble) predicts every training image once, and
 * each training target blends its label with those probabilities
 * (`trainingTargets` in losses.ts), so one network learns what the teacher
 * knows about look-alike classes.
 */
import { join } from "node:path";
import type { FaceSet } from "../data/dataset.ts";
import { predictSet } from "../eval/evaluate.ts";
import { argmaxRows } from "../eval/metrics.ts";
import { loadModel } from "../model/model_io.ts";
import { readJson, writeFolderAtomic } from "../util/files.ts";
import { exists } from "../util/paths.ts";
import { runPaths } from "./run_folder.ts";

/** What `out/teacher/source.json` records: whose probabilities these are, and on how many images. */
interface TeacherSource {
  teacher: string;
  n: number;
  /** Averaged over the test-time views (mirror and shifts; `--teacher-tta`). */
  tta?: boolean;
}

/**
 * `teacherDir`'s probabilities on the images of `train` (n x classes; with
 * `tta`, the mean over the test-time views). Kept
 * in `out/teacher/` (written whole or not at all), so a resumed run reuses
 * them instead of predicting again.
 */
export async function teacherProbabilities(
  teacherDir: string,
  out: string,
  train: FaceSet,
  labels: readonly string[],
  log: (m: string) => void,
  tta = false,
): Promise<Float32Array> {
  const dir = runPaths(out).teacher;
  if (exists(join(dir, "source.json"))) {
    const source = readJson<TeacherSource>(join(dir, "source.json"));
    if (source.teacher === teacherDir && source.n === train.n && (source.tta ?? false) === tta) {
      log(`teacher: reusing ${dir} (${teacherDir}${tta ? " with TTA" : ""} on ${train.n} training images)`);
      return new Float32Array(Deno.readFileSync(join(dir, "probabilities.bin")).buffer);
    }
  }
  const { model, metadata } = await loadModel(teacherDir, { fold: true });
  if (metadata.labels.join() !== labels.join()) {
    model.dispose();
    throw new Error(
      `--teacher ${teacherDir}: its classes (${metadata.labels.join(", ")}) are not the data's (${labels.join(", ")})`,
    );
  }
  const probabilities = await predictSet(model, train, { tta, progressLabel: `teacher ${teacherDir}` });
  model.dispose();
  const source: TeacherSource = { teacher: teacherDir, n: train.n, ...(tta ? { tta } : {}) };
  writeFolderAtomic(dir, { "probabilities.bin": new Uint8Array(probabilities.buffer), "source.json": source });
  log(
    `teacher: ${teacherDir} agrees with ${(100 * agreement(probabilities, train)).toFixed(2)}% of the training labels`,
  );
  return probabilities;
}

/** The share of images whose most probable class under `probabilities` is their label. */
export function agreement(probabilities: Float32Array, set: FaceSet): number {
  const top = argmaxRows(probabilities, probabilities.length / set.n);
  return top.filter((label, i) => label === set.labels[i]).length / set.n;
}
