import { assert } from "../assert.ts";
import { type FlagTable, helpText, parseFlags } from "../../lib/util/flags.ts";
import { parseTrainArgs, TRAIN_FLAGS } from "../../lib/train/config.ts";
import { PREDICT_FLAGS } from "../../lib/cli/predict.ts";
import { SERVE_FLAGS } from "../../lib/cli/serve.ts";
import { projectPath } from "../../lib/util/paths.ts";

const COMMAND = { name: "demo", summary: "A demo." };
const TABLE = {
  epochs: { type: "integer", min: 1, default: 60, help: "epochs" },
  lr: { type: "number", min: 0, help: "rate" },
  mode: { type: "string", choices: ["a", "b"], default: "a", help: "mode" },
  quiet: { type: "boolean", help: "say less" },
  run: { type: "string", multiple: true, help: "a run" },
} as const satisfies FlagTable;

Deno.test("flags parse with defaults, --name=value, booleans and repeats; `given` holds what was typed", () => {
  const { values, given } = parseFlags(COMMAND, TABLE, ["--lr=0.5", "--quiet", "--run", "x", "--run", "y"]);
  assert.deepEqual(values, { epochs: 60, lr: 0.5, mode: "a", quiet: true, run: ["x", "y"] });
  assert.deepEqual([...given].sort(), ["lr", "quiet", "run"]);
});

Deno.test("bad flag values and unknown flags are refused with one line naming the flag", () => {
  const refuse = (args: string[], message: RegExp) => assert.throws(() => parseFlags(COMMAND, TABLE, args), message);
  refuse(["--epochz", "3"], /^Error: unknown flag --epochz; did you mean --epochs\?/);
  refuse(["--epochs", "0"], /--epochs 0: must be at least 1/);
  refuse(["--epochs", "2.5"], /--epochs 2.5: expected a whole number/);
  refuse(["--lr", "abc"], /--lr abc: expected a number/);
  refuse(["--mode", "c"], /--mode c: choose one of a, b/);
  refuse(["--epochs"], /--epochs needs a value/);
  refuse(["stray"], /unexpected argument stray/);
  assert.throws(
    () => parseFlags({ name: "predict", summary: "" }, PREDICT_FLAGS, ["--min-face", "abc"]),
    /--min-face abc/,
  );
  assert.throws(() => parseFlags({ name: "serve", summary: "" }, SERVE_FLAGS, ["--port", "abc"]), /--port abc/);
  for (const [flag, value] of [["--subset", "0"], ["--epochs", "0"], ["--batch-size", "0"], ["--workers", "0"]]) {
    assert.throws(() => parseTrainArgs([flag, value]), new RegExp(`${flag} ${value}: must be at least`));
  }
});

Deno.test("the help text lists every flag with its help and default", () => {
  const text = helpText(COMMAND, TABLE);
  for (const name of Object.keys(TABLE)) assert.match(text, new RegExp(`--${name}`));
  assert.match(text, /--epochs N\s+epochs \(default 60\)/);
  assert.match(text, /--mode a\|b/);
});

Deno.test("deno task train --help lists every train flag, and the README's command table names each", async () => {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", projectPath("lib", "cli", "train.ts"), "--help"],
  }).output();
  assert.equal(code, 0);
  const help = new TextDecoder().decode(stdout);
  const readme = Deno.readTextFileSync(projectPath("README.md"));
  for (const name of Object.keys(TRAIN_FLAGS)) {
    assert.match(help, new RegExp(`--${name}\\b`), `help lacks --${name}`);
    assert.ok(readme.includes(`--${name}`), `README lacks --${name}`);
  }
});
