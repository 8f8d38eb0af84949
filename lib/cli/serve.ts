/** `deno task serve [--port 8000] [--model DIR]`: the browser page (lib/web/) on localhost, until stopped. */
import { join } from "node:path";
import { startServer } from "../web/server.ts";
import { readJson } from "../util/files.ts";
import { DEFAULT_MODEL, defaultModelDir } from "../vision/predict.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const SERVE_FLAGS = {
  port: { type: "integer", min: 1, max: 65535, default: 8000, help: "port on 127.0.0.1" },
  model: { type: "string", value: "DIR", help: `the model the page loads (default ${DEFAULT_MODEL})` },
} as const satisfies FlagTable;

function main(args: string[]) {
  const { values } = parseFlags(
    { name: "serve", summary: "Serve the browser page: photos in, emotions out, all in the browser." },
    SERVE_FLAGS,
    args,
  );
  const modelDir = defaultModelDir(values.model);
  readJson(join(modelDir, "metadata.json")); // a missing or damaged one is named now, not by the page later
  startServer({ port: values.port, modelDir });
}

if (import.meta.main) await runCommand(main);
