/**
 * Emotions of the faces in photos, one JSON line per image:
 *
 *   deno task predict [--model DIR] PATH... [--annotate DIR] [--no-detect] [--min-face PX]
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
import { type FaceOptions, type FaceResult, recognizeEmotions } from "./faces.ts";
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

/** Predict one image file; errors become the line's `error`. */
export async function predictFile(loaded: LoadedModel, path: string, options: FaceOptions = {}): Promise<
  Prediction & { image?: RgbaImage }
> {
  try {
    const bytes = await Deno.readFile(path);
    const image = await decodeImage(bytes, path);
    const faces = await recognizeEmotions(loaded, image, options);
    return { path, width: image.width, height: image.height, faces, error: null, image };
  } catch (err) {
    const message = (err as Error).message;
    return {
      path,
      width: null,
      height: null,
      faces: [],
      error: message.startsWith(path) ? message : `${path}: ${message}`,
    };
  }
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
  let failed = 0;
  for (const [i, file] of files.entries()) {
    const { image, ...prediction } = await predictFile(loaded, file, options);
    if (prediction.error) failed++;
    console.log(JSON.stringify(prediction));
    if (values.annotate && image) {
      const out = join(values.annotate, `${basename(file, extname(file))}.annotated.png`);
      Deno.writeFileSync(out, await svgToPng(annotationSvg(image, prediction.faces), 1));
    }
    bar?.update(i + 1);
  }
  if (files.length === 0) console.error("no images found");
  return files.length > 0 && failed === files.length ? 1 : 0;
}

if (import.meta.main) await runCommand(main, 2);
