/**
 * End to end on the real dataset: a short training run on a 2,000-image
 * stratified subset of FER2013 Training, its run folder, --resume, weight
 * averaging, and the evaluate command on PrivateTest.
 */
import { assert } from "./assert.ts";
import { join } from "node:path";
import { DEFAULT_CONFIG, historyCsv, parseHistoryCsv, parseTrainArgs, RECIPES, trainModel } from "../lib/train.ts";
import { candidates, trainCommand } from "../lib/ship.ts";
import { snapshotEpochs } from "../lib/average.ts";
import { classCounts, loadDataset, resolveDataPath } from "../lib/data.ts";

const RUN_FILES = [
  "config.json",
  "history.csv",
  "best/model.json",
  "best/weights.bin",
  "best/metadata.json",
  "last/model.json",
  "last/optimizer.bin",
  "last/train_state.json",
  "curves.png",
  "curves.svg",
  "report.json",
  "confusion_matrix.png",
  "confusion_matrix.svg",
];

Deno.test({
  name:
    "real training on 2,000 FER2013 images: loss falls, PublicTest accuracy beats the majority class; resume; evaluate",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const data = await loadDataset(resolveDataPath()); // the shared FER2013 (fails with directions when absent)
    const out = join(Deno.makeTempDirSync(), "run");
    const config = {
      ...DEFAULT_CONFIG,
      subset: 2000,
      epochs: 3,
      batchSize: 32,
      lr: 0.001,
      augment: false,
      averageFrom: 2,
      out,
    };
    const result = await trainModel(config, false, { data, log: () => {} });
    const h = result.history;
    assert.equal(h.length, 3);
    assert.ok(h[2].loss < h[0].loss, `training loss should fall: ${h.map((e) => e.loss.toFixed(3))}`);
    const counts = classCounts(data.splits.PublicTest.labels);
    const majority = Math.max(...counts) / data.splits.PublicTest.n;
    assert.ok(
      result.report.accuracy > majority,
      `PublicTest accuracy ${result.report.accuracy.toFixed(4)} should beat the majority-class rate ${
        majority.toFixed(4)
      }`,
    );
    for (const f of RUN_FILES) assert.ok(Deno.statSync(join(out, f)).size > 0, `${f} missing or empty`);
    const report = JSON.parse(Deno.readTextFileSync(join(out, "report.json")));
    assert.equal(report.split, "PublicTest");
    assert.equal(report.confusion_matrix.flat().reduce((a: number, b: number) => a + b, 0), 3589);

    // --resume continues after the last finished epoch and keeps the history.
    const resumed = await trainModel({ ...config, epochs: 4 }, true, { data, log: () => {} });
    assert.equal(resumed.history.length, 4);
    assert.deepEqual(resumed.history.slice(0, 3), h);
    assert.equal(parseHistoryCsv(Deno.readTextFileSync(join(out, "history.csv"))).length, 4);

    // --average-from 2 kept epochs 2-4 and ended with their mean, scored on PublicTest and ranked beside best/.
    assert.deepEqual(snapshotEpochs(out), [2, 3, 4]);
    const averaged = JSON.parse(Deno.readTextFileSync(join(out, "averaged", "metadata.json")));
    assert.deepEqual(averaged.metrics.PublicTest.epochs, [2, 3, 4]);
    assert.ok(averaged.metrics.PublicTest.accuracy > majority, "the averaged weights should beat the majority class");
    assert.deepEqual(candidates(out).map((c) => c.name).sort(), ["averaged", "best"]);
    await assert.rejects(
      () => trainModel(config, false, { data, log: () => {} }),
      /already holds a run; pass --resume/,
    );

    // The evaluate command on the untouched test split.
    const evalDir = join(Deno.makeTempDirSync(), "eval");
    const cmd = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "lib/evaluate.ts", "--model", join(out, "best"), "--split", "PrivateTest", "--out", evalDir],
      stdout: "piped",
      stderr: "piped",
    });
    const { code, stdout, stderr } = await cmd.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.match(new TextDecoder().decode(stdout), /accuracy \d+\.\d+%\s+macro-F1/);
    const privateReport = JSON.parse(Deno.readTextFileSync(join(evalDir, "report.json")));
    assert.equal(privateReport.split, "PrivateTest");
    assert.equal(privateReport.n, 3589);
    assert.equal(privateReport.confusion_matrix.flat().reduce((a: number, b: number) => a + b, 0), 3589);
    assert.ok(Deno.statSync(join(evalDir, "confusion_matrix.png")).size > 0);
  },
});

Deno.test("train flags: defaults, validation and resume needing --out", () => {
  const { config } = parseTrainArgs(["--subset", "2000", "--epochs", "2", "--out", "/tmp/x"]);
  assert.equal(config.subset, 2000);
  assert.equal(config.epochs, 2);
  assert.equal(config.arch, "compact");
  assert.throws(() => parseTrainArgs(["--epochs", "two"]), /--epochs two: expected a whole number/);
  assert.throws(() => parseTrainArgs(["--resume"]), /--resume needs --out/);
  assert.throws(() => parseTrainArgs(["--batch-size", "1"]), /at least 2/);
});

Deno.test("history.csv round-trips", () => {
  const history = [{ epoch: 1, loss: 1.5, accuracy: 0.3, val_loss: 1.6, val_accuracy: 0.28, lr: 0.001, seconds: 12.5 }];
  assert.deepEqual(parseHistoryCsv(historyCsv(history)), history);
});

Deno.test("the command RECIPE.md prints reproduces the run's settings", () => {
  const config = { ...DEFAULT_CONFIG, ...RECIPES["compact-fer"], out: "outputs/runs/x" };
  const args = trainCommand(config, "outputs/runs/x").split(" ").slice(3); // after "deno task train"
  const { config: parsed } = parseTrainArgs(args);
  for (
    const key of [
      "arch",
      "epochs",
      "batchSize",
      "lr",
      "labelSmoothing",
      "earlyStoppingPatience",
      "lrPatience",
      "seed",
      "averageFrom",
    ]
  ) {
    assert.equal(parsed[key as keyof typeof parsed], config[key as keyof typeof config], key);
  }
});
