/**
 * `deno task ship --run RUN [--run RUN...] [--out outputs/model]`: choose the
 * best of the runs' checkpoints and ensembles on PublicTest, ship it, and
 * report it once on PrivateTest (see lib/eval/ship.ts).
 */
import { shipModel } from "../eval/ship.ts";
import { type FlagTable, parseFlags } from "./flags.ts";
import { projectPath } from "../util/paths.ts";
import { runCommand } from "./run.ts";

export const SHIP_FLAGS = {
  run: { type: "string", multiple: true, value: "DIR", help: "a run folder whose checkpoints are candidates" },
  out: { type: "string", value: "DIR", default: projectPath("outputs", "model"), help: "where the model goes" },
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "ship", summary: "Ship the best checkpoint or ensemble of some runs, chosen on PublicTest." },
    SHIP_FLAGS,
    args,
  );
  if (!values.run.length) throw new Error("--run: give at least one run folder (see --help)");
  await shipModel(values.run, values.out);
}

if (import.meta.main) await runCommand(main);
