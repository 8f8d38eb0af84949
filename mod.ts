/**
 * emotion-cnn: the emotions of the faces in photos and videos (angry,
 * disgust, fear, happy, sad, surprise, neutral), from a 3.7 MB network
 * trained on FER2013, on tfjs's WASM backend; and fine-tuning and
 * evaluation on a program's own faces. The commands of this repository
 * (`deno task predict`, `train`, `evaluate`) run the same code.
 *
 * ```ts
 * import { EmotionRecognizer } from "./mod.ts";
 *
 * const recognizer = await EmotionRecognizer.load();
 * const faces = await recognizer.detect("../shared/media/multi_face.jpg");
 * console.log(faces.map((face) => face.emotion));
 * recognizer.dispose();
 * ```
 *
 * @module
 */
import "./lib/util/deno_shim.ts"; // first: Node gets the Deno namespace before the rest loads
import { parseTrainArgs, TRAIN_FLAGS } from "./lib/train/config.ts";
import { trainModel } from "./lib/train/train.ts";
import type { EpochRecord } from "./lib/train/history.ts";
import { EVALUATE_FLAGS, runEvaluate } from "./lib/cli/evaluate.ts";
import type { Report } from "./lib/eval/metrics.ts";
import { flagArgs } from "./lib/util/flags.ts";
import { EmotionError } from "./lib/vision/recognizer.ts";
import { runPaths } from "./lib/train/run_folder.ts";
import { loadModel } from "./lib/model/model_io.ts";
import { exportOnnx as onnxBytes } from "./lib/model/onnx.ts";
import { initBackend } from "./lib/backend/backend.ts";
import { defaultModelDir } from "./lib/vision/predict.ts";

export {
  type Emotion,
  EmotionError,
  EmotionRecognizer,
  type Face,
  type FaceBox,
  type ImageInput,
  type ImageTensor,
  type RecognizerOptions,
  type VideoTracker,
} from "./lib/vision/recognizer.ts";
export type { FaceResult } from "./lib/vision/faces.ts";
export type { VideoFace } from "./lib/vision/video.ts";
export type { ClassMetrics, Report } from "./lib/eval/metrics.ts";
export type { EpochRecord } from "./lib/train/history.ts";
export type { GrayImage, RgbaImage } from "./lib/data/images.ts";
export type { BackendChoice } from "./lib/backend/backend.ts";
export type { DetectorChoice } from "./lib/vision/faces.ts";

/** The package's version. */
export const VERSION = "0.1.0";

/**
 * What `train` takes: any flag of `deno task train` in camelCase (`batchSize`
 * for `--batch-size`; `deno task train --help` lists them), plus callbacks.
 */
export interface TrainOptions {
  /** The images: a FER2013 CSV, or a folder `DIR/train/<class>/*` (with `val/` beside it, or 10% held out). */
  data: string;
  /** The run folder written (config, history, best/, last/, report). */
  out: string;
  /** Start from a saved model's weights: "default" (the built-in model) or a model folder; new classes get a new head. */
  initFrom?: string;
  /** A named recipe to start from (`deno task train --help` lists them). */
  recipe?: string;
  /** Epochs to train. */
  epochs?: number;
  /** Continue the run in `out` from its last checkpoint. */
  resume?: boolean;
  /** Called after every epoch with its record (loss, accuracy, validation, seconds). */
  onEpoch?: (record: EpochRecord) => void;
  /** Called with every line the run logs (default: none). */
  onLog?: (line: string) => void;
  /** Any other flag of `deno task train`, in camelCase. */
  [flag: string]: unknown;
}

/** What `train` returns: the best checkpoint's folder (a model folder), its validation report and the history. */
export interface TrainResult {
  /** The best checkpoint: a model folder for `EmotionRecognizer.load({ model })`. */
  model: string;
  /** Its report on the validation images. */
  report: Report;
  /** Every epoch's record. */
  history: EpochRecord[];
}

/**
 * Train or fine-tune a model on a folder of faces (or FER2013), exactly as
 * `deno task train` does: a run folder in `out` that a later call resumes.
 * Bad options are refused with an `EmotionError` naming them.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { onEpoch, onLog, initFrom, ...flags } = options;
  let parsed;
  try {
    const from = initFrom === "default" ? defaultModelDir() : initFrom;
    parsed = parseTrainArgs(flagArgs(TRAIN_FLAGS, { ...flags, initFrom: from }));
  } catch (error) {
    throw new EmotionError((error as Error).message);
  }
  const result = await trainModel(parsed.config, parsed.resume, {
    log: onLog ?? (() => {}),
    onEpochEnd: onEpoch && ((history) => onEpoch(history[history.length - 1])),
  });
  result.model.dispose();
  return { model: runPaths(parsed.config.out).best, report: result.report, history: result.history };
}

/**
 * What `evaluate` takes: any flag of `deno task evaluate` in camelCase
 * (`deno task evaluate --help` lists them).
 */
export interface EvaluateOptions {
  /** A saved model folder, or "default" (the built-in model). */
  model?: string;
  /** A face folder `DIR/<class>/*`, an image folder with splits, or a FER2013 CSV. */
  data?: string;
  /** With a split source: Training, PublicTest or PrivateTest (default PrivateTest). */
  split?: string;
  /** With a face folder: find each face with the detector instead of taking the whole image. */
  detect?: boolean;
  /** Where the report goes (default: beside the model). */
  out?: string;
  /** Called with every line the evaluation prints (default: none). */
  onLog?: (line: string) => void;
  /** Any other flag of `deno task evaluate`, in camelCase. */
  [flag: string]: unknown;
}

/** A model's report on a face folder or a split, as `deno task evaluate` writes it; returned and written to `out`. */
export async function evaluate(options: EvaluateOptions): Promise<Report & { out: string }> {
  const { onLog, model, ...flags } = options;
  let args: string[];
  try {
    args = flagArgs(EVALUATE_FLAGS, { ...flags, model }); // the command takes "default" too (defaultModelDir)
  } catch (error) {
    throw new EmotionError((error as Error).message);
  }
  const log = onLog ?? (() => {});
  const { report, out } = await runEvaluate(args, log, log);
  return { ...report, out };
}

/**
 * A saved model (one net or an ensemble; "default": the built-in model) as
 * an ONNX file's bytes, as `deno task export` writes it: input "pixels",
 * float32 [N, 48, 48, 1] gray values 0-255; output "probabilities" [N,
 * classes], the normalization and calibration inside; the labels, input
 * size, temperature and version in its metadata_props.
 */
export async function exportOnnx(model = "default", options: { float16?: boolean } = {}): Promise<Uint8Array> {
  await initBackend();
  let loaded;
  try {
    loaded = await loadModel(defaultModelDir(model), { fold: true });
  } catch (error) {
    throw new EmotionError(`model: ${(error as Error).message}`);
  }
  try {
    return await onnxBytes(loaded, options);
  } catch (error) {
    throw new EmotionError((error as Error).message);
  } finally {
    loaded.model.dispose();
  }
}
