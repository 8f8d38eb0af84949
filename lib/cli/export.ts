/**
 * `deno task export --model DIR --format onnx [--float16] [--out FILE.onnx]`:
 * a saved model (one net or an ensemble) as an ONNX file for onnxruntime
 * and other runtimes (lib/model/onnx.ts: the mapping of layers to
 * operators). A layer that cannot be exported, or a damaged model, gets one
 * line and no file.
 */
import { initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import { exportOnnx } from "../model/onnx.ts";
import { writeFileAtomic } from "../util/files.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";
import { runCommand } from "./run.ts";

export const EXPORT_FLAGS = {
  model: MODEL_FLAG,
  format: { type: "string", choices: ["onnx"], default: "onnx", help: "the file format" },
  float16: { type: "boolean", help: "store the weights as half-precision floats (half the file)" },
  out: { type: "string", value: "FILE.onnx", help: "where the file goes (default MODEL/model.onnx)" },
} as const satisfies FlagTable;

/** Export as `deno task export ARGS` does; returns the file written (the package's `exportOnnx` runs lib/model/onnx.ts too). */
export async function runExport(args: string[], log: (line: string) => void = console.log): Promise<string> {
  const { values } = parseFlags(
    { name: "export", summary: "Export a saved model as ONNX (normalization and calibration inside)." },
    EXPORT_FLAGS,
    args,
  );
  const dir = defaultModelDir(values.model);
  const out = values.out ?? `${dir}/model${values.float16 ? "-float16" : ""}.onnx`;
  if (!out.endsWith(".onnx")) throw new Error(`--out ${out}: give a FILE.onnx`);
  await initBackend();
  const loaded = await loadModel(dir, { fold: true });
  try {
    const bytes = await exportOnnx(loaded, { float16: values.float16 });
    writeFileAtomic(out, bytes);
    log(
      `wrote ${out} (${(bytes.length / 2 ** 20).toFixed(2)} MB, ONNX IR 8, opset 13): input "pixels" float32 ` +
        `[N, ${loaded.metadata.inputSize}, ${loaded.metadata.inputSize}, 1] of 0-255, output "probabilities" ` +
        `[N, ${loaded.metadata.labels.length}] (${loaded.metadata.labels.join(", ")})`,
    );
    return out;
  } finally {
    loaded.model.dispose();
  }
}

if (import.meta.main) await runCommand(async (args: string[]) => void await runExport(args));
