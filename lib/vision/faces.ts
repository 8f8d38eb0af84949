/**
 * Emotions in photos: find faces with BlazeFace (MediaPipe's detectors, as
 * tfjs graph models, both committed in lib/core/detector/, so nothing is
 * downloaded), crop each as its eyes place it in FER2013's framing,
 * convert to the model's gray input and classify. The settings, crops and
 * conversions are lib/core/face_pipeline.js, the same file the browser page
 * runs. face-api (its tiny face detector and expression net) is here as the
 * benchmarks' reference.
 *
 *   const faces = await recognizeEmotions(loaded, await decodeImage(bytes, name));
 */
import * as tf from "@tensorflow/tfjs";
import * as faceapi from "@vladmandic/face-api/dist/face-api.node-wasm.js";
import { dirname, join } from "node:path";
import { detectorFiles, type DetectorKind, packageFile } from "../util/paths.ts";
import type { FlagSpec } from "../util/flags.ts";
import type { LoadedModel } from "../model/model_io.ts";
import type { GrayImage, RgbaImage } from "../data/images.ts";
import {
  argmax,
  calibrate,
  detectFaces as sharedDetectFaces,
  DETECTOR_CHOICES,
  DETECTORS,
  type Face,
  FACE_SETTINGS,
  faceCrop,
  modelInput,
  probabilityMap,
  reportedEyes,
  resizeGray,
  toGray,
} from "../core/face_pipeline.js";

/** One face found in an image. */
export interface FaceResult {
  /** [x, y, width, height] in the image's pixels. */
  box: [number, number, number, number];
  /** Detector confidence (1 when detection is off). */
  score: number;
  /** The eye centres the crop was framed by, the left one in the picture first (none when detection is off). */
  eyes?: [[number, number], [number, number]];
  /** The most probable class. */
  emotion: string;
  /** Each class's probability. */
  probabilities: Record<string, number>;
}

export interface FaceOptions {
  /** Treat the whole image as one face crop (no detection). */
  noDetect?: boolean;
  /** Which BlazeFace finds the faces (default FACE_SETTINGS.detector; DETECTOR_CHOICES in face_pipeline.js). */
  detector?: DetectorChoice;
  /** Ignore faces smaller than this many pixels on their shorter side (default FACE_SETTINGS.minFace). */
  minFace?: number;
}

/** The --detector flag of the commands that find faces (predict, evaluate --detect, bench:predict, bench:video). */
export const DETECTOR_FLAG = {
  type: "string",
  choices: Object.keys(DETECTOR_CHOICES),
  default: FACE_SETTINGS.detector,
  help: "face detector: near (faces near the camera; fast), far (group photos, small faces; 4x slower), " +
    "auto (near, then far where near finds none)",
} as const satisfies FlagSpec;

/** A detector choice: auto (the default), near or far (DETECTOR_CHOICES in face_pipeline.js). */
export type DetectorChoice = "auto" | "near" | "far";
// The choices here are DETECTOR_CHOICES' names, no more and no fewer.
const _sameChoices: [DetectorChoice, keyof typeof DETECTOR_CHOICES] = ["auto", "auto"] as [
  keyof typeof DETECTOR_CHOICES,
  DetectorChoice,
];

/** A loaded BlazeFace and its input side, as face_pipeline.js's detectFaces takes it. */
export interface FaceDetector {
  model: tf.GraphModel;
  size: number;
}

const detectors: Partial<Record<DetectorKind, Promise<FaceDetector>>> = {};

/** The BlazeFace models a detector choice tries in turn (DETECTOR_CHOICES), loaded. */
export function loadFaceDetectors(choice: DetectorChoice = FACE_SETTINGS.detector): Promise<FaceDetector[]> {
  return Promise.all(DETECTOR_CHOICES[choice].map(loadFaceDetector));
}

/** Load a BlazeFace (once each) from its files (detectorFiles). */
function loadFaceDetector(kind: DetectorKind): Promise<FaceDetector> {
  detectors[kind] ??= (async () => {
    const files = detectorFiles(kind);
    const json = JSON.parse(await Deno.readTextFile(files.model));
    const weights = await Deno.readFile(files.weights);
    const model = await tf.loadGraphModel(tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: weights.buffer,
    }));
    return { model, size: DETECTORS[kind].size };
  })();
  return detectors[kind];
}

/** face-api's tiny face detector as its users run it: input size 416, score threshold 0.4. */
export function faceApiOptions(): InstanceType<typeof faceapi.TinyFaceDetectorOptions> {
  return new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.4 });
}

/** An RGBA image as face-api's input: a [height, width, 3] int32 tensor (the caller disposes it). */
export function faceApiInput(image: RgbaImage): tf.Tensor3D {
  return tf.tidy(() =>
    tf.tensor3d(Int32Array.from(image.data), [image.height, image.width, 4], "int32").slice([0, 0, 0], [-1, -1, 3])
  );
}

/** face-api's usual pipeline, with its weights from its package: the benchmarks' reference. */
export async function loadFaceApi(): Promise<typeof faceapi> {
  const models = join(dirname(packageFile("@vladmandic/face-api/dist/face-api.node-wasm.js")), "..", "model");
  await faceapi.nets.tinyFaceDetector.loadFromDisk(models);
  await faceapi.nets.faceExpressionNet.loadFromDisk(models);
  return faceapi;
}

/** Faces (image pixels), best first: face_pipeline.js's `detectFaces`, as the page runs it. */
export async function detectFaces(image: RgbaImage, options: FaceOptions = {}): Promise<Face[]> {
  return await sharedDetectFaces(tf, await loadFaceDetectors(options.detector), image, options.minFace);
}

/** Class probabilities for gray face crops of the model's input size; row-major [n, classes]. */
export async function classifyCrops(loaded: LoadedModel, crops: GrayImage[]): Promise<Float32Array> {
  const { inputSize, normalization } = loaded.metadata;
  const pixels = modelInput(crops, normalization);
  const probabilities = tf.tidy(() =>
    loaded.model.predict(tf.tensor4d(pixels, [crops.length, inputSize, inputSize, 1])) as tf.Tensor
  );
  const out = (await probabilities.data()) as Float32Array;
  probabilities.dispose();
  return out;
}

/** A face found in an image, with its crop at the model's input size. */
export interface FoundFace extends Face {
  crop: GrayImage;
}

/**
 * Detect faces (or take the whole image when `noDetect`) and crop each to
 * `inputSize` gray. `scale` is how many file pixels one pixel of `image`
 * spans (a photo or video frame decoded smaller than its file): `minFace` is
 * taken in the file's pixels, and boxes and eyes are given in them.
 */
export async function findFaces(
  image: RgbaImage,
  inputSize: number,
  options: FaceOptions = {},
  scale = 1,
): Promise<FoundFace[]> {
  const gray = toGray(image);
  if (options.noDetect) {
    const whole = { box: [0, 0, image.width, image.height], score: 1, crop: resizeGray(gray, inputSize, inputSize) };
    return [scaledFace(whole as FoundFace, scale)];
  }
  const minFace = (options.minFace ?? FACE_SETTINGS.minFace) / scale;
  const found = await detectFaces(image, { ...options, minFace });
  return found.map((d) => scaledFace({ ...d, crop: faceCrop(gray, d, inputSize) }, scale));
}

/** `face` in the pixels of an image `scale` times larger (its box rounded, its eyes to a tenth of a pixel). */
function scaledFace<T extends Face>(face: T, scale: number): T {
  if (scale === 1) return face;
  const eyes = face.eyes?.map(([x, y]) => [x * scale, y * scale]) as Face["eyes"];
  return { ...face, box: face.box.map((v) => Math.round(v * scale)) as Face["box"], ...(eyes ? { eyes } : {}) };
}

/** Results for found faces from their class probabilities (row-major, a row per face). */
export function labelFaces(
  found: FoundFace[],
  probabilities: Float32Array,
  labels: string[],
  temperature = 1,
): FaceResult[] {
  return found.map((face, i) => {
    const row = calibrate(probabilities.subarray(i * labels.length, (i + 1) * labels.length), temperature);
    return {
      box: face.box,
      score: Math.round(face.score * 1e4) / 1e4,
      ...(face.eyes ? { eyes: reportedEyes(face.eyes) } : {}),
      emotion: labels[argmax(row)],
      probabilities: probabilityMap(labels, row),
    };
  });
}

/** Image in, faces out: detect (unless `noDetect`), crop, classify. */
export async function recognizeEmotions(
  loaded: LoadedModel,
  image: RgbaImage,
  options: FaceOptions = {},
): Promise<FaceResult[]> {
  const found = await findFaces(image, loaded.metadata.inputSize, options);
  if (found.length === 0) return [];
  const probabilities = await classifyCrops(loaded, found.map((f) => f.crop));
  return labelFaces(found, probabilities, loaded.metadata.labels, loaded.metadata.temperature);
}
