/**
 * `deno task explore [--model outputs/model]`: the interactive explorer's
 * data, MODEL/explorer.json: a stratified sample of a test split, its
 * penultimate-layer features projected to 2-D (PCA), with each face and its
 * calibrated probabilities. `deno task serve` shows it at /explorer.
 */
import { join } from "node:path";
import { initBackend } from "../backend/backend.ts";
import { stratifiedSample } from "../data/dataset.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { type Split, SPLITS } from "../data/labels.ts";
import { explorerData } from "../eval/explorer.ts";
import { loadModel } from "../model/model_io.ts";
import { writeFileAtomic } from "../util/files.ts";
import { DATA_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";

export const EXPLORE_FLAGS = {
  model: MODEL_FLAG,
  split: { type: "string", choices: SPLITS, default: "PrivateTest", help: "the split whose faces are shown" },
  points: { type: "integer", min: 10, default: 500, help: "faces in the sample (class proportions kept)" },
  seed: { type: "integer", min: 0, default: 1, help: "seed of the sample" },
  out: { type: "string", value: "FILE", help: "where the data goes (default MODEL/explorer.json)" },
  data: DATA_FLAG,
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "explore", summary: "Write the explorer's data: test faces' features in 2-D (PCA), faces, probabilities." },
    EXPLORE_FLAGS,
    args,
  );
  const modelDir = defaultModelDir(values.model);
  await initBackend();
  const { model, metadata } = await loadModel(modelDir);
  const data = await loadDataset(resolveDataPath(values.data), { onProgress: console.error });
  const split = values.split as Split;
  const set = data.splits[split];
  if (set.n === 0) throw new Error(`${data.source} has no ${split} images`);
  const rows = stratifiedSample(set.labels, values.points, values.seed);
  console.error(`explore: ${rows.length} ${split} faces through ${modelDir}`);
  const explorer = await explorerData(model, set, rows, {
    split,
    labels: metadata.labels,
    temperature: metadata.temperature,
  });
  const out = values.out ?? join(modelDir, "explorer.json");
  writeFileAtomic(out, JSON.stringify(explorer) + "\n");
  const variance = explorer.explained.map((e) => `${(100 * e).toFixed(1)}%`).join(" + ");
  console.log(`wrote ${out}: ${rows.length} points, PCA axes explain ${variance} of the variance`);
}

if (import.meta.main) await runCommand(main);
