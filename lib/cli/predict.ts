/**
 * `deno task predict [--model DIR] PATH...`: the emotions of the faces in
 * photos, one JSON line per image:
 * {"path", "width", "height", "faces": [{"box", "score", "emotion", "probabilities"}], "error"}.
 * PATH is an image or a folder (recursed). A bad file gets an `error` and
 * the batch goes on; the exit status is 1 only when every input failed.
 */
import { basename, extname, join } from "node:path";
import { BACKEND_CHOICES, type BackendChoice, initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import type { FaceOptions } from "../vision/faces.ts";
import { annotationSvg, collectImages, defaultModelDir, predictFiles } from "../vision/predict.ts";
import { svgToPng } from "../util/charts.ts";
import { ProgressBar } from "../util/progress.ts";
import { type FlagTable, parseFlags } from "./flags.ts";
import { runCommand } from "./run.ts";

export const PREDICT_FLAGS = {
  model: { type: "string", value: "DIR", help: "a saved model folder (default outputs/model)" },
  annotate: { type: "string", value: "DIR", help: "also write each photo with its faces boxed and labelled here" },
  "no-detect": { type: "boolean", help: "take each image as one face crop (no face detection)" },
  "min-face": { type: "integer", min: 1, default: 24, value: "PX", help: "smallest face side, in pixels" },
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
  let failed = 0, done = 0;
  for (let start = 0; start < files.length; start += batchSize) {
    for (const { image, ...prediction } of await predictFiles(loaded, files.slice(start, start + batchSize), options)) {
      if (prediction.error) failed++;
      console.log(JSON.stringify(prediction));
      if (values.annotate && image) {
        const out = join(values.annotate, `${basename(prediction.path, extname(prediction.path))}.annotated.png`);
        Deno.writeFileSync(out, await svgToPng(await annotationSvg(image, prediction.faces), 1));
      }
      bar?.update(++done);
    }
  }
  if (files.length === 0) console.error("no images found");
  return files.length > 0 && failed === files.length ? 1 : 0;
}

if (import.meta.main) await runCommand(main, 2);
