/**
 * `deno task calibrate [--model outputs/model]`: fit temperature scaling on
 * PublicTest, store it in the model's metadata.json (`"temperature": T`, which
 * predict, recognizeEmotions and the page apply), and report the expected
 * calibration error on PrivateTest before and after, with reliability
 * diagrams, in MODEL/calibration/.
 */
import { join } from "node:path";
import { initBackend } from "../backend/backend.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { NUM_CLASSES } from "../data/labels.ts";
import { predictSet } from "../eval/evaluate.ts";
import { applyTemperature, expectedCalibrationError, fitTemperature, reliabilityBins } from "../eval/calibration.ts";
import { loadModel } from "../model/model_io.ts";
import { readJson, writeTextFileAtomic } from "../util/files.ts";
import { reliabilitySpec, saveChart } from "../util/charts.ts";
import { projectPath } from "../util/paths.ts";
import { DATA_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";

export const CALIBRATE_FLAGS = {
  model: {
    type: "string",
    value: "DIR",
    default: projectPath("outputs", "model"),
    help: "the model folder to calibrate",
  },
  data: DATA_FLAG,
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    {
      name: "calibrate",
      summary: "Fit temperature scaling on PublicTest; report ECE on PrivateTest before and after.",
    },
    CALIBRATE_FLAGS,
    args,
  );
  await initBackend();
  const { model } = await loadModel(values.model);
  const data = await loadDataset(resolveDataPath(values.data), { onProgress: console.error });
  const [publicTest, privateTest] = [data.splits.PublicTest, data.splits.PrivateTest];
  const fitOn = await predictSet(model, publicTest, { progressLabel: "PublicTest" });
  const temperature = fitTemperature(fitOn, publicTest.labels, NUM_CLASSES);
  const raw = await predictSet(model, privateTest, { progressLabel: "PrivateTest" });
  const scaled = applyTemperature(raw, NUM_CLASSES, temperature);
  const before = expectedCalibrationError(raw, privateTest.labels, NUM_CLASSES);
  const after = expectedCalibrationError(scaled, privateTest.labels, NUM_CLASSES);
  const metadataPath = join(values.model, "metadata.json");
  const metadata = readJson<Record<string, unknown>>(metadataPath);
  writeTextFileAtomic(metadataPath, JSON.stringify({ ...metadata, temperature }, null, 2) + "\n");
  const out = join(values.model, "calibration");
  Deno.mkdirSync(out, { recursive: true });
  const result = { temperature, fittedOn: "PublicTest", PrivateTest: { eceBefore: before, eceAfter: after } };
  writeTextFileAtomic(join(out, "calibration.json"), JSON.stringify(result, null, 2) + "\n");
  await saveChart(
    reliabilitySpec({
      "before (T = 1)": reliabilityBins(raw, privateTest.labels, NUM_CLASSES),
      [`after (T = ${temperature.toFixed(2)})`]: reliabilityBins(scaled, privateTest.labels, NUM_CLASSES),
    }),
    join(out, "reliability"),
  );
  console.log(
    `temperature ${temperature.toFixed(3)} (fitted on PublicTest); PrivateTest ECE ${(100 * before).toFixed(2)}% -> ` +
      `${(100 * after).toFixed(2)}%; wrote ${metadataPath} and ${out}/`,
  );
}

if (import.meta.main) await runCommand(main);
