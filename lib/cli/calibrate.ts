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
import { calibrateModel } from "../eval/calibration.ts";
import { DATA_FLAG, type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";

export const CALIBRATE_FLAGS = {
  model: MODEL_FLAG,
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
  const modelDir = defaultModelDir(values.model);
  await initBackend();
  const data = await loadDataset(resolveDataPath(values.data), { onProgress: console.error });
  const { temperature, PrivateTest } = await calibrateModel(modelDir, data);
  console.log(
    `temperature ${temperature.toFixed(3)} (fitted on PublicTest); PrivateTest ECE ` +
      `${(100 * PrivateTest.eceBefore).toFixed(2)}% -> ${(100 * PrivateTest.eceAfter).toFixed(2)}%; ` +
      `wrote ${join(modelDir, "metadata.json")} and ${join(modelDir, "calibration")}/`,
  );
}

if (import.meta.main) await runCommand(main);
