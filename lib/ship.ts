/**
 * Ship a run's best checkpoint as the project's model: copy it to
 * outputs/model/, evaluate it once on PrivateTest (plain and with TTA),
 * copy its learning curves, and write RECIPE.md from the run's own records.
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
import { projectPath } from "./paths.ts";
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
  ];
  const augment = config.augment ? "" : " --no-augment";
  return `deno task train ${flags.map(([k, v]) => `--${k} ${v}`).join(" ")}${augment} --out ${out}`;
}

/** RECIPE.md text: how the model was made and what it scores. */
export function recipeText(
  run: string,
  config: Record<string, unknown>,
  trainSeconds: number,
  epochs: number,
  bestEpoch: number,
  plain: Report,
  tta: Report,
): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  return `# Recipe of the shipped model

| | |
| --- | --- |
| architecture | \`${config.arch}\` |
| command | \`${
    trainCommand(config, run)
  }\` (resumed with \`--out ${run} --resume\` after interruptions), then \`deno task ship --run ${run}\` |
| settings | ${
    Object.entries(config).filter(([k]) => !["out", "data"].includes(k)).map(([k, v]) => `${k}=${v}`).join(", ")
  } |
| seed | ${config.seed} |
| epochs trained | ${epochs} (best PublicTest epoch: ${bestEpoch}) |
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
  await initBackend();
  Deno.mkdirSync(out, { recursive: true });
  for (const f of MODEL_FILES) Deno.copyFileSync(join(run, "best", f), join(out, f));
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
  const metadata = JSON.parse(Deno.readTextFileSync(join(out, "metadata.json")));
  const bestEpoch = metadata.metrics?.PublicTest?.epoch ?? 0;
  Deno.writeTextFileSync(
    join(out, "RECIPE.md"),
    recipeText(run, config, state.elapsedSeconds, history.length, bestEpoch, plain, tta),
  );
  console.log(`shipped ${run}/best to ${out} (RECIPE.md, report.json, tta/report.json)`);
}

if (import.meta.main) await runCommand(main);
