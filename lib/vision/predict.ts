/**
 * Emotions of the faces in image files: collecting the files, predicting
 * each (a bad file gets an `error`, the batch goes on), and the annotated
 * picture. `deno task predict` is lib/cli/predict.ts.
 */
import { join } from "node:path";
import { walkFiles } from "../util/files.ts";
import type { LoadedModel } from "../model/model_io.ts";
import { encodeRgbaPng, type ImageFile, isImageFile, readImageFile, type RgbaImage } from "../data/images.ts";
import { classifyCrops, type FaceOptions, type FaceResult, findFaces, type FoundFace, labelFaces } from "./faces.ts";
import { encodeBase64 } from "../util/base64.ts";
import { faceMark } from "../core/face_pipeline.js";
import { exists, projectPath } from "../util/paths.ts";
import type { FlagSpec } from "../util/flags.ts";

/** One output line. */
export interface Prediction {
  path: string;
  width: number | null;
  height: number | null;
  faces: FaceResult[];
  error: string | null;
}

/** Photos are decoded to at most this many pixels on their longer side (boxes are given in the file's pixels). */
export const MAX_WORKING_SIDE = 2048;

/**
 * Files to predict, sorted within each folder: given paths as they are (a
 * file, or anything else, reported when read), folders recursed for image
 * extensions; a folder without images stays an input of its own, so that
 * its line says so.
 */
export function collectImages(paths: string[]): string[] {
  return paths.flatMap((path) => {
    let isDirectory = false;
    try {
      isDirectory = Deno.statSync(path).isDirectory;
    } catch { /* missing: reported when read */ }
    const found = isDirectory ? walkFiles(path, isImageFile) : [];
    return found.length ? found : [path];
  });
}

/** A prediction line plus the decoded image (for annotation) and its scale (file pixels per image pixel). */
export type PredictionWithImage = Prediction & { image?: RgbaImage; scale?: number };

/** An image to predict: its name (a path, say) for lines and errors, and how to read it (at most MAX_WORKING_SIDE). */
export interface ImageSource {
  name: string;
  read: () => Promise<ImageFile>;
}

/**
 * Predict several image files, classifying all their faces in one batch;
 * a file's errors become its line's `error` and the others go on. Photos
 * are read one at a time and decoded to at most MAX_WORKING_SIDE; only with
 * `keepImages` (for annotation) are they kept until the batch ends.
 */
export function predictFiles(
  loaded: LoadedModel,
  paths: string[],
  options: FaceOptions = {},
  keepImages = false,
): Promise<PredictionWithImage[]> {
  const sources = paths.map((path) => ({ name: path, read: () => readImageFile(path, MAX_WORKING_SIDE) }));
  return predictImages(loaded, sources, options, keepImages);
}

/**
 * Predict images from any source as `predictFiles` does files: each read and
 * its faces found in turn, all faces classified in one batch, a source's
 * error its line's `error`; boxes and eyes in the source's own pixels.
 */
export async function predictImages(
  loaded: LoadedModel,
  sources: ImageSource[],
  options: FaceOptions = {},
  keepImages = false,
): Promise<PredictionWithImage[]> {
  const found: (PredictionWithImage & { found?: FoundFace[] })[] = [];
  for (const { name: path, read } of sources) {
    try {
      const file = await read();
      const faces = await findFaces(file.image, loaded.metadata.inputSize, options, file.scale);
      found.push({
        path,
        width: file.width,
        height: file.height,
        faces: [],
        error: null,
        found: faces,
        ...(keepImages ? { image: file.image, scale: file.scale } : {}),
      });
    } catch (err) {
      const message = (err as Error).message;
      found.push({
        path,
        width: null,
        height: null,
        faces: [],
        error: message.startsWith(path) ? message : `${path}: ${message}`,
      });
    }
  }
  const crops = found.flatMap((f) => f.found?.map((face) => face.crop) ?? []);
  const probabilities = crops.length ? await classifyCrops(loaded, crops) : new Float32Array();
  const classes = loaded.metadata.labels.length;
  let offset = 0;
  return found.map(({ found: faceList, ...prediction }) => {
    if (!faceList) return prediction;
    const rows = probabilities.subarray(offset * classes, (offset + faceList.length) * classes);
    offset += faceList.length;
    return { ...prediction, faces: labelFaces(faceList, rows, loaded.metadata.labels, loaded.metadata.temperature) };
  });
}

/** Predict one image file. */
export async function predictFile(
  loaded: LoadedModel,
  path: string,
  options: FaceOptions = {},
): Promise<PredictionWithImage> {
  return (await predictFiles(loaded, [path], options, true))[0];
}

/**
 * An SVG of the image with each face's box and emotion drawn on it (as the
 * page draws them: `faceMark`); `scale` is file pixels per image pixel (the
 * boxes are in file pixels).
 */
export async function annotationSvg(
  image: RgbaImage,
  faces: Pick<FaceResult, "box" | "emotion" | "probabilities">[],
  scale = 1,
): Promise<string> {
  const marks = faces.map((f) => {
    const box = f.box.map((v) => v / scale) as FaceResult["box"];
    const [x, y, w, h] = box;
    const mark = faceMark(box, f.emotion, f.probabilities[f.emotion], image);
    return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="#ffcc00" stroke-width="${mark.stroke}"/>` +
      `<text x="${mark.x}" y="${mark.y}" font-family="DejaVu Sans" font-weight="bold" font-size="${mark.font}" ` +
      `fill="#ffcc00" stroke="black" stroke-width="${mark.stroke / 3}" paint-order="stroke">${mark.text}</text>`;
  }).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${image.width}" height="${image.height}">` +
    `<image href="data:image/png;base64,${encodeBase64(await encodeRgbaPng(image))}" width="${image.width}" ` +
    `height="${image.height}"/>${marks}</svg>`;
}

/**
 * The model that predict, the page, the package and the benchmarks use
 * unless told otherwise: outputs/model, one network, ours best on FER2013
 * (RECIPE.md beside it says which run made it and why; RESULTS.md).
 */
export const DEFAULT_MODEL = "outputs/model";

/** The --model flag of the commands that use a saved model (predict, evaluate, serve, export, ...): declared once. */
export const MODEL_FLAG = {
  type: "string",
  value: "DIR",
  help: `a saved model folder: model.json, weights.bin, metadata.json (default ${DEFAULT_MODEL})`,
} as const satisfies FlagSpec;

/** The model folder to use: the flag (or the package's `model` option), else, or when it says "default", DEFAULT_MODEL. */
export function defaultModelDir(flag?: string): string {
  const given = flag === "default" ? undefined : flag;
  const dir = given ?? projectPath(DEFAULT_MODEL);
  if (!exists(join(dir, "model.json"))) {
    throw new Error(
      given ? `--model ${given}: no model.json there` : `no shipped model at ${dir}; train one and pass --model DIR`,
    );
  }
  return dir;
}
