/**
 * One worker of the teacher pass (`readPartsInWorkers` in distill.ts): on
 * its own WASM backend it reads the training images through one teacher in
 * one set of views at a time, and keeps each reading as a part file of the
 * pass, as the pass in one process does.
 */
/// <reference lib="deno.worker" />
import type * as tf from "@tensorflow/tfjs";
import { initBackend } from "../backend/backend.ts";
import type { FaceSet } from "../data/dataset.ts";
import { predictSet } from "../eval/evaluate.ts";
import { writeFileAtomic } from "../util/files.ts";
import { loadTeacher, type TeacherWorkerRequest } from "./distill.ts";

let train: FaceSet, labels: readonly string[];
let teacher: { dir: string; model: tf.LayersModel } | undefined;

self.onmessage = async (event: MessageEvent<TeacherWorkerRequest>) => {
  const request = event.data;
  try {
    if (request.type === "init") {
      await initBackend();
      ({ train, labels } = request);
    } else {
      if (teacher?.dir !== request.teacherDir) {
        teacher?.model.dispose();
        teacher = undefined;
        teacher = { dir: request.teacherDir, model: await loadTeacher(request.teacherDir, labels) };
      }
      const probabilities = await predictSet(teacher.model, train, {
        tta: request.tta,
        ...(request.matrices ? { matrices: request.matrices } : {}),
      });
      writeFileAtomic(request.part, new Uint8Array(probabilities.buffer));
    }
    self.postMessage({ type: "done" });
  } catch (error) {
    self.postMessage({ type: "error", message: (error as Error).message });
  }
};
