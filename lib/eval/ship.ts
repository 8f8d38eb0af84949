/**
 * Ship the project's model. Candidates, each scored on PublicTest: every
 * given run's best epoch (`best/`) and weight average (`averaged/`, when
 * trained with --average-from), and, given several runs, the ensembles of
 * two or more of the runs' top candidates (one model averaging their
 * probabilities). The highest goes to outputs/model/, is evaluated once
 * on PrivateTest (plain and with TTA), and gets the learning curves of the
 * runs it came from and a RECIPE.md written from the runs' own records.
 * `deno task ship` (lib/cli/ship.ts) runs `shipModel`.
 */
import * as tf from "@tensorflow/tfjs";
import { dirname, join, resolve } from "node:path";
import { initBackend } from "../backend/backend.ts";
import {
  loadModel,
  makeMetadata,
  type ModelMetadata,
  readJson,
  saveModel,
  writeTextFileAtomic,
} from "../model/model_io.ts";
import { type FaceSet, loadDataset, resolveDataPath } from "../data/dataset.ts";
import { evaluateSet, predictSet, writeReport } from "./evaluate.ts";
import { argmaxRows, buildReport, formatReport, type Report } from "./metrics.ts";
import { bestEpoch, parseHistoryCsv } from "../train/history.ts";
import { DEFAULT_CONFIG, trainCommand, type TrainConfig } from "../train/config.ts";
import { ensembleModel } from "../model/architectures.ts";
import { learningCurvesSpec, saveChart } from "../util/charts.ts";
import type { EpochRecord } from "../train/history.ts";
import { exists, PROJECT_ROOT } from "../util/paths.ts";

const MODEL_FILES = ["model.json", "weights.bin", "metadata.json"];
/** What `deno task calibrate` and `deno task explore` derive from a model: removed when another is shipped over it. */
const DERIVED_FILES = ["calibration", "explorer.json"];

/** A shippable model and its PublicTest accuracy. */
export interface Candidate {
  /** "best" or "averaged" (a run's checkpoint), or "ensemble". */
  name: string;
  /** The model folder of a checkpoint. */
  dir?: string;
  /** The model folders an ensemble averages (it is built when shipped). */
  members?: string[];
  publicTest: number;
  /** What it holds, e.g. "epoch 26" or "mean of epochs 29-50". */
  description: string;
}

/** The run's shippable checkpoints, with their PublicTest accuracy, highest first. */
export function candidates(run: string): Candidate[] {
  const found: Candidate[] = [];
  for (const name of ["best", "averaged"] as const) {
    const dir = join(run, name);
    if (!exists(join(dir, "metadata.json"))) continue;
    const publicTest = JSON.parse(Deno.readTextFileSync(join(dir, "metadata.json"))).metrics?.PublicTest ?? {};
    const description = name === "best"
      ? `${dir}: epoch ${publicTest.epoch}`
      : `${dir}: mean of epochs ${publicTest.epochs[0]}-${publicTest.epochs.at(-1)}`;
    found.push({ name, dir, publicTest: publicTest.accuracy, description });
  }
  if (found.length === 0) throw new Error(`${run}: no best/ or averaged/ checkpoint; is it a run folder?`);
  return found.sort((a, b) => b.publicTest - a.publicTest);
}

/** What RECIPE.md and the learning curves say about one training run. */
export interface RunRecord {
  run: string;
  config: Record<string, unknown>;
  history: EpochRecord[];
  seconds: number;
}

/** A run folder's settings, epoch history and training wall time. */
export function readRun(run: string): RunRecord {
  const folder = resolve(PROJECT_ROOT, run);
  const config = { ...DEFAULT_CONFIG, ...readJson<Partial<TrainConfig>>(join(folder, "config.json")) };
  const history = parseHistoryCsv(Deno.readTextFileSync(join(folder, "history.csv")));
  const state = readJson<{ elapsedSeconds: number }>(join(folder, "last", "train_state.json"));
  return { run, config, history, seconds: state.elapsedSeconds };
}

/**
 * RECIPE.md text: how the model was made and what it scores. `runs` are the
 * runs that trained the shipped model (their commands and wall time);
 * `weighed`, every run the ship command weighed (the others get a line
 * each: their command, best PublicTest accuracy and wall time).
 */
export function recipeText(
  runs: RunRecord[],
  weighed: RunRecord[],
  choices: Candidate[],
  parameters: number,
  plain: Report,
  tta: Report,
): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
  const hours = (seconds: number) => `${(seconds / 3600).toFixed(2)} h`;
  const total = runs.reduce((sum, r) => sum + r.seconds, 0);
  const ship = `deno task ship ${weighed.map(({ run }) => `--run ${run}`).join(" ")}`;
  const others = weighed.filter(({ run }) => !runs.some((r) => r.run === run));
  const otherRow = ({ run, config, history, seconds }: RunRecord) => {
    const best = bestEpoch(history);
    return `| ${run} | \`${trainCommand(config, run)}\` | ${pct(best.val_accuracy)} (epoch ${best.epoch}) | ${
      hours(seconds)
    } |`;
  };
  const runSection = ({ run, config, history, seconds }: RunRecord) => `
### ${run}

| | |
| --- | --- |
| architecture | \`${config.arch}\` |
| command | \`${
    trainCommand(config, run)
  }\` (resumed with \`--out ${run} --resume\` after interruptions; to train it afresh where ${run} exists, give \`--out\` a new folder) |
| settings | ${
    Object.entries(config).filter(([k, v]) => !["out", "data"].includes(k) && typeof v !== "object")
      .map(([k, v]) => `${k}=${v}`).join(", ")
  } |
| seed | ${config.seed} |
| epochs trained | ${history.length} |
| training wall time | ${hours(seconds)} |
`;
  return `# Recipe of the shipped model

| | |
| --- | --- |
| shipped | ${choices[0].description} (PublicTest ${pct(choices[0].publicTest)}) |
| chosen on PublicTest among | ${choices.length} candidates: each run's checkpoints and every ensemble of two or more runs (all under [Candidates](#candidates)) |
| parameters | ${parameters.toLocaleString("en-US")} |
| commands | ${runs.map((r) => `\`${trainCommand(r.config, r.run)}\``).join(", then ")}, then \`${ship}\` |
| training wall time | ${hours(total)}${runs.length > 1 ? ` (${runs.map((r) => hours(r.seconds)).join(" + ")})` : ""} |
| machine | 2-core x86-64 CPU, 24 GiB, no GPU; tfjs 4.22 WASM backend (SIMD), two data-parallel Deno workers |
| data | FER2013: trained on Training, early stopping and model choice on PublicTest |

PrivateTest (evaluated once, 3,589 images):

| | accuracy | macro-F1 |
| --- | --- | --- |
| plain | ${pct(plain.accuracy)} | ${pct(plain.macro_f1)} |
| TTA (mirror x 5 shifts) | ${pct(tta.accuracy)} | ${pct(tta.macro_f1)} |

## Training runs
${runs.map(runSection).join("")}
## The other runs weighed

| run | command | best PublicTest | training wall time |
| --- | --- | --- | --- |
${others.map(otherRow).join("\n")}

## Candidates

By PublicTest accuracy, the figure the choice was made on:

| rank | PublicTest | candidate |
| --- | --- | --- |
${choices.map((c, i) => `| ${i + 1} | ${pct(c.publicTest)} | ${c.description} |`).join("\n")}
`;
}

/** The runs' histories as one, epochs numbered on from run to run, and a title saying which epochs are whose. */
export function joinHistories(runs: Pick<RunRecord, "run" | "history">[]): {
  history: EpochRecord[];
  title: string;
} {
  const history: EpochRecord[] = [];
  const parts: string[] = [];
  for (const { run, history: own } of runs) {
    const offset = history.length;
    history.push(...own.map((h) => ({ ...h, epoch: h.epoch + offset })));
    parts.push(`${offset + 1}-${history.length}: ${run.split("/").at(-1)}`);
  }
  return { history, title: `Learning curves (epochs ${parts.join(", ")})` };
}

/** The runs a checkpoint descends from, oldest first: the run that trained it, after the run its --init-from came from. */
export function lineage(checkpoint: string): string[] {
  const run = dirname(checkpoint);
  const config = readJson<Partial<TrainConfig>>(resolve(PROJECT_ROOT, run, "config.json"));
  return [...(config.initFrom ? lineage(config.initFrom) : []), run];
}

/** The run folders a shipped model was trained in, oldest first (every member's, for an ensemble). */
export function shippedRuns(metadata: ModelMetadata): string[] {
  const training = metadata.training as { members?: string[]; config?: { out?: string } };
  const checkpoints = training.members ?? (training.config?.out ? [join(training.config.out, "best")] : []);
  return [...new Set(checkpoints.flatMap(lineage))];
}

/** Every choice of two or more of `items`, in order. */
export function subsetsOfTwoOrMore<T>(items: T[]): T[][] {
  const subsets: T[][] = [];
  for (let mask = 1; mask < 2 ** items.length; mask++) {
    const subset = items.filter((_, i) => mask & (1 << i));
    if (subset.length >= 2) subsets.push(subset);
  }
  return subsets;
}

/** One model averaging the probabilities of the saved models in `dirs`, and a name for its architecture. */
async function buildEnsemble(dirs: string[]): Promise<{ model: tf.LayersModel; architecture: string }> {
  const members = await Promise.all(dirs.map((dir) => loadModel(dir)));
  const model = ensembleModel(members.map((m) => ({ arch: m.metadata.architecture, model: m.model })));
  members.forEach((m) => m.model.dispose());
  return { model, architecture: `ensemble of ${members.map((m) => m.metadata.architecture).join(", ")}` };
}

/**
 * The ensembles of two or more of the checkpoints `tops`, each scored on
 * PublicTest. An ensemble's output is the mean of its members'
 * probabilities, so each member predicts PublicTest once and every subset
 * is scored from those predictions.
 */
async function ensembleCandidates(tops: Candidate[], validation: FaceSet): Promise<Candidate[]> {
  const predictions: Float32Array[] = [];
  for (const top of tops) {
    const { model } = await loadModel(top.dir!);
    predictions.push(await predictSet(model, validation, { progressLabel: `PublicTest ${top.dir}` }));
    model.dispose();
  }
  const classes = predictions[0].length / validation.n;
  return subsetsOfTwoOrMore(tops.map((_, i) => i)).map((subset) => {
    const mean = new Float32Array(predictions[0].length);
    for (const i of subset) predictions[i].forEach((p, k) => (mean[k] += p / subset.length));
    const { accuracy } = buildReport("PublicTest", validation.labels, argmaxRows(mean, classes));
    const description = `mean of the probabilities of ${subset.map((i) => tops[i].description).join(" and ")}`;
    return {
      name: "ensemble",
      members: subset.map((i) => tops[i].dir!),
      publicTest: accuracy,
      description,
    };
  });
}

/** Score every candidate of `runs` on PublicTest, ship the best to `out`, evaluate it on PrivateTest, write RECIPE.md. */
export async function shipModel(runs: string[], out: string): Promise<void> {
  const perRun = runs.map(candidates);
  let choices = perRun.flat();
  await initBackend();
  const data = await loadDataset(resolveDataPath());
  choices.push(...await ensembleCandidates(perRun.map((c) => c[0]), data.splits.PublicTest));
  choices = choices.sort((a, b) => b.publicTest - a.publicTest);
  const top = choices.slice(0, 5).map((c) => `  ${(100 * c.publicTest).toFixed(2)}%  ${c.description}`);
  console.log(`PublicTest, best 5 of ${choices.length} candidates (all in RECIPE.md):\n${top.join("\n")}`);
  const chosen = choices[0];
  const records = runs.map(readRun);
  Deno.mkdirSync(out, { recursive: true });
  for (const stale of DERIVED_FILES) {
    if (exists(join(out, stale))) Deno.removeSync(join(out, stale), { recursive: true });
  }
  if (chosen.dir) {
    for (const f of MODEL_FILES) Deno.copyFileSync(join(chosen.dir, f), join(out, f));
  } else {
    const ensemble = await buildEnsemble(chosen.members!);
    const metadata = makeMetadata(ensemble.model, ensemble.architecture, { members: chosen.members }, {
      PublicTest: { accuracy: chosen.publicTest },
    });
    await saveModel(out, ensemble.model, metadata);
    ensemble.model.dispose();
  }
  const trainedBy = [...new Set(chosen.dir ? lineage(chosen.dir) : chosen.members!.flatMap(lineage))];
  const trainedByRecords = trainedBy.map((run) => records.find((r) => r.run === run) ?? readRun(run));
  const joined = joinHistories(trainedByRecords);
  await saveChart(learningCurvesSpec(joined.history, joined.title), join(out, "curves"));

  const { model } = await loadModel(out);
  const test = data.splits.PrivateTest;
  const plain = await evaluateSet(model, test, "PrivateTest", { progressLabel: "PrivateTest" });
  const tta = await evaluateSet(model, test, "PrivateTest", { tta: true, progressLabel: "PrivateTest +TTA" });
  console.log(formatReport(plain));
  console.log(`with TTA: ${formatReport(tta)}`);
  await writeReport(out, plain, { model: out });
  await writeReport(join(out, "tta"), tta, { model: out, tta: true });
  writeTextFileAtomic(
    join(out, "RECIPE.md"),
    recipeText(trainedByRecords, records, choices, model.countParams(), plain, tta),
  );
  console.log(`shipped ${chosen.description} to ${out} (RECIPE.md, report.json, tta/report.json)`);
  console.log(`next: deno task calibrate --model ${out}; deno task explore --model ${out}`);
}
