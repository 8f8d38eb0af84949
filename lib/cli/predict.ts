/**
 * `deno task predict [--model DIR] PATH...`: the emotions of the faces in
 * photos, one JSON line per image:
 * {"path", "width", "height", "faces": [{"box", "score", "emotion", "probabilities"}], "error"}.
 * PATH is an image or a folder (recursed). A bad file gets an `error` and
 * the batch goes on; the exit status is 1 only when every input failed.
 * With --annotate, each line also names its picture (`annotated`). A video
 * (mp4, mov, webm, mkv; decoded by ffmpeg) gives a line per analysed frame
 * with `time`, and per face a `track` id and `smoothed` probabilities;
 * `--fps`, `--annotate OUT.mp4` and `--timeline OUT.png|svg` go with it.
 */
import { basename, dirname, extname, join, resolve } from "node:path";
import { type BackendChoice, initBackend } from "../backend/backend.ts";
import { type LoadedModel, loadModel } from "../model/model_io.ts";
import { DETECTOR_FLAG, type DetectorChoice, type FaceOptions } from "../vision/faces.ts";
import { FACE_SETTINGS } from "../core/face_pipeline.js";
import { annotationSvg, collectImages, defaultModelDir, MODEL_FLAG, predictFiles } from "../vision/predict.ts";
import { emotionTimelineSpec, saveChart, svgToPng } from "../util/charts.ts";
import {
  annotatedFrame,
  frameRate,
  isVideoFile,
  predictVideo,
  type VideoOptions,
  VideoWriter,
} from "../vision/video.ts";
import { isSameFile, writeFileAtomic } from "../util/files.ts";
import { TRACK_SETTINGS } from "../core/tracker.js";
import { ProgressBar } from "../util/progress.ts";
import { BACKEND_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const PREDICT_FLAGS = {
  model: MODEL_FLAG,
  annotate: {
    type: "string",
    value: "DIR|OUT.mp4",
    help: "also write each photo with its faces boxed and labelled into DIR (a video: into OUT.mp4)",
  },
  fps: { type: "number", min: 0.01, value: "N", help: "videos: frames analysed per second (default: every frame)" },
  timeline: { type: "string", value: "OUT.png|svg", help: "videos: each face's emotions over time, as a chart" },
  smooth: {
    type: "number",
    min: 0,
    default: TRACK_SETTINGS.timeConstant,
    value: "SECONDS",
    help: "videos: time constant of each face's probability smoothing (0: none)",
  },
  "no-detect": { type: "boolean", help: "take each image as one face crop (no face detection)" },
  detector: DETECTOR_FLAG,
  "min-face": {
    type: "integer",
    min: 1,
    default: FACE_SETTINGS.minFace,
    value: "PX",
    help: "smallest face side, in the photo's pixels",
  },
  "batch-size": { type: "integer", min: 1, default: 16, help: "images decoded and classified together" },
  backend: BACKEND_FLAG,
} as const satisfies FlagTable;

/** Command line. Returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    {
      name: "predict",
      summary: "Find the faces in photos (or a video) and print their emotions.",
      positionals: "PATH...",
    },
    PREDICT_FLAGS,
    args,
  );
  if (positionals.length === 0) {
    throw new Error("give at least one image or folder: deno task predict [--model DIR] PATH... (see --help)");
  }
  await initBackend(values.backend as BackendChoice);
  const loaded = await loadModel(defaultModelDir(values.model), { fold: true });
  const videos = positionals.filter(isVideoFile);
  const options: FaceOptions = {
    noDetect: values["no-detect"],
    minFace: values["min-face"],
    detector: values.detector as DetectorChoice,
  };
  if (videos.length) {
    return await predictVideos(loaded, videos, positionals.length, {
      ...values,
      ...options,
      detector: options.detector,
    });
  }
  if (values.timeline || values.fps !== undefined) throw new Error("--timeline and --fps are for videos");
  const files = collectImages(positionals);
  if (values.annotate) Deno.mkdirSync(values.annotate, { recursive: true });
  const bar = files.length > 1 ? new ProgressBar(files.length, "predict", "img") : undefined;
  const batchSize = values["batch-size"];
  // Inputs are taken names: an annotation never overwrites a photo it was given (x.annotated.png among them).
  const annotated = new Set<string>();
  const inputs = values.annotate ? files : [];
  let failed = 0, done = 0;
  for (let start = 0; start < files.length; start += batchSize) {
    const batch = files.slice(start, start + batchSize);
    for (const { image, scale, ...prediction } of await predictFiles(loaded, batch, options, !!values.annotate)) {
      if (prediction.error) failed++;
      if (values.annotate && image) {
        const out = annotationPath(values.annotate, prediction.path, annotated, inputs);
        try {
          writeFileAtomic(out, await svgToPng(await annotationSvg(image, prediction.faces, scale), 1));
          Object.assign(prediction, { annotated: out });
        } catch (error) {
          failed++;
          Object.assign(prediction, { error: `--annotate ${(error as Error).message}` });
        }
      }
      console.log(JSON.stringify(prediction));
      bar?.update(++done);
    }
  }
  return failed === files.length ? 1 : 0;
}

/**
 * Predict video files: a JSON line per analysed frame, and with
 * `annotate`/`timeline` the annotated video and the emotion timeline.
 */
async function predictVideos(
  loaded: LoadedModel,
  videos: string[],
  inputs: number,
  options: VideoOptions & { annotate?: string; timeline?: string; smooth: number },
): Promise<number> {
  if (videos.length !== inputs || videos.length > 1) {
    throw new Error("give one video at a time (photos and other videos in separate commands)");
  }
  const [path] = videos;
  if (options.annotate && !options.annotate.endsWith(".mp4")) {
    throw new Error("--annotate: a video is written as OUT.mp4");
  }
  if (options.timeline && !/\.(png|svg)$/.test(options.timeline)) {
    throw new Error("--timeline: give OUT.png or OUT.svg");
  }
  for (const [flag, out] of [["--annotate", options.annotate], ["--timeline", options.timeline]]) {
    if (out && isSameFile(out, [path])) throw new Error(`${flag} ${out}: that is the input video; give another file`);
    if (out) Deno.mkdirSync(dirname(resolve(out)), { recursive: true });
  }
  const points: { time: number; track: number; probabilities: Record<string, number> }[] = [];
  let writer: VideoWriter | undefined, frames = 0, withFace = 0;
  try {
    const info = await predictVideo(
      loaded,
      path,
      { ...options, timeConstant: options.smooth },
      async (line, image, video) => {
        console.log(JSON.stringify(line));
        frames++;
        if (line.faces.length) withFace++;
        points.push(...line.faces.map((f) => ({ time: line.time, track: f.track, probabilities: f.smoothed })));
        if (options.annotate) {
          writer ??= VideoWriter.start(options.annotate, image.width, image.height, frameRate(video, options.fps));
          await writer.write(await annotatedFrame(image, line.faces, line.width / image.width));
        }
      },
    );
    await writer?.close();
    console.error(`${path}: ${frames} frames analysed (${info.width}x${info.height}), a face on ${withFace}`);
  } catch (error) {
    const message = (error as Error).message;
    const named = [path, options.annotate, options.timeline].some((p) => p && message.startsWith(p));
    console.log(JSON.stringify({ path, error: named ? message : `${path}: ${message}` }));
    return 1;
  }
  if (options.timeline) {
    const spec = emotionTimelineSpec(points, loaded.metadata.labels, `${basename(path)}: emotions over time`);
    await saveChart(spec, options.timeline.replace(/\.(png|svg)$/, ""));
  }
  return frames ? 0 : 1;
}

/**
 * `DIR/NAME.annotated.png` for a photo, numbered (`NAME-2.annotated.png`, ...)
 * when this run already wrote that name or it is one of the `inputs`.
 */
function annotationPath(dir: string, photo: string, taken: Set<string>, inputs: string[]): string {
  const name = basename(photo, extname(photo));
  let out = join(dir, `${name}.annotated.png`);
  for (let k = 2; taken.has(out) || isSameFile(out, inputs); k++) out = join(dir, `${name}-${k}.annotated.png`);
  taken.add(out);
  return out;
}

if (import.meta.main) await runCommand(main, 2);
