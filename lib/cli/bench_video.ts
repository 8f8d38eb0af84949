/**
 * `deno task bench:video [--video PATH] [--frames 120] [--model DIR] [--detector D] [--allow-busy]`:
 * live-video speed, side by side in one run on the same decoded frames, in
 * Deno on WASM: our loop (BlazeFace every few frames and the tracker
 * in between, lib/core/tracker.js's policy as the page runs it, and the
 * classifier on every frame) against face-api's usual loop (its tiny face
 * detector and expression net on every frame). Prints one JSON line with
 * `ours_fps` and `faceapi_fps`. Refuses a busy machine, as bench:train does.
 */
import { initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import type { RgbaImage } from "../data/images.ts";
import {
  classifyCrops,
  detectFaces,
  DETECTOR_FLAG,
  type DetectorChoice,
  faceApiInput,
  faceApiOptions,
  loadFaceApi,
  loadFaceDetectors,
} from "../vision/faces.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";
import { probeVideo, videoFrames } from "../vision/video.ts";
import { type Face, faceCrop, toGray } from "../core/face_pipeline.js";
import { FaceTracker } from "../core/tracker.js";
import { idleForTimings } from "../util/machine.ts";
import { displayPath, projectPath } from "../util/paths.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const BENCH_VIDEO_FLAGS = {
  video: {
    type: "string",
    value: "PATH",
    default: projectPath("..", "shared", "media", "WolfgangLanger_Pexels.mp4"),
    help: "the video (640x360 or 640x480 suits)",
  },
  frames: { type: "integer", min: 10, default: 120, help: "frames timed (from the start of the video)" },
  model: MODEL_FLAG,
  detector: DETECTOR_FLAG,
  "allow-busy": { type: "boolean", help: "run on a busy machine, marking the figures machine_busy" },
} as const satisfies FlagTable;

/** Frames per second of `step` over every frame, after one warm-up frame. */
async function framesPerSecond(frames: RgbaImage[], step: (frame: RgbaImage, index: number) => Promise<unknown>) {
  await step(frames[0], 0);
  const start = performance.now();
  for (const [i, frame] of frames.entries()) await step(frame, i);
  return frames.length / ((performance.now() - start) / 1000);
}

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "bench:video", summary: "Live-video speed of our loop against face-api's, side by side in Deno." },
    BENCH_VIDEO_FLAGS,
    args,
  );
  const { busy, machineBusy } = await idleForTimings(values["allow-busy"]);
  await initBackend();
  const loaded = await loadModel(defaultModelDir(values.model), { fold: true });
  const detector = values.detector as DetectorChoice;
  await loadFaceDetectors(detector);
  const faceapi = await loadFaceApi();
  const info = await probeVideo(values.video);
  const frames: RgbaImage[] = [];
  for await (const { image } of videoFrames(values.video, info)) {
    frames.push(image);
    if (frames.length === values.frames) break;
  }

  let tracker = new FaceTracker<Face>();
  const ours = async (frame: RgbaImage, index: number) => {
    if (index === 0) tracker = new FaceTracker<Face>();
    const time = index / info.fps;
    if (tracker.shouldDetect(index)) tracker.detected(time, await detectFaces(frame, { detector }));
    const followed = tracker.followed();
    if (followed.length === 0) return;
    const gray = toGray(frame);
    const crops = followed.map((f) => faceCrop(gray, f, loaded.metadata.inputSize));
    const rows = await classifyCrops(loaded, crops);
    const classes = loaded.metadata.labels.length;
    followed.forEach((f, i) => tracker.smooth(f.id, time, Array.from(rows.subarray(i * classes, (i + 1) * classes))));
  };
  const options = faceApiOptions();
  const theirs = async (frame: RgbaImage) => {
    const input = faceApiInput(frame);
    await faceapi.detectAllFaces(input as never, options).withFaceExpressions();
    input.dispose();
  };
  const oursFps = await framesPerSecond(frames, ours);
  const faceapiFps = await framesPerSecond(frames, theirs);
  const round = (v: number) => Math.round(v * 10) / 10;
  console.log(JSON.stringify({
    video: displayPath(values.video),
    size: `${info.width}x${info.height}`,
    frames: frames.length,
    detector,
    ours_fps: round(oursFps),
    faceapi_fps: round(faceapiFps),
    ratio: Math.round((oursFps / faceapiFps) * 100) / 100,
    detect_every: tracker.settings.detectEvery,
    busy_cores_before: busy === undefined ? null : Math.round(busy * 100) / 100,
    machine_busy: machineBusy,
  }));
}

if (import.meta.main) await runCommand(main);
