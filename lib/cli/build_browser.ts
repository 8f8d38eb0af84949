/**
 * `deno task build:browser [--model DIR]`: the browser ES module
 * (lib/web/build.ts) and its sizes beside face-api's ESM build (which
 * bundles tfjs), raw and gzipped.
 */
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { buildBrowser } from "../web/build.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { displayPath, packageFile } from "../util/paths.ts";
import { defaultModelDir } from "../vision/predict.ts";
import { runCommand } from "./run.ts";

export const BUILD_BROWSER_FLAGS = {
  model: { type: "string", value: "DIR", help: "the model put beside the module (default outputs/model)" },
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "build:browser", summary: "Bundle the browser module with the model and detectors beside it." },
    BUILD_BROWSER_FLAGS,
    args,
  );
  const built = await buildBrowser(defaultModelDir(values.model));
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  const faceApi = Deno.readFileSync(
    join(dirname(packageFile("@vladmandic/face-api/dist/face-api.node-wasm.js")), "face-api.esm.js"),
  );
  console.log(`${displayPath(built.file)}: ${kb(built.bytes)}, ${kb(built.gzipped)} gzipped (tfjs not bundled)`);
  console.log(
    `face-api 1.7.15's face-api.esm.js: ${kb(faceApi.length)}, ${kb(gzipSync(faceApi).length)} gzipped (tfjs bundled)`,
  );
}

if (import.meta.main) await runCommand(main);
