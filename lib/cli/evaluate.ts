/**
 * `deno task evaluate --model DIR [--split PrivateTest] [--labels ferplus] [--data PATH] [--detect]`:
 * a saved model's report on a split of its dataset (its own labels, or
 * FER+'s majority), or on a face folder (`DIR/<class>/*`, CK+48 say), with
 * its charts; images of classes the model lacks are left out and named.
 */
import { basename, join, resolve } from "node:path";
import { type BackendChoice, initBackend } from "../backend/backend.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { type Split, SPLITS } from "../data/labels.ts";
import { evaluateSet, writeReport } from "../eval/evaluate.ts";
import { chanceWarning, formatReport, type Report } from "../eval/metrics.ts";
import { balanceClasses, trainingPrior } from "../eval/calibration.ts";
import { type LoadedModel, loadModel } from "../model/model_io.ts";
import { type FaceSet, type LabelSet, relabel } from "../data/dataset.ts";
import { type FaceFolder, hasSplitFolders, loadFaceFolder } from "../data/folders.ts";
import { readImageFile } from "../data/images.ts";
import { DETECTOR_FLAG, type DetectorChoice, findFaces } from "../vision/faces.ts";
import { BACKEND_FLAG, DATA_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";

export const EVALUATE_FLAGS = {
  model: MODEL_FLAG,
  split: { type: "string", choices: SPLITS, default: "PrivateTest", help: "the split to evaluate" },
  out: {
    type: "string",
    value: "DIR",
    help: "where the report goes (default MODEL/eval-SPLIT[-tta], or MODEL/eval-FOLDER[-detect-DETECTOR])",
  },
  data: {
    ...DATA_FLAG,
    help: `${DATA_FLAG.help}; or a face folder DIR/<class>/* (CK+48, say: no split folders), each image one face`,
  },
  labels: {
    type: "string",
    choices: ["fer2013", "ferplus"],
    help: "the split's labels (default: those the model learnt); ferplus scores a 7-class model on FER+'s majority",
  },
  detect: {
    type: "boolean",
    help: "with a face folder: find each face with the face pipeline instead of taking the whole image",
  },
  detector: { ...DETECTOR_FLAG, help: `with --detect: the ${DETECTOR_FLAG.help}` },
  "leave-out": {
    type: "string",
    value: "CLASS,...",
    help:
      "with a face folder: leave these classes out (contempt, to score an 8-class model on CK+48's six FER2013 classes)",
  },
  tta: { type: "boolean", help: "average each image's prediction over 10 views" },
  "prior-shift": {
    type: "number",
    min: -2,
    max: 2,
    value: "S",
    help: "score the model with its output biases shifted by -S x log of its training class shares, as " +
      "ship --balance --balance-strength S would ship it (to choose S on PublicTest and CK+48); the report goes to " +
      "MODEL/eval-NAME-shiftS",
  },
  "batch-size": { type: "integer", min: 1, default: 256, help: "images per prediction batch" },
  "skip-bad-rows": { type: "boolean", help: "leave malformed CSV rows out instead of stopping" },
  backend: BACKEND_FLAG,
} as const satisfies FlagTable;

/**
 * The images to evaluate on: a split of the model's dataset (with its
 * labels: FER2013's, or FER+'s majority for a FER+ model), or a face folder
 * read against the model's classes (classes it lacks are left out and named).
 */
async function evaluationSet(
  loaded: LoadedModel,
  values: {
    data?: string;
    split: string;
    detect: boolean;
    detector: string;
    "skip-bad-rows": boolean;
    labels?: string;
    "leave-out"?: string;
  },
): Promise<
  { set: FaceSet; name: string; source: string; omitted?: FaceFolder["omitted"]; faceless?: FaceFolder["faceless"] }
> {
  const { labels, labelSet = "fer2013" } = loaded.metadata;
  if (values.data && Deno.statSync(values.data).isDirectory && !hasSplitFolders(values.data)) {
    const detector = values.detector as DetectorChoice;
    const readFace = values.detect ? (path: string) => detectedFace(loaded, path, detector) : undefined;
    const leaveOut = values["leave-out"]?.split(",").map((name) => name.trim()).filter(Boolean);
    const folder = await loadFaceFolder(values.data, labels, readFace, console.error, leaveOut);
    for (const bad of folder.skipped) console.error(`skipped: ${bad.reason}`);
    // A detected face's report is named apart from the whole images' (ckplus48-detect-auto beside ckplus48).
    const name = basename(resolve(values.data)) + (values.detect ? `-detect-${detector}` : "");
    return { set: folder.set, name, source: folder.source, omitted: folder.omitted, faceless: folder.faceless };
  }
  if (values.detect) throw new Error("--detect: give --data a face folder (DIR/<class>/*)");
  if (values["leave-out"]) throw new Error("--leave-out: give --data a face folder (DIR/<class>/*)");
  const data = await loadDataset(resolveDataPath(values.data), {
    skipBadRows: values["skip-bad-rows"],
    onProgress: console.error,
    labels: (values.labels as LabelSet | undefined) ?? labelSet,
  });
  const { set, omitted } = relabel(data.splits[values.split as Split], data.labels, labels);
  if (set.n === 0) throw new Error(`${data.source} has no ${values.split} images of the model's classes`);
  const name = values.labels && values.labels !== labelSet ? `${values.split}-${values.labels}` : values.split;
  return { set, name, source: data.source, omitted: omitted.length ? omitted : undefined };
}

/** The face the face pipeline is surest of in a photo, as the model's gray input; undefined when it finds none. */
async function detectedFace(
  loaded: LoadedModel,
  path: string,
  detector: DetectorChoice,
): Promise<Uint8Array | undefined> {
  const [face] = await findFaces((await readImageFile(path)).image, loaded.metadata.inputSize, { detector });
  return face?.crop.data;
}

/**
 * Evaluate as `deno task evaluate ARGS` does: the report printed (`log`)
 * and written with its charts; returns it and the folder it went to. The
 * package's `evaluate` runs this.
 */
export async function runEvaluate(
  args: string[],
  log: (line: string) => void = console.log,
  warn: (line: string) => void = console.error,
): Promise<{ report: Report; out: string }> {
  const { values } = parseFlags(
    {
      name: "evaluate",
      summary: "Evaluate a saved model on a split or a face folder: accuracy, macro-F1, confusion matrix.",
    },
    EVALUATE_FLAGS,
    args,
  );
  const modelDir = defaultModelDir(values.model);
  const active = await initBackend(values.backend as BackendChoice);
  warn(`backend: ${active.backend}${active.adapter ? ` on ${active.adapter}` : ""}`);
  const loaded = await loadModel(modelDir, { fold: true });
  const shift = values["prior-shift"];
  try {
    if (shift !== undefined) balanceClasses(loaded.model, await trainingPrior(loaded.metadata), shift);
    const { set, name, source, omitted, faceless = [] } = await evaluationSet(loaded, values);
    for (const f of faceless) warn(`no face found: ${f.path} (counted as wrong)`);
    const unanswered = loaded.metadata.labels.map((_, c) => faceless.filter((f) => f.label === c).length);
    for (const o of omitted ?? []) {
      warn(`left out: ${o.name} (${o.images} images): ${o.why ?? "the model has no such class"}`);
    }
    const report = await evaluateSet(loaded.model, set, name, loaded.metadata.labels, {
      batchSize: values["batch-size"],
      tta: values.tta,
      progressLabel: `evaluate ${name}${values.tta ? " +TTA" : ""}`,
      unanswered,
    });
    log(formatReport(report));
    const warning = chanceWarning(report);
    if (warning) warn(warning);
    const suffix = `${values.tta ? "-tta" : ""}${shift === undefined ? "" : `-shift${shift}`}`;
    const out = values.out ?? join(modelDir, `eval-${name}${suffix}`);
    await writeReport(out, report, {
      model: modelDir,
      data: source,
      architecture: loaded.metadata.architecture,
      tta: values.tta,
      ...(shift === undefined ? {} : { priorShift: shift }),
      detect: values.detect,
      ...(omitted ? { omitted } : {}),
      ...(values.detect ? { no_face: faceless.map((f) => f.path) } : {}),
      device: active,
    });
    log(`wrote ${join(out, "report.json")} and confusion_matrix.png/.svg`);
    return { report, out };
  } finally {
    loaded.model.dispose();
  }
}

async function main(args: string[]) {
  await runEvaluate(args);
}

if (import.meta.main) await runCommand(main);
