/** `deno task serve [--port 8000] [--model DIR]`: the browser page (lib/web/) on localhost, until stopped. */
import { startServer } from "../web/server.ts";
import { buildBrowser } from "../web/build.ts";
import { initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const SERVE_FLAGS = {
  port: { type: "integer", min: 1, max: 65535, default: 8000, help: "port on 127.0.0.1" },
  model: MODEL_FLAG,
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "serve", summary: "Serve the browser page: photos in, emotions out, all in the browser." },
    SERVE_FLAGS,
    args,
  );
  const modelDir = defaultModelDir(values.model);
  // A missing or damaged model is named now, in one line, not by the page later.
  await initBackend();
  (await loadModel(modelDir)).model.dispose();
  await buildBrowser(modelDir); // the page loads the browser build (/emotion-cnn.js)
  startServer({ port: values.port, modelDir });
}

if (import.meta.main) await runCommand(main);
