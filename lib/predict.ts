/**
 * Emotions of the faces in photos, one JSON line per image:
 *
 *   deno task predict [--model DIR] PATH... [--annotate DIR] [--no-detect] [--min-face PX] [--batch-size 16]
 *
 * PATH is an image or a folder (recursed: png, jpg, jpeg, webp). Each line is
 * {"path", "width", "height", "faces": [{"box", "score", "emotion", "probabilities"}], "error"}.
 * A bad file gets an `error` and the batch goes on; the exit status is non-zero
 * only when every input failed.
 */
import { parseArgs } from "node:util";
import { basename, extname, join } from "node:path";
import { initBackend } from "./backend.ts";
import { type LoadedModel, loadModel } from "./model_io.ts";
import { decodeImage, encodeRgbaPng, type RgbaImage } from "./images.ts";
import { classifyCrops, type FaceOptions, type FaceResult, findFaces, type FoundFace, labelFaces } from "./faces.ts";
import { svgToPng } from "./charts.ts";
import { encodeBase64 } from "./base64.ts";
import { ProgressBar } from "./progress.ts";
import { exists, projectPath } from "./paths.ts";
import { runCommand } from "./cli.ts";

/** One output line. */
export interface Prediction {
  path: string;
  width: number | null;
  height: number | null;
  faces: FaceResult[];
  error: string | null;
}

export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp"];

/** Files to predict: given files as they are, folders recursed for image extensions, sorted. */
export function collectImages(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) walk(path);
      else if (entry.isFile && IMAGE_EXTENSIONS.includes(extname(entry.name).toLowerCase())) out.push(path);
    }
  };
  for (const path of paths) {
    let isDirectory = false;
    try {
      isDirectory = Deno.statSync(path).isDirectory;
    } catch { /* missing: reported when read */ }
    if (isDirectory) walk(path);
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
    const faces = labelFaces(faceList, rows, loaded.metadata.labels);
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
export function annotationSvg(image: RgbaImage, faces: FaceResult[]): string {
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
    `<image href="data:image/png;base64,${encodeBase64(encodeRgbaPng(image))}" width="${image.width}" ` +
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

/** Command line. Returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: "string" },
      annotate: { type: "string" },
      "no-detect": { type: "boolean", default: false },
      "min-face": { type: "string", default: "24" },
      "batch-size": { type: "string", default: "16" },
    },
  });
  if (positionals.length === 0) {
    throw new Error("usage: deno task predict [--model DIR] PATH... [--annotate DIR] [--no-detect] [--min-face PX]");
  }
  await initBackend();
  const loaded = await loadModel(defaultModelDir(values.model));
  const files = collectImages(positionals);
  const options: FaceOptions = { noDetect: values["no-detect"], minFace: Number(values["min-face"]) };
  if (values.annotate) Deno.mkdirSync(values.annotate, { recursive: true });
  const bar = files.length > 1 ? new ProgressBar(files.length, "predict", "img") : undefined;
  const batchSize = Number(values["batch-size"]);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`--batch-size ${values["batch-size"]}: expected a whole number >= 1`);
  }
  let failed = 0, done = 0;
  for (let start = 0; start < files.length; start += batchSize) {
    for (const { image, ...prediction } of await predictFiles(loaded, files.slice(start, start + batchSize), options)) {
      if (prediction.error) failed++;
      console.log(JSON.stringify(prediction));
      if (values.annotate && image) {
        const out = join(values.annotate, `${basename(prediction.path, extname(prediction.path))}.annotated.png`);
        Deno.writeFileSync(out, await svgToPng(annotationSvg(image, prediction.faces), 1));
      }
      bar?.update(++done);
    }
  }
  if (files.length === 0) console.error("no images found");
  return files.length > 0 && failed === files.length ? 1 : 0;
}

if (import.meta.main) await runCommand(main, 2);
