/**
 * `deno task train`: train (or resume) a model into a run folder (`--out`,
 * default outputs/runs/<recipe or arch-time>; its layout is
 * lib/train/run_folder.ts's). The flags are declared in
 * lib/train/config.ts (`deno task train --help` lists them).
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
