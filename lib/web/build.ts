/**
 * The browser build (`deno task build:browser`): lib/core/recognizer.js and
 * what it imports bundled into one ES module, `outputs/browser/emotion-cnn.js`
 * (tfjs not bundled: a page passes its own), with the default model and both
 * detectors beside it in `model/` and `detector/`, where the module looks for
 * them by default. `deno task serve`'s page loads this build.
 */
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { detectorFiles, type DetectorKind, projectPath } from "../util/paths.ts";
import { DETECTORS } from "../core/face_pipeline.js";

/** Where the build goes. */
export const BROWSER_BUILD = projectPath("outputs", "browser");

/** Bundle the browser module (minified), copy the model and detectors beside it; its sizes, raw and gzipped. */
export async function buildBrowser(
  modelDir = projectPath("outputs", "model"),
  out = BROWSER_BUILD,
): Promise<{ file: string; bytes: number; gzipped: number }> {
  const file = join(out, "emotion-cnn.js");
  const { success, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "--format", "esm", "--minify", "-o", file]
      .concat(projectPath("lib", "core", "recognizer.js")),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) throw new Error(`deno bundle failed: ${new TextDecoder().decode(stderr).trim()}`);
  Deno.mkdirSync(join(out, "model"), { recursive: true });
  for (const name of ["model.json", "weights.bin", "metadata.json"]) {
    Deno.copyFileSync(join(modelDir, name), join(out, "model", name));
  }
  Deno.mkdirSync(join(out, "detector"), { recursive: true });
  for (const kind of Object.keys(DETECTORS) as DetectorKind[]) {
    for (const path of Object.values(detectorFiles(kind))) {
      Deno.copyFileSync(path, join(out, "detector", path.split("/").pop()!));
    }
  }
  const bytes = Deno.readFileSync(file);
  return { file, bytes: bytes.length, gzipped: gzipSync(bytes).length };
}
