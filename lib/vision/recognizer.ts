/**
 * The public face of the pipeline: `EmotionRecognizer`, what the package
 * exports (mod.ts); its `detect` runs `predictImages`, the code behind
 * `deno task predict`'s photos. It holds a loaded
 * model and a detector choice; `detect` finds and classifies faces in any
 * image a program has, `classify` takes faces found by a detector of the
 * caller's own, `tracker` follows faces through video. Errors are
 * `EmotionError`s naming the input and the field.
 *
 *   const recognizer = await EmotionRecognizer.load();
 *   const faces = await recognizer.detect("photo.jpg");
 *   recognizer.dispose();
 */
import * as tf from "@tensorflow/tfjs";
import { type BackendChoice, initBackend } from "../backend/backend.ts";
import { decodeImageFile, type GrayImage, type ImageFile, readImageFile, type RgbaImage } from "../data/images.ts";
import { type LoadedModel, loadModel } from "../model/model_io.ts";
import {
  classifyCrops,
  type DetectorChoice,
  type FaceResult,
  type FoundFace,
  labelFaces,
  loadFaceDetectors,
} from "./faces.ts";
import { defaultModelDir, MAX_WORKING_SIDE, predictImages } from "./predict.ts";
import type { VideoFace } from "./video.ts";
import { FaceTracker, trackFaces } from "../core/tracker.js";
import { FACE_SETTINGS, faceCrop, tensorRgba, toGray } from "../core/face_pipeline.js";

/** An error of the API: its message names the input (or option) and what is wrong with it. */
export class EmotionError extends Error {
  /** "EmotionError", for `instanceof`-less checks. */
  override name = "EmotionError";
}

/** How `EmotionRecognizer.load` sets up. */
export interface RecognizerOptions {
  /** A saved model folder (model.json, weights.bin, metadata.json), or "default": the built-in model. */
  model?: string;
  /** Which face detector `detect` uses: auto (the default), near, far, or none (each image is one face). */
  detector?: DetectorChoice | "none";
  /** The tfjs backend: wasm (the default), webgpu, or auto (WebGPU on a hardware GPU, else WASM). */
  backend?: BackendChoice;
  /** Apply the model's calibration temperature to the probabilities, when it has one (default true). */
  calibrated?: boolean;
  /** Faces smaller than this many pixels of the image are ignored (default 24). */
  minFace?: number;
}

/**
 * An image as programs hold it: encoded bytes (`Uint8Array`, `ArrayBuffer`,
 * `Blob`: JPEG, PNG, WebP, AVIF, TIFF, GIF), a file path, decoded RGBA
 * pixels (`ImageData` or `{ width, height, data }`), or a tfjs `Tensor3D`
 * [height, width, 3 or 4] of 0-255 values.
 */
export type ImageInput = Uint8Array | ArrayBuffer | Blob | string | RgbaImage | ImageData | ImageTensor;

/** A tfjs `Tensor3D` [height, width, 3 or 4] of 0-255 values, as far as `detect` reads it. */
export interface ImageTensor {
  /** [height, width, channels]. */
  readonly shape: number[];
  /** 3. */
  readonly rank: number;
  /** The values, row by row. */
  data(): Promise<ArrayLike<number>>;
}

/** A face that `detect` found: `box` is [x, y, width, height] in the image's pixels. */
export type Face = FaceResult;

/** A face given to `classify` in an image: its box, and its eye centres when the caller's detector has them. */
export interface FaceBox {
  /** [x, y, width, height] in the image's pixels. */
  box: [number, number, number, number];
  /** The eye centres in the image's pixels, the left one in the picture first. */
  eyes?: [[number, number], [number, number]];
}

/** What `classify` returns for each face: the most probable emotion and every class's probability. */
export interface Emotion {
  /** The most probable class. */
  emotion: string;
  /** Each class's probability (calibrated, when the model has a temperature and `calibrated` is not false). */
  probabilities: Record<string, number>;
}

/** A video tracker (`EmotionRecognizer.tracker`): faces of a frame in, with track ids and smoothed probabilities out. */
export interface VideoTracker {
  /** The faces `detect` found in the frame at `time` (seconds), each with a stable `track` id and `smoothed` probabilities. */
  update(time: number, faces: Face[]): VideoFace[];
}

/** Finds faces and reads their emotions with one loaded model; call `dispose` when done. */
export class EmotionRecognizer {
  private constructor(private readonly loaded: LoadedModel, private readonly options: RecognizerOptions) {}

  /** Load a model (the built-in one by default) and, unless `detector` is "none", the face detector. */
  static async load(options: RecognizerOptions = {}): Promise<EmotionRecognizer> {
    const detector = options.detector ?? FACE_SETTINGS.detector;
    if (!["auto", "near", "far", "none"].includes(detector)) {
      throw new EmotionError(`detector: "${detector}" is not one of auto, near, far, none`);
    }
    if (options.backend && !["wasm", "webgpu", "auto"].includes(options.backend)) {
      throw new EmotionError(`backend: "${options.backend}" is not one of wasm, webgpu, auto`);
    }
    await initBackend(options.backend ?? "wasm");
    let loaded: LoadedModel;
    try {
      loaded = await loadModel(defaultModelDir(options.model), { fold: true });
    } catch (error) {
      throw new EmotionError(`model: ${(error as Error).message}`);
    }
    if (options.calibrated === false) loaded = { ...loaded, metadata: { ...loaded.metadata, temperature: undefined } };
    if (detector !== "none") await loadFaceDetectors(detector);
    return new EmotionRecognizer(loaded, { ...options, detector });
  }

  /** The model's classes, in the order of its outputs. */
  get labels(): string[] {
    return this.loaded.metadata.labels;
  }

  /** The model's version and the SHA-256 of its weights, as its metadata.json records them. */
  get version(): { model?: string; weightsSha256?: string } {
    return { model: this.loaded.metadata.version, weightsSha256: this.loaded.metadata.weightsSha256 };
  }

  /** The faces in an image, best first, each with its box, score, eyes, emotion and probabilities. */
  async detect(input: ImageInput): Promise<Face[]> {
    const name = typeof input === "string" ? input : "image";
    const detector = this.options.detector;
    const source = { name, read: () => imageFile(input, name) };
    const [line] = await predictImages(this.loaded, [source], {
      noDetect: detector === "none",
      detector: detector === "none" ? undefined : detector,
      minFace: this.options.minFace,
    });
    if (line.error) throw new EmotionError(line.error);
    return line.faces;
  }

  /**
   * Emotions of faces a detector of the caller's own found: gray crops at
   * the model's input size (`inputSize` x `inputSize` bytes each), or an
   * image with each face's box (and eyes, when known: the crop is then
   * framed by them as the model's training faces were).
   */
  async classify(input: Uint8Array[] | GrayImage[]): Promise<Emotion[]>;
  /** Emotions of the faces at `faces`' boxes in an image. */
  async classify(input: ImageInput, faces: FaceBox[]): Promise<Emotion[]>;
  async classify(input: ImageInput | Uint8Array[] | GrayImage[], faces?: FaceBox[]): Promise<Emotion[]> {
    const size = this.loaded.metadata.inputSize;
    let crops: GrayImage[];
    if (faces) {
      const { image, scale } = await imageFile(input as ImageInput, "image");
      const gray = toGray(image);
      crops = faces.map(({ box, eyes }, i) => {
        if (!Array.isArray(box) || box.length !== 4 || box.some((v) => !Number.isFinite(v)) || box[2] <= 0) {
          throw new EmotionError(`faces[${i}].box: expected [x, y, width, height] with a positive width`);
        }
        const shrunk = { box: box.map((v) => v / scale), eyes: eyes?.map((e) => e.map((v) => v / scale)) };
        return faceCrop(gray, shrunk as FaceBox, size);
      });
    } else {
      if (!Array.isArray(input)) throw new EmotionError("classify: give crops (an array), or an image and its faces");
      crops = (input as (Uint8Array | GrayImage)[]).map((crop, i) => {
        const data = crop instanceof Uint8Array ? crop : crop.data;
        if (data?.length !== size * size) {
          throw new EmotionError(
            `crops[${i}]: expected ${size}x${size} gray bytes (${size * size}), got ${data?.length}`,
          );
        }
        return { width: size, height: size, data };
      });
    }
    if (crops.length === 0) return [];
    const probabilities = await classifyCrops(this.loaded, crops);
    const found = crops.map((crop) => ({ box: [0, 0, size, size], score: 1, crop }) as FoundFace);
    const { labels, temperature } = this.loaded.metadata;
    return labelFaces(found, probabilities, labels, temperature).map(({ emotion, probabilities }) => ({
      emotion,
      probabilities,
    }));
  }

  /**
   * A tracker for one video: give it each frame's faces (from `detect`) and
   * the frame's time; it keeps a face's id while the face stays and smooths
   * its probabilities with a time constant in seconds (default 0.5).
   */
  tracker(options: { timeConstant?: number; maxMissingSeconds?: number } = {}): VideoTracker {
    const tracker = new FaceTracker(options);
    const labels = this.labels;
    return { update: (time, faces) => trackFaces(tracker, time, faces, labels) };
  }

  /** Free the model's memory; a script ends by itself once it is called. */
  dispose(): void {
    this.loaded.model.dispose();
  }
}

/** Any ImageInput as an image file: decoded to at most MAX_WORKING_SIDE, with its own size. */
async function imageFile(input: ImageInput, name: string): Promise<ImageFile> {
  if (typeof input === "string") return await readImageFile(input, MAX_WORKING_SIDE);
  if (input instanceof Uint8Array) return await decodeImageFile(input, name, MAX_WORKING_SIDE);
  if (input instanceof ArrayBuffer) return await decodeImageFile(new Uint8Array(input), name, MAX_WORKING_SIDE);
  if (typeof Blob !== "undefined" && input instanceof Blob) {
    return await decodeImageFile(new Uint8Array(await input.arrayBuffer()), name, MAX_WORKING_SIDE);
  }
  if (input instanceof tf.Tensor) return whole(await tensorImage(input));
  const { width, height, data } = input as RgbaImage;
  if (!(width > 0 && height > 0 && data?.length === width * height * 4)) {
    throw new EmotionError(`${name}: expected encoded bytes, a path, RGBA pixels {width, height, data} or a Tensor3D`);
  }
  return whole({ width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) });
}

/** A decoded image as an image file of its own size. */
function whole(image: RgbaImage): ImageFile {
  return { image, width: image.width, height: image.height, scale: 1 };
}

/** A Tensor3D [height, width, 3 or 4] of 0-255 as RGBA (`tensorRgba`, the browser build's too). */
async function tensorImage(tensor: ImageTensor): Promise<RgbaImage> {
  const image = await tensorRgba(tensor);
  if (!image) throw new EmotionError(`image: a Tensor3D [height, width, 3 or 4] was expected, got [${tensor.shape}]`);
  return image;
}
