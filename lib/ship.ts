/**
 * Ship a run's model as the project's model: of its best epoch (`best/`) and
 * its weight average (`averaged/`, when trained with --average-from), the
 * one with the higher PublicTest accuracy. Copy it to outputs/model/,
 * evaluate it once on PrivateTest (plain and with TTA), copy the learning
 * curves, and write RECIPE.md from the run's own records.
 *
 *   deno task ship --run outputs/runs/compact-fer [--out outputs/model]
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { initBackend } from "./backend.ts";
import { loadModel } from "./model_io.ts";
import { loadDataset, resolveDataPath } from "./data.ts";
import { evaluateSet, writeReport } from "./evaluate.ts";
import { formatReport, type Report } from "./metrics.ts";
import { parseHistoryCsv } from "./train.ts";
import { exists, projectPath } from "./paths.ts";
import { runCommand } from "./cli.ts";

const MODEL_FILES = ["model.json", "weights.bin", "metadata.json"];

/** The train command that reproduces a run's settings. */
export function trainCommand(config: Record<string, unknown>, out: string): string {
  const flags: [string, unknown][] = [
    ["arch", config.arch],
    ["epochs", config.epochs],
    ["batch-size", config.batchSize],
    ["lr", config.lr],
    ["label-smoothing", config.labelSmoothing],
    ["patience", config.earlyStoppingPatience],
    ["lr-patience", config.lrPatience],
    ["monitor", config.monitor],
    ["seed", config.seed],
    ...(config.averageFrom ? [["average-from", config.averageFrom] as [string, unknown]] : []),
  ];
  const augment = config.augment ? "" : " --no-augment";
  return `deno task train ${flags.map(([k, v]) => `--${k} ${v}`).join(" ")}${augment} --out ${out}`;
}

/** A checkpoint of a run and its PublicTest accuracy. */
export interface Candidate {
  name: "best" | "averaged";
  publicTest: number;
  /** What it holds, e.g. "epoch 26" or "mean of epochs 29-50". */
  description: string;
}

/** The run's shippable checkpoints, with their PublicTest accuracy, highest first. */
export function candidates(run: string): Candidate[] {
  const found: Candidate[] = [];
  for (const name of ["best", "averaged"] as const) {
    const file = join(run, name, "metadata.json");
    if (!exists(file)) continue;
    const publicTest = JSON.parse(Deno.readTextFileSync(file)).metrics?.PublicTest ?? {};
    const description = name === "best"
      ? `epoch ${publicTest.epoch}`
      : `mean of epochs ${publicTest.epochs[0]}-${publicTest.epochs.at(-1)}`;
    found.push({ name, publicTest: publicTest.accuracy, description });
  }
  if (found.length === 0) throw new Error(`${run}: no best/ or averaged/ checkpoint; is it a run folder?`);
  return found.sort((a, b) => b.publicTest - a.publicTest);
}

/** RECIPE.md text: how the model was made and what it scores. */
export function recipeText(
  run: string,
  config: Record<string, unknown>,
  trainSeconds: number,
  epochs: number,
  choices: Candidate[],
  plain: Report,
  tta: Report,
): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  return `# Recipe of the shipped model

| | |
| --- | --- |
| architecture | \`${config.arch}\` |
| command | ${config.recipe ? `\`deno task train --recipe ${config.recipe}\`, that is ` : ""}\`${
    trainCommand(config, run)
  }\` (resumed with \`--out ${run} --resume\` after interruptions; to train it afresh where ${run} exists, give \`--out\` a new folder), then \`deno task ship --run ${run}\` |
| settings | ${
    Object.entries(config).filter(([k]) => !["out", "data"].includes(k)).map(([k, v]) => `${k}=${v}`).join(", ")
  } |
| seed | ${config.seed} |
| epochs trained | ${epochs} |
| shipped checkpoint | \`${choices[0].name}/\`: ${choices[0].description} (chosen on PublicTest: ${
    choices.map((c) => `${c.name} ${pct(c.publicTest)}`).join(", ")
  }) |
| training wall time | ${(trainSeconds / 3600).toFixed(2)} h |
| machine | 2-core x86-64 CPU, 24 GiB, no GPU; tfjs 4.22 WASM backend (SIMD), two data-parallel Deno workers |
| data | FER2013: trained on Training, early stopping and model choice on PublicTest |

PrivateTest (evaluated once, 3,589 images):

| | accuracy | macro-F1 |
| --- | --- | --- |
| plain | ${pct(plain.accuracy)} | ${pct(plain.macro_f1)} |
| TTA (mirror x 5 shifts) | ${pct(tta.accuracy)} | ${pct(tta.macro_f1)} |
`;
}

async function main(args: string[]) {
  const { values } = parseArgs({
    args,
    options: { run: { type: "string" }, out: { type: "string", default: projectPath("outputs", "model") } },
  });
  if (!values.run) throw new Error("usage: deno task ship --run RUN_FOLDER [--out outputs/model]");
  const run = values.run, out = values.out;
  const choices = candidates(run);
  console.log(`PublicTest: ${choices.map((c) => `${c.name} (${c.description}) ${c.publicTest}`).join(", ")}`);
  await initBackend();
  Deno.mkdirSync(out, { recursive: true });
  for (const f of MODEL_FILES) Deno.copyFileSync(join(run, choices[0].name, f), join(out, f));
  for (const f of ["curves.png", "curves.svg", "history.csv", "config.json"]) {
    Deno.copyFileSync(join(run, f), join(out, f));
  }
  const { model } = await loadModel(out);
  const data = await loadDataset(resolveDataPath());
  const test = data.splits.PrivateTest;
  const plain = await evaluateSet(model, test, "PrivateTest", { progressLabel: "PrivateTest" });
  const tta = await evaluateSet(model, test, "PrivateTest", { tta: true, progressLabel: "PrivateTest +TTA" });
  console.log(formatReport(plain));
  console.log(`with TTA: ${formatReport(tta)}`);
  await writeReport(out, plain, { model: out });
  await writeReport(join(out, "tta"), tta, { model: out, tta: true });
  const config = JSON.parse(Deno.readTextFileSync(join(run, "config.json")));
  const history = parseHistoryCsv(Deno.readTextFileSync(join(run, "history.csv")));
  const state = JSON.parse(Deno.readTextFileSync(join(run, "last", "train_state.json")));
  Deno.writeTextFileSync(
    join(out, "RECIPE.md"),
    recipeText(run, config, state.elapsedSeconds, history.length, choices, plain, tta),
  );
  console.log(`shipped ${run}/${choices[0].name} to ${out} (RECIPE.md, report.json, tta/report.json)`);
}

if (import.meta.main) await runCommand(main);
