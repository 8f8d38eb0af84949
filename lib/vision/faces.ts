/**
 * Emotions in photos: find faces with face-api's tiny face detector (its
 * weights ship inside the npm package, so nothing is downloaded), crop each
 * with a margin, convert to the model's gray input and classify. The
 * settings, crops and conversions are lib/web/face_pipeline.js, the same
 * file the browser page runs.
 *
 *   const faces = await recognizeEmotions(loaded, await decodeImage(bytes, name));
 */
import * as tf from "@tensorflow/tfjs";
import * as faceapi from "@vladmandic/face-api/dist/face-api.node-wasm.js";
import type { LoadedModel } from "../model/model_io.ts";
import type { GrayImage, RgbaImage } from "../data/images.ts";
import {
  argmax,
  calibrate,
  cropFace,
  detectFaces as sharedDetectFaces,
  modelInput,
  probabilityMap,
  resizeGray,
  toGray,
} from "../web/face_pipeline.js";

/** One face found in an image. */
export interface FaceResult {
  /** [x, y, width, height] in the image's pixels. */
  box: [number, number, number, number];
  /** Detector confidence (1 when detection is off). */
  score: number;
  emotion: string;
  probabilities: Record<string, number>;
}

export interface FaceOptions {
  /** Treat the whole image as one face crop (no detection). */
  noDetect?: boolean;
  /** Ignore faces smaller than this many pixels on their shorter side (default FACE_SETTINGS.minFace). */
  minFace?: number;
}

let detectorReady: Promise<void> | undefined;

/** Where the face-api package keeps its nets' weights (nothing is downloaded). */
function faceApiModels(): string {
  const entry = new URL(import.meta.resolve("@vladmandic/face-api/dist/face-api.node-wasm.js")).pathname;
  return entry.replace(/dist\/[^/]+$/, "model/");
}

/** Load the tiny face detector's weights from the face-api package (once). */
export function loadFaceDetector(): Promise<void> {
  detectorReady ??= faceapi.nets.tinyFaceDetector.loadFromDisk(faceApiModels());
  return detectorReady;
}

/** face-api's own expression net, with its weights from the package: the benchmarks' reference. */
export async function loadFaceApiExpressionNet(): Promise<typeof faceapi> {
  await faceapi.nets.faceExpressionNet.loadFromDisk(faceApiModels());
  return faceapi;
}

/** Face boxes (image pixels) and scores, biggest first (face_pipeline.js's `detectFaces`, as the page runs it). */
export async function detectFaces(
  image: RgbaImage,
  options: FaceOptions = {},
): Promise<{ box: FaceResult["box"]; score: number }[]> {
  await loadFaceDetector();
  return await sharedDetectFaces(faceapi, tf, image, options.minFace);
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
export interface FoundFace {
  box: FaceResult["box"];
  score: number;
  crop: GrayImage;
}

/** Detect faces (or take the whole image when `noDetect`) and crop each to `inputSize` gray. */
export async function findFaces(image: RgbaImage, inputSize: number, options: FaceOptions = {}): Promise<FoundFace[]> {
  const gray = toGray(image);
  if (options.noDetect) {
    return [{ box: [0, 0, image.width, image.height], score: 1, crop: resizeGray(gray, inputSize, inputSize) }];
  }
  return (await detectFaces(image, options)).map((d) => ({ ...d, crop: cropFace(gray, d.box, inputSize) }));
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
