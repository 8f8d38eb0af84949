/**
 * One worker of the teacher pass (`readPartsInWorkers` in distill.ts): on
 * its own WASM backend it reads the training images through one teacher in
 * one set of views at a time, and keeps each reading as a part file of the
 * pass (`readPart`), as the pass in one process does.
 */
/// <reference lib="deno.worker" />
import { initBackend } from "../backend/backend.ts";
import type { FaceSet } from "../data/dataset.ts";
import { readPart, teacherLoader, type TeacherWorkerRequest } from "./distill.ts";

let train: FaceSet, teachers: ReturnType<typeof teacherLoader>;

self.onmessage = async (event: MessageEvent<TeacherWorkerRequest>) => {
  const request = event.data;
  try {
    if (request.type === "init") {
      await initBackend();
      train = request.train;
      teachers = teacherLoader(request.labels);
    } else {
      await readPart(await teachers.load(request.teacherDir), train, request.tta, request);
    }
    self.postMessage({ type: "done" });
  } catch (error) {
    self.postMessage({ type: "error", message: (error as Error).message });
  }
};
