/**
 * `deno task ship --run RUN [--run RUN...] [--out outputs/model]`: choose the
 * best of the runs' checkpoints and ensembles on PublicTest, ship it, and
 * report it once on PrivateTest (see lib/ship/ship.ts).
 */
import { shipModel } from "../ship/ship.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { projectPath } from "../util/paths.ts";
import { runCommand } from "./run.ts";

export const SHIP_FLAGS = {
  run: { type: "string", multiple: true, value: "DIR", help: "a run folder whose checkpoints are candidates" },
  out: { type: "string", value: "DIR", default: projectPath("outputs", "model"), help: "where the model goes" },
  single: { type: "boolean", help: "weigh the runs' own checkpoints only, no ensembles (a one-network model)" },
  "no-tta": { type: "boolean", help: "leave out the PrivateTest evaluation with TTA (faster; plain figures only)" },
  float16: {
    type: "boolean",
    help: "store the weights as half-precision floats: half the download (scored as stored)",
  },
  balance: {
    type: "boolean",
    help:
      "shift the output biases so every class is scored as if equally common in training (better on faces from elsewhere, lower on FER2013); a model at --out is replaced only with --force",
  },
  "balance-strength": {
    type: "number",
    min: -2,
    max: 2,
    value: "S",
    help: "with --balance: the shift's strength (1: classes as if equally common; 0.5: part way; below 0: toward the " +
      "training prior, for a net trained with --logit-adjust); choose it on PublicTest and CK+48 (evaluate --prior-shift)",
  },
  force: {
    type: "boolean",
    help: "replace the model at --out even when it scores as high or higher on PublicTest",
  },
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "ship", summary: "Ship the best checkpoint or ensemble of some runs, chosen on PublicTest." },
    SHIP_FLAGS,
    args,
  );
  if (!values.run.length) throw new Error("--run: give at least one run folder (see --help)");
  if (values["balance-strength"] !== undefined && !values.balance) {
    throw new Error("--balance-strength goes with --balance (see --help)");
  }
  await shipModel(values.run, values.out, {
    force: values.force,
    single: values.single,
    noTta: values["no-tta"],
    float16: values.float16,
    balance: values.balance,
    balanceStrength: values["balance-strength"],
  });
}

if (import.meta.main) await runCommand(main);
