/**
 * `deno task train`: train (or resume) a model into a run folder. The flags
 * are declared in lib/train/config.ts (`deno task train --help` lists them).
 *
 * Run folder (`--out`, default outputs/runs/<recipe or arch-time>):
 *   config.json  history.csv  best/  last/  curves.png|svg  train.log (when redirected)
 *   snapshots/epoch-NNN/  averaged/   (with --average-from: per-epoch weights, their mean)
 *   report.json  confusion_matrix.png|svg   (PublicTest, best weights)
 */
import { parseTrainArgs } from "../train/config.ts";
import { trainModel } from "../train/train.ts";
import { runCommand } from "./run.ts";

async function main(args: string[]) {
  const { config, resume } = parseTrainArgs(args);
  const result = await trainModel(config, resume);
  console.log(
    `done: best epoch ${result.bestEpoch}, PublicTest accuracy ${(100 * result.report.accuracy).toFixed(2)}%; ` +
      `run folder ${config.out}`,
  );
}

if (import.meta.main) await runCommand(main);
