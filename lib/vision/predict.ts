/**
 * Emotions of the faces in image files: collecting the files, predicting
 * each (a bad file gets an `error`, the batch goes on), and the annotated
 * picture. `deno task predict` is lib/cli/predict.ts.
 */
import { join } from "node:path";
import { walkFiles } from "../util/files.ts";
import { type LoadedModel } from "../model/model_io.ts";
import { decodeImage, encodeRgbaPng, isImageFile, type RgbaImage } from "./images.ts";
import { classifyCrops, type FaceOptions, type FaceResult, findFaces, type FoundFace, labelFaces } from "./faces.ts";
import { encodeBase64 } from "../util/base64.ts";
import { exists, projectPath } from "../util/paths.ts";

/** One output line. */
export interface Prediction {
  path: string;
  width: number | null;
  height: number | null;
  faces: FaceResult[];
  error: string | null;
}

/** Files to predict: given files as they are, folders recursed for image extensions, sorted. */
export function collectImages(paths: string[], onBroken?: (path: string) => void): string[] {
  const out: string[] = [];
  for (const path of paths) {
    let isDirectory = false;
    try {
      isDirectory = Deno.statSync(path).isDirectory;
    } catch { /* missing: reported when read */ }
    if (isDirectory) out.push(...walkFiles(path, isImageFile, onBroken));
    else out.push(path);
  }
  return out;
}

/** A prediction line plus the decoded image (for annotation). */
export type PredictionWithImage = Prediction & { image?: RgbaImage };

/**
 * Predict several image files, classifying all their faces in one batch;
 * a file's errors become its line's `error` and the others go on.
 */
export async function predictFiles(
  loaded: LoadedModel,
  paths: string[],
  options: FaceOptions = {},
): Promise<PredictionWithImage[]> {
  const found: { path: string; image?: RgbaImage; faces?: FoundFace[]; error?: string }[] = [];
  for (const path of paths) { // one at a time: decoded photos can be large
    try {
      const image = await decodeImage(await Deno.readFile(path), path);
      found.push({ path, image, faces: await findFaces(image, loaded.metadata.inputSize, options) });
    } catch (err) {
      const message = (err as Error).message;
      found.push({ path, error: message.startsWith(path) ? message : `${path}: ${message}` });
    }
  }
  const crops = found.flatMap((f) => f.faces?.map((face) => face.crop) ?? []);
  const probabilities = crops.length ? await classifyCrops(loaded, crops) : new Float32Array();
  const classes = loaded.metadata.labels.length;
  let offset = 0;
  return found.map((f) => {
    if (!f.image) return { path: f.path, width: null, height: null, faces: [], error: f.error! };
    const faceList = f.faces ?? [];
    const rows = probabilities.subarray(offset * classes, (offset + faceList.length) * classes);
    offset += faceList.length;
    const faces = labelFaces(faceList, rows, loaded.metadata.labels, loaded.metadata.temperature);
    return { path: f.path, width: f.image.width, height: f.image.height, faces, error: null, image: f.image };
  });
}

/** Predict one image file. */
export async function predictFile(
  loaded: LoadedModel,
  path: string,
  options: FaceOptions = {},
): Promise<PredictionWithImage> {
  return (await predictFiles(loaded, [path], options))[0];
}

/** An SVG of the image with each face's box and emotion drawn on it. */
export async function annotationSvg(image: RgbaImage, faces: FaceResult[]): Promise<string> {
  const stroke = Math.max(2, Math.round(Math.max(image.width, image.height) / 300));
  const font = Math.max(12, Math.round(Math.max(image.width, image.height) / 40));
  const marks = faces.map((f) => {
    const [x, y, w, h] = f.box;
    const label = `${f.emotion} ${(100 * f.probabilities[f.emotion]).toFixed(0)}%`;
    const ty = y > font + 4 ? y - 4 : y + h + font;
    return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="#ffcc00" stroke-width="${stroke}"/>` +
      `<text x="${x}" y="${ty}" font-family="DejaVu Sans" font-size="${font}" fill="#ffcc00" stroke="black" ` +
      `stroke-width="${stroke / 3}" paint-order="stroke">${label}</text>`;
  }).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${image.width}" height="${image.height}">` +
    `<image href="data:image/png;base64,${encodeBase64(await encodeRgbaPng(image))}" width="${image.width}" ` +
    `height="${image.height}"/>${marks}</svg>`;
}

/** The model folder to use: the flag, else the shipped model. */
export function defaultModelDir(flag?: string): string {
  const dir = flag ?? projectPath("outputs", "model");
  if (!exists(join(dir, "model.json"))) {
    throw new Error(
      flag ? `--model ${flag}: no model.json there` : `no shipped model at ${dir}; train one and pass --model DIR`,
    );
  }
  return dir;
}
