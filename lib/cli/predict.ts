/**
 * `deno task predict [--model DIR] PATH...`: the emotions of the faces in
 * photos, one JSON line per image:
 * {"path", "width", "height", "faces": [{"box", "score", "emotion", "probabilities"}], "error"}.
 * PATH is an image or a folder (recursed). A bad file gets an `error` and
 * the batch goes on; the exit status is 1 only when every input failed.
 * With --annotate, each line also names its picture (`annotated`).
 */
import { basename, extname, join } from "node:path";
import { BACKEND_CHOICES, type BackendChoice, initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import type { FaceOptions } from "../vision/faces.ts";
import { FACE_SETTINGS } from "../web/face_pipeline.js";
import { annotationSvg, collectImages, defaultModelDir, predictFiles } from "../vision/predict.ts";
import { svgToPng } from "../util/charts.ts";
import { ProgressBar } from "../util/progress.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const PREDICT_FLAGS = {
  model: { type: "string", value: "DIR", help: "a saved model folder (default outputs/model)" },
  annotate: { type: "string", value: "DIR", help: "also write each photo with its faces boxed and labelled here" },
  "no-detect": { type: "boolean", help: "take each image as one face crop (no face detection)" },
  "min-face": {
    type: "integer",
    min: 1,
    default: FACE_SETTINGS.minFace,
    value: "PX",
    help: "smallest face side, in the photo's pixels",
  },
  "batch-size": { type: "integer", min: 1, default: 16, help: "images decoded and classified together" },
  backend: { type: "string", choices: BACKEND_CHOICES, default: "wasm", help: "tfjs backend (auto: a hardware GPU)" },
} as const satisfies FlagTable;

/** Command line. Returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    { name: "predict", summary: "Find the faces in photos and print their emotions.", positionals: "PATH..." },
    PREDICT_FLAGS,
    args,
  );
  if (positionals.length === 0) {
    throw new Error("give at least one image or folder: deno task predict [--model DIR] PATH... (see --help)");
  }
  await initBackend(values.backend as BackendChoice);
  const loaded = await loadModel(defaultModelDir(values.model));
  const files = collectImages(positionals);
  const options: FaceOptions = { noDetect: values["no-detect"], minFace: values["min-face"] };
  if (values.annotate) Deno.mkdirSync(values.annotate, { recursive: true });
  const bar = files.length > 1 ? new ProgressBar(files.length, "predict", "img") : undefined;
  const batchSize = values["batch-size"];
  const annotated = new Set<string>();
  let failed = 0, done = 0;
  for (let start = 0; start < files.length; start += batchSize) {
    const batch = files.slice(start, start + batchSize);
    for (const { image, scale, ...prediction } of await predictFiles(loaded, batch, options, !!values.annotate)) {
      if (prediction.error) failed++;
      if (values.annotate && image) {
        const out = annotationPath(values.annotate, prediction.path, annotated);
        Deno.writeFileSync(out, await svgToPng(await annotationSvg(image, prediction.faces, scale), 1));
        Object.assign(prediction, { annotated: out });
      }
      console.log(JSON.stringify(prediction));
      bar?.update(++done);
    }
  }
  return failed === files.length ? 1 : 0;
}

/** `DIR/NAME.annotated.png` for a photo, numbered (`NAME-2.annotated.png`, ...) when this run already wrote that name. */
function annotationPath(dir: string, photo: string, taken: Set<string>): string {
  const name = basename(photo, extname(photo));
  let out = join(dir, `${name}.annotated.png`);
  for (let k = 2; taken.has(out); k++) out = join(dir, `${name}-${k}.annotated.png`);
  taken.add(out);
  return out;
}

if (import.meta.main) await runCommand(main, 2);
