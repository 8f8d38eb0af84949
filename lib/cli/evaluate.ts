/** `deno task evaluate --model DIR [--split PrivateTest]`: a saved model's report on one split, with its charts. */
import { join } from "node:path";
import { BACKEND_CHOICES, type BackendChoice, initBackend } from "../backend/backend.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { type Split, SPLITS } from "../data/labels.ts";
import { evaluateSet, writeReport } from "../eval/evaluate.ts";
import { chanceWarning, formatReport } from "../eval/metrics.ts";
import { loadModel } from "../model/model_io.ts";
import { DATA_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const EVALUATE_FLAGS = {
  model: { type: "string", value: "DIR", help: "a saved model folder (model.json, weights.bin, metadata.json)" },
  split: { type: "string", choices: SPLITS, default: "PrivateTest", help: "the split to evaluate" },
  out: { type: "string", value: "DIR", help: "where the report goes (default MODEL/eval-SPLIT[-tta])" },
  data: DATA_FLAG,
  tta: { type: "boolean", help: "average each image's prediction over 10 views" },
  "batch-size": { type: "integer", min: 1, default: 256, help: "images per prediction batch" },
  "skip-bad-rows": { type: "boolean", help: "leave malformed CSV rows out instead of stopping" },
  backend: { type: "string", choices: BACKEND_CHOICES, default: "wasm", help: "tfjs backend (auto: a hardware GPU)" },
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "evaluate", summary: "Evaluate a saved model on one split: accuracy, macro-F1, confusion matrix." },
    EVALUATE_FLAGS,
    args,
  );
  if (!values.model) throw new Error("--model DIR is required (see --help)");
  const split = values.split as Split;
  const active = await initBackend(values.backend as BackendChoice);
  console.error(`backend: ${active.backend}${active.adapter ? ` on ${active.adapter}` : ""}`);
  const { model, metadata } = await loadModel(values.model);
  const data = await loadDataset(resolveDataPath(values.data), {
    skipBadRows: values["skip-bad-rows"],
    onProgress: console.error,
  });
  const set = data.splits[split];
  if (set.n === 0) throw new Error(`${data.source} has no ${split} images`);
  const report = await evaluateSet(model, set, split, {
    batchSize: values["batch-size"],
    tta: values.tta,
    progressLabel: `evaluate ${split}${values.tta ? " +TTA" : ""}`,
  });
  console.log(formatReport(report));
  const warning = chanceWarning(report);
  if (warning) console.error(warning);
  const out = values.out ?? join(values.model, values.tta ? `eval-${split}-tta` : `eval-${split}`);
  await writeReport(out, report, {
    model: values.model,
    architecture: metadata.architecture,
    tta: values.tta,
    device: active,
  });
  console.log(`wrote ${join(out, "report.json")} and confusion_matrix.png/.svg`);
}

if (import.meta.main) await runCommand(main);
