/**
 * Ship the project's model: a release step over finished runs. Candidates,
 * each scored on PublicTest: every given run's best epoch (`best/`) and
 * weight average (`averaged/`, when trained with --average-from), and,
 * given several runs, the ensembles of two or more of the runs' top
 * candidates (one model averaging their probabilities). The highest is
 * assembled beside the model folder with the learning curves of the runs it
 * came from, its one PrivateTest evaluation (plain and with TTA) and a
 * RECIPE.md written from the runs' own records, and replaces the folder
 * only when complete, and only when it beats the model already there on
 * PublicTest (or with `force`). With `balance`, the chosen model's output
 * biases are shifted so that every class is scored as if equally common
 * (`balanceClasses`). `deno task ship` (lib/cli/ship.ts) runs `shipModel`.
 */
import type * as tf from "@tensorflow/tfjs";
import { basename, dirname, join, resolve } from "node:path";
import { initBackend } from "../backend/backend.ts";
import { loadModel, makeMetadata, modelFiles, type ModelMetadata, sha256Hex } from "../model/model_io.ts";
import { commitFolder, readJson, recoverFolder, writeFileAtomic, writeFiles } from "../util/files.ts";
import type { FaceSet, FerData, LabelSet } from "../data/dataset.ts";
import { loadDataset, trainedDataPath } from "../data/load.ts";
import { evaluateSet, predictSet, writeReport } from "../eval/evaluate.ts";
import { balanceClasses, classPrior } from "../eval/calibration.ts";
import { accuracy, argmaxRows, formatReport, type Report } from "../eval/metrics.ts";
import { bestEpoch, parseHistoryCsv } from "../train/history.ts";
import { DEFAULT_CONFIG, trainCommand, type TrainConfig } from "../train/config.ts";
import { ensembleModel } from "../model/architectures.ts";
import { learningCurvesSpec, saveChart } from "../util/charts.ts";
import type { EpochRecord } from "../train/history.ts";
import { displayPath, exists, PROJECT_ROOT } from "../util/paths.ts";
import { runPaths } from "../train/run_folder.ts";
import { machineDescription } from "../util/machine.ts";

const MODEL_FILES = ["model.json", "weights.bin", "metadata.json"];

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
  const paths = runPaths(run);
  for (const dir of [paths.best, paths.averaged]) {
    if (!exists(join(dir, "metadata.json"))) continue;
    const publicTest = readJson<ModelMetadata>(join(dir, "metadata.json")).metrics?.PublicTest as {
      accuracy: number;
      epoch?: number;
      epochs?: number[];
    };
    const description = dir === paths.best
      ? `${dir}: epoch ${publicTest.epoch}`
      : `${dir}: mean of epochs ${publicTest.epochs![0]}-${publicTest.epochs!.at(-1)}`;
    found.push({ name: dir === paths.best ? "best" : "averaged", dir, publicTest: publicTest.accuracy, description });
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

/** A run folder's settings, epoch history and training wall time (the sum of its epochs' seconds). */
export function readRun(run: string): RunRecord {
  const paths = runPaths(resolve(PROJECT_ROOT, run));
  const config = { ...DEFAULT_CONFIG, ...readJson<Partial<TrainConfig>>(paths.config) };
  let history: EpochRecord[];
  try {
    history = parseHistoryCsv(Deno.readTextFileSync(paths.history));
  } catch (error) {
    throw new Error(`${paths.history}: ${(error as Error).message}`);
  }
  return { run, config, history, seconds: history.reduce((sum, h) => sum + h.seconds, 0) };
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
  tta: Report | undefined,
  machine: string,
  shipFlags = "",
  prior?: readonly number[],
  balancedPublicTest?: number,
  strength = 1,
): string {
  const hours = (seconds: number) => `${(seconds / 3600).toFixed(2)} h`;
  const total = runs.reduce((sum, r) => sum + r.seconds, 0);
  const ship = `deno task ship ${weighed.map(({ run }) => `--run ${run}`).join(" ")}${shipFlags}`;
  const votes = runs.some((r) => (r.config.labels ?? "fer2013") !== "fer2013") ? " with the FER+ votes" : "";
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
| chosen on PublicTest among | ${choices.length} candidates: ${
    choices.some((c) => c.members)
      ? "each run's checkpoints and every ensemble of two or more runs"
      : "each run's own checkpoints (no ensembles)"
  } (all under [Candidates](#candidates)) |
| parameters | ${parameters.toLocaleString("en-US")} |
| commands | ${runs.map((r) => `\`${trainCommand(r.config, r.run)}\``).join(", then ")}, then \`${ship}\` |
| training wall time | ${hours(total)}${runs.length > 1 ? ` (${runs.map((r) => hours(r.seconds)).join(" + ")})` : ""} |
| machine (of this ship command) | ${machine} |
| data | FER2013${votes}: trained on Training, early stopping and model choice on PublicTest |${
    prior
      ? `\n| classes balanced (--balance) | output biases shifted by ${
        strength === 1 ? "-" : `${-strength} x `
      }log of each class's share of Training (${
        plain.labels.map((label, c) => `${label} ${pct(prior[c])}`).join(", ")
      }): ${
        strength === 1 ? "every class scored as if equally common" : "the training prior's weight changed"
      }; the candidates were weighed before the shift${
        balancedPublicTest === undefined ? "" : `, after which PublicTest is ${pct(balancedPublicTest)}`
      } |`
      : ""
  }

PrivateTest (evaluated once, ${plain.n.toLocaleString("en-US")} images):

| | accuracy | macro-F1 |
| --- | --- | --- |
| plain | ${pct(plain.accuracy)} | ${pct(plain.macro_f1)} |${
    tta ? `\n| TTA (mirror x 5 shifts) | ${pct(tta.accuracy)} | ${pct(tta.macro_f1)} |` : ""
  }

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
  const config = readJson<Partial<TrainConfig>>(runPaths(resolve(PROJECT_ROOT, run)).config);
  return [...(config.initFrom ? lineage(config.initFrom) : []), run];
}

/** The checkpoints a shipped model was built from, as trained: its run's best/, or each ensemble member's. */
export function shippedCheckpoints(metadata: ModelMetadata): string[] {
  const training = metadata.training as { members?: string[]; config?: { out?: string } };
  return training.members ?? (training.config?.out ? [join(training.config.out, "best")] : []);
}

/** The run folders a shipped model was trained in, oldest first (every member's, for an ensemble). */
export function shippedRuns(metadata: ModelMetadata): string[] {
  return [...new Set(shippedCheckpoints(metadata).flatMap(lineage))];
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
    const publicTest = accuracy(validation.labels, argmaxRows(mean, classes));
    const description = `mean of the probabilities of ${subset.map((i) => tops[i].description).join(" and ")}`;
    return {
      name: "ensemble",
      members: subset.map((i) => tops[i].dir!),
      publicTest,
      description,
    };
  });
}

/** Options of `shipModel`. */
export interface ShipOptions {
  /** Replace the model at `out` even when it scores as high or higher on PublicTest. */
  force?: boolean;
  /** Weigh the runs' own checkpoints only, no ensembles: a one-network model. */
  single?: boolean;
  /** Leave out the PrivateTest evaluation with TTA (tta/; RECIPE.md then gives the plain figures only). */
  noTta?: boolean;
  /** Store the weights as half-precision floats (half the download); the PrivateTest figures are of those weights. */
  float16?: boolean;
  /** Shift the output biases by -log of each class's training share (`balanceClasses`); the figures are of that model. */
  balance?: boolean;
  /** With `balance`: the shift's strength (1: every class as if equally common; 0.5 part way; below 0 toward the prior). */
  balanceStrength?: number;
  /** Data already in memory (default: FER2013, found as `train` finds it). */
  data?: FerData;
  log?: (message: string) => void;
}

/**
 * Score every candidate of `runs` on PublicTest and ship the best to `out`:
 * assembled in `out.tmp-PID` (model, curves, PrivateTest reports,
 * RECIPE.md), then put in place of `out` whole. A model already at `out` is
 * replaced only by one that beats it on PublicTest, or with `force`.
 */
export async function shipModel(runs: string[], out: string, options: ShipOptions = {}): Promise<void> {
  const log = options.log ?? console.log;
  const shown = displayPath(out);
  const twice = runs.find((run, i) => runs.findIndex((other) => resolve(other) === resolve(run)) < i);
  if (twice) throw new Error(`--run ${twice}: given twice (an ensemble of a net with itself weighs nothing new)`);
  const perRun = runs.map(candidates);
  const records = runs.map(readRun);
  let choices = perRun.flat();
  // Like with like: every candidate, and the model it would replace, scored on the same data, split and labels.
  const sources = [...new Set(choices.map((c) => trainedOn(c.dir!)))];
  if (sources.length > 1) {
    throw new Error(
      `--run: the runs were trained on different data (${sources.join("; ")}); ship them to different --out`,
    );
  }
  recoverFolder(out);
  if (exists(join(out, "model.json")) && trainedOn(out) !== sources[0]) {
    throw new Error(
      `${shown} was trained on ${trainedOn(out)}, the runs on ${
        sources[0]
      }: their PublicTest figures do not compare; ship to a new --out (${shown} is kept)`,
    );
  }
  await initBackend();
  const data = options.data ?? await runData(records[0], choices[0].dir!);
  const validation = data.splits.PublicTest;
  // Refused here, before any scoring, when a class has no training images.
  const prior = options.balance ? classPrior(data.splits.Training, data.labels) : undefined;
  const strength = options.balanceStrength ?? 1;
  if (!options.single) choices.push(...await ensembleCandidates(perRun.map((c) => c[0]), validation));
  choices = choices.sort((a, b) => b.publicTest - a.publicTest);
  const top = choices.slice(0, 5).map((c) => `  ${pct(c.publicTest)}  ${c.description}`);
  log(`PublicTest, best ${top.length} of ${choices.length} candidates (all in RECIPE.md):\n${top.join("\n")}`);
  const chosen = choices[0];
  if (exists(join(out, "model.json"))) {
    if (options.balance && !options.force) {
      throw new Error(
        `--balance: ${shown} exists, and a balanced model cannot be weighed against it on PublicTest accuracy; pass --force to replace it, or --out another folder`,
      );
    }
    const current = await publicTestAccuracy(out, validation);
    // A balanced ship (forced) is weighed before its shift: say so, since its shipped figure differs.
    const verdict = `${shown} scores ${pct(current)} on PublicTest; the best candidate ${pct(chosen.publicTest)}${
      prior ? " before balancing" : ""
    }`;
    if (chosen.publicTest <= current && !options.force) {
      throw new Error(`${verdict}: not replaced (pass --force to replace it anyway, or --out another folder)`);
    }
    log(`${verdict}: replacing it${chosen.publicTest <= current ? " (--force)" : ""}`);
  }

  const stage = `${out}.tmp-${Deno.pid}`;
  if (exists(stage)) Deno.removeSync(stage, { recursive: true });
  Deno.mkdirSync(stage, { recursive: true });
  try {
    if (chosen.dir) {
      for (const f of MODEL_FILES) Deno.copyFileSync(join(chosen.dir, f), join(stage, f));
    } else {
      const ensemble = await buildEnsemble(chosen.members!);
      const metadata = makeMetadata(
        ensemble.model,
        ensemble.architecture,
        { members: chosen.members },
        { PublicTest: { accuracy: chosen.publicTest } },
        data.labels,
        (records[0].config.labels ?? "fer2013") as LabelSet,
      );
      writeFiles(stage, { ...(await modelFiles(ensemble.model)), "metadata.json": metadata });
      ensemble.model.dispose();
    }
    let balancedPublicTest: number | undefined;
    if (prior || options.float16) {
      const staged = await loadModel(stage);
      if (prior) balanceClasses(staged.model, prior, strength);
      // The balanced model's own PublicTest, beside the figure the candidates were weighed on.
      const scored = prior && await evaluateSet(staged.model, validation, "PublicTest", data.labels);
      balancedPublicTest = scored ? scored.accuracy : undefined;
      const balanced = scored && {
        ...staged.metadata.metrics,
        PublicTest: {
          ...(staged.metadata.metrics.PublicTest as object),
          accuracy: scored.accuracy,
          macro_f1: scored.macro_f1,
          beforeBalancing: chosen.publicTest,
        },
      };
      writeFiles(stage, {
        ...(await modelFiles(staged.model, { float16: options.float16 })),
        ...(balanced
          ? {
            "metadata.json": {
              ...staged.metadata,
              classPrior: prior,
              ...(strength === 1 ? {} : { balanceStrength: strength }),
              metrics: balanced,
            },
          }
          : {}),
      });
      staged.model.dispose();
    }
    const trainedBy = [...new Set(chosen.dir ? lineage(chosen.dir) : chosen.members!.flatMap(lineage))];
    const trainedByRecords = trainedBy.map((run) => records.find((r) => r.run === run) ?? readRun(run));
    const joined = joinHistories(trainedByRecords);
    await saveChart(learningCurvesSpec(joined.history, joined.title), join(stage, "curves"));

    const { model } = await loadModel(stage);
    const test = data.splits.PrivateTest;
    const plain = await evaluateSet(model, test, "PrivateTest", data.labels, { progressLabel: "PrivateTest" });
    const tta = options.noTta ? undefined : await evaluateSet(model, test, "PrivateTest", data.labels, {
      tta: true,
      progressLabel: "PrivateTest +TTA",
    });
    log(formatReport(plain));
    if (tta) log(`with TTA: ${formatReport(tta)}`);
    await writeReport(stage, plain, { model: shown });
    if (tta) await writeReport(join(stage, "tta"), tta, { model: shown, tta: true });
    const recipe = recipeText(
      trainedByRecords,
      records,
      choices,
      model.countParams(),
      plain,
      tta,
      machineDescription(),
      [
        options.single && " --single",
        options.noTta && " --no-tta",
        options.float16 && " --float16",
        options.balance && " --balance",
        options.balance && strength !== 1 && ` --balance-strength ${strength}`,
        ` --out ${shown}`,
      ].filter(Boolean).join(""),
      prior,
      balancedPublicTest,
      strength,
    );
    model.dispose();
    writeFileAtomic(join(stage, "RECIPE.md"), recipe);
    await stampVersion(stage, trainedBy);
    commitFolder(stage, out);
  } catch (error) {
    Deno.removeSync(stage, { recursive: true });
    throw error;
  }
  log(`shipped ${chosen.description} to ${shown} (RECIPE.md, report.json${options.noTta ? "" : ", tta/report.json"})`);
  log(`next: deno task calibrate --model ${shown}; deno task explore --model ${shown}`);
}

/**
 * What the saved model in `dir` was trained and validated on, in words: its
 * data source (an ensemble's: its first member's), its validation split's
 * seed where the source has no split of its own (an image folder), and its
 * classes. Two models compare on PublicTest only when these agree.
 */
export function trainedOn(dir: string): string {
  const metadata = readJson<ModelMetadata>(join(dir, "metadata.json"));
  const training = metadata.training as { data?: string; members?: string[]; config?: { seed?: number } };
  if (!training.data && training.members?.length) return trainedOn(resolve(PROJECT_ROOT, training.members[0]));
  const data = training.data ? resolve(PROJECT_ROOT, training.data) : undefined;
  const split = data && exists(data) && Deno.statSync(data).isDirectory
    ? `, validation split seed ${training.config?.seed}`
    : "";
  return `${data ? displayPath(data) : "unrecorded data"}${split}, ${metadata.labelSet ?? "fer2013"} labels (${
    metadata.labels.join(", ")
  })`;
}

/** The data that `run` (whose checkpoint is `checkpoint`) was trained and validated on, loaded as it loaded it. */
async function runData(run: RunRecord, checkpoint: string): Promise<FerData> {
  const training = readJson<ModelMetadata>(join(checkpoint, "metadata.json")).training as { data?: string };
  const config = run.config as Partial<TrainConfig>;
  return await loadDataset(trainedDataPath(training.data), {
    labels: config.labels,
    labelMode: config.labelMode,
    seed: config.seed,
  });
}

/**
 * Write the model's version (the ship date and the runs that trained it) and
 * its weights' SHA-256 into `dir`'s metadata.json, which the package's
 * users read (`EmotionRecognizer.version`) and `loadModel` checks.
 */
export async function stampVersion(dir: string, runs: string[]): Promise<void> {
  const metadata = readJson<ModelMetadata>(join(dir, "metadata.json"));
  const version = `${new Date().toISOString().slice(0, 10)} ${runs.map((run) => basename(run)).join("+")}`;
  const weightsSha256 = await sha256Hex(Deno.readFileSync(join(dir, "weights.bin")));
  writeFileAtomic(join(dir, "metadata.json"), JSON.stringify({ ...metadata, version, weightsSha256 }, null, 2) + "\n");
}

/** A saved model's accuracy on `set`. */
async function publicTestAccuracy(dir: string, set: FaceSet): Promise<number> {
  const { model } = await loadModel(dir);
  const probabilities = await predictSet(model, set, { progressLabel: `PublicTest ${dir}` });
  model.dispose();
  return accuracy(set.labels, argmaxRows(probabilities, probabilities.length / set.n));
}

/** A fraction as a percentage with two decimals. */
function pct(value: number): string {
  return `${(100 * value).toFixed(2)}%`;
}
