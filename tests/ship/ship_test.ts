/** RECIPE.md as `deno task ship` writes it, from made-up runs and reports; shipping over a model folder. */
import { assert } from "../assert.ts";
import sharp from "sharp";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { join } from "node:path";
import { type Candidate, recipeText, type RunRecord, shipModel } from "../../lib/ship/ship.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { loadModel, makeMetadata, type ModelMetadata, saveModel } from "../../lib/model/model_io.ts";
import { readJson } from "../../lib/util/files.ts";
import type { FerData } from "../../lib/data/dataset.ts";
import { runPaths } from "../../lib/train/run_folder.ts";
import { exists } from "../../lib/util/paths.ts";
import { DEFAULT_CONFIG, RECIPES } from "../../lib/train/config.ts";
import { bestEpoch, type EpochRecord, historyCsv } from "../../lib/train/history.ts";
import type { Report } from "../../lib/eval/metrics.ts";

const epoch = (n: number, val_accuracy: number): EpochRecord => ({
  epoch: n,
  loss: 1,
  accuracy: 0.5,
  val_loss: 1,
  val_accuracy,
  lr: 1e-3,
  seconds: 100,
});
const run = (name: string, seed: number, accuracies: number[]): RunRecord => ({
  run: `outputs/runs/${name}`,
  config: { ...DEFAULT_CONFIG, ...RECIPES.medium, recipe: "medium", seed },
  history: accuracies.map((a, i) => epoch(i + 1, a)),
  seconds: 3600 * accuracies.length,
});
const report = (accuracy: number, macro_f1: number): Report => ({
  split: "PrivateTest",
  n: 3589,
  accuracy,
  macro_f1,
  per_class: {},
  confusion_matrix: [],
  labels: [],
});

Deno.test("the best epoch is the one with the highest PublicTest accuracy, the first of equals", () => {
  assert.equal(bestEpoch([epoch(1, 0.5), epoch(2, 0.6), epoch(3, 0.6), epoch(4, 0.55)]).epoch, 2);
});

Deno.test("RECIPE.md counts the candidates, ranks them all, and gives every weighed run's command", () => {
  const a = run("a", 11, [0.5, 0.6]);
  const b = run("b", 12, [0.55, 0.58]);
  const other = run("other", 13, [0.4, 0.62, 0.61]);
  const choices: Candidate[] = [
    { name: "ensemble", members: ["x", "y"], publicTest: 0.65, description: "mean of a and b" },
    { name: "best", dir: "outputs/runs/other/best", publicTest: 0.62, description: "other: epoch 2" },
    { name: "best", dir: "outputs/runs/a/best", publicTest: 0.6, description: "a: epoch 2" },
  ];
  const text = recipeText(
    [a, b],
    [a, b, other],
    choices,
    1234567,
    report(0.7, 0.68),
    report(0.71, 0.69),
    "2-core Test CPU, 24 GiB",
  );
  assert.ok(text.includes("| shipped | mean of a and b (PublicTest 65.00%) |"), "the shipped line");
  assert.ok(
    text.includes("| chosen on PublicTest among | 3 candidates: each run's checkpoints and every ensemble"),
    "the count, and what was weighed",
  );
  assert.ok(
    text.includes("| 1 | 65.00% | mean of a and b |\n| 2 | 62.00% | other: epoch 2 |\n| 3 | 60.00% | a: epoch 2 |"),
  );
  assert.ok(text.includes("| parameters | 1,234,567 |"));
  assert.ok(text.includes("| machine (of this ship command) | 2-core Test CPU, 24 GiB |"), "the machine, as measured");
  assert.ok(text.includes("PrivateTest (evaluated once, 3,589 images)"), "the image count, from the report");
  assert.ok(text.includes("deno task train --recipe medium --seed 12 --out outputs/runs/b"), "a member's command");
  assert.ok(
    text.includes(
      "| outputs/runs/other | `deno task train --recipe medium --seed 13 --out outputs/runs/other` | 62.00% (epoch 2) | 3.00 h |",
    ),
    "the other run's line",
  );
  assert.ok(!text.includes("| outputs/runs/a | `"), "a member is not among the other runs");
  assert.ok(
    text.includes("| plain | 70.00% | 68.00% |") && text.includes("| TTA (mirror x 5 shifts) | 71.00% | 69.00% |"),
  );
  assert.ok(text.includes("--run outputs/runs/a --run outputs/runs/b --run outputs/runs/other"), "the ship command");
});

/** A run folder as `train` leaves it, holding an untrained compact net that claims `publicTest` on PublicTest. */
async function fakeRun(publicTest: number, training: Record<string, unknown> = {}): Promise<string> {
  await initBackend();
  const run = Deno.makeTempDirSync();
  const paths = runPaths(run);
  Deno.writeTextFileSync(paths.config, JSON.stringify({ ...DEFAULT_CONFIG, out: run }));
  Deno.writeTextFileSync(paths.history, historyCsv([epoch(1, publicTest)]));
  const model = buildModel("compact");
  await saveModel(
    paths.best,
    model,
    makeMetadata(model, "compact", training, { PublicTest: { accuracy: publicTest, epoch: 1 } }),
  );
  model.dispose();
  return run;
}

/** Random faces in all three splits. */
function smallData(): FerData {
  const set = (n: number) => ({
    n,
    pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (i * 7919) % 256),
    labels: Uint8Array.from({ length: n }, (_, i) => i % 7),
  });
  return {
    source: "test",
    labels: EMOTIONS,
    splits: { Training: set(14), PublicTest: set(42), PrivateTest: set(28) },
    skipped: [],
  };
}

Deno.test({
  name: "ship never replaces a model that scores as high on PublicTest unless forced, and swaps in a whole folder",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const data = smallData(), log = () => {};
    const out = join(Deno.makeTempDirSync(), "model");
    const worse = await fakeRun(0);
    await shipModel([worse], out, { data, log });
    assert.ok(exists(join(out, "tta", "report.json")), "PrivateTest with TTA beside the plain report");
    Deno.writeTextFileSync(join(out, "explorer.json"), "{}"); // derived from the shipped model
    const before = Deno.readTextFileSync(join(out, "RECIPE.md"));
    await assert.rejects(
      () => shipModel([worse], out, { data, log }),
      /model scores .*% on PublicTest; the best candidate 0\.00%: not replaced \(pass --force/,
    );
    assert.equal(Deno.readTextFileSync(join(out, "RECIPE.md")), before);
    assert.ok(exists(join(out, "explorer.json")), "the kept model keeps what was derived from it");

    const broken = await fakeRun(1);
    Deno.removeSync(join(runPaths(broken).best, "weights.bin"));
    await assert.rejects(() => shipModel([broken], out, { data, log }));
    assert.equal(Deno.readTextFileSync(join(out, "RECIPE.md")), before, "a ship that fails half-way changes nothing");
    assert.deepEqual([...Deno.readDirSync(join(out, ".."))].map((e) => e.name), ["model"], "no staging left");

    // A run on other data (an image folder, validated on its own split) is not weighed against the model there.
    const folder = Deno.makeTempDirSync();
    const elsewhere = await fakeRun(1, { data: folder, config: { seed: 3 } });
    for (const force of [false, true]) {
      await assert.rejects(
        () => shipModel([elsewhere], out, { data, log, force }),
        /model was trained on unrecorded data, fer2013 labels .*, the runs on .*, validation split seed 3, .*: their PublicTest figures do not compare; ship to a new --out/,
      );
    }
    await assert.rejects(
      () => shipModel([worse, elsewhere], join(folder, "new"), { data, log }),
      /--run: the runs were trained on different data/,
    );
    await assert.rejects(() => shipModel([worse, `${worse}/`], out, { data, log }), /--run .*: given twice/);
    assert.equal(Deno.readTextFileSync(join(out, "RECIPE.md")), before, "refused ships change nothing");

    const better = await fakeRun(1);
    await shipModel([better], out, { data, log });
    assert.match(Deno.readTextFileSync(join(out, "RECIPE.md")), new RegExp(`${runPaths(better).best}: epoch 1`));
    assert.ok(!exists(join(out, "explorer.json")), "what was derived from the old model goes with it");
    await shipModel([worse], out, { data, log, force: true });
    assert.match(Deno.readTextFileSync(join(out, "RECIPE.md")), new RegExp(`${runPaths(worse).best}: epoch 1`));

    const single = join(Deno.makeTempDirSync(), "single");
    await shipModel([worse, better], single, { data, log, single: true });
    const recipe = Deno.readTextFileSync(join(single, "RECIPE.md"));
    assert.ok(
      recipe.includes("| chosen on PublicTest among | 2 candidates: each run's own checkpoints (no ensembles)"),
      "--single weighs no ensembles, and says so",
    );
    assert.match(recipe, new RegExp(`\\| shipped \\| ${runPaths(better).best}: epoch 1`));

    const skewed = { ...data, splits: { ...data.splits, Training: { ...data.splits.Training } } };
    skewed.splits.Training.labels = Uint8Array.from([3, 3, 3, 3, 3, 3, 3, 3, 0, 1, 2, 4, 5, 6]); // 8 happy of 14
    await assert.rejects(
      () => shipModel([better], single, { data: skewed, log, single: true, balance: true }),
      /--balance: .*single exists, .* pass --force/,
    );
    const lines: string[] = [];
    await shipModel([better], single, {
      data: skewed,
      log: (l) => lines.push(l),
      single: true,
      balance: true,
      force: true,
    });
    assert.match(lines.join("\n"), /PublicTest, best 1 of 1 candidates/);
    assert.match(
      lines.join("\n"),
      /single scores .*; the best candidate .*% before balancing: replacing it\n/,
    );
    const balanced = readJson<ModelMetadata>(join(single, "metadata.json"));
    assert.deepEqual(balanced.classPrior?.map((p) => Math.round(p * 14)), [1, 1, 1, 8, 1, 1, 1]);
    assert.match(
      Deno.readTextFileSync(join(single, "RECIPE.md")),
      /\| classes balanced \(--balance\) \| .* happy 57\.14%/,
    );
  },
});

Deno.test({
  name: "ship scores and balances a run trained on an image folder by that folder, not by FER2013",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = Deno.makeTempDirSync();
    const shares = { train: [1, 1, 1, 5, 1, 1, 1], val: [1, 1, 1, 1, 1, 1, 1] };
    for (const [split, counts] of Object.entries(shares)) {
      for (const [c, count] of counts.entries()) {
        for (let i = 0; i < count; i++) await png(join(root, split, EMOTIONS[c], `${i}.png`), 20 * c + i);
      }
    }
    const run = await fakeRun(0.5, { data: root, config: { seed: 1 } });
    const out = join(Deno.makeTempDirSync(), "model");
    await shipModel([run], out, { log: () => {}, single: true, noTta: true, balance: true });
    const metadata = readJson<ModelMetadata>(join(out, "metadata.json"));
    assert.deepEqual(metadata.classPrior?.map((p) => Math.round(p * 11)), shares.train);
    // Part way: --balance-strength 0.5 is recorded, and said in RECIPE.md.
    const half = join(Deno.makeTempDirSync(), "half");
    await shipModel([run], half, { log: () => {}, single: true, noTta: true, balance: true, balanceStrength: 0.5 });
    assert.equal(readJson<ModelMetadata>(join(half, "metadata.json")).balanceStrength, 0.5);
    assert.match(Deno.readTextFileSync(join(half, "RECIPE.md")), /shifted by -0\.5 x log of each class's share/);
    assert.match(Deno.readTextFileSync(join(half, "RECIPE.md")), /--balance --balance-strength 0\.5/);
    // Below 0, back toward the training prior: the shift's sign is said once, not doubled.
    const back = join(Deno.makeTempDirSync(), "back");
    await shipModel([run], back, { log: () => {}, single: true, noTta: true, balance: true, balanceStrength: -0.2 });
    assert.match(Deno.readTextFileSync(join(back, "RECIPE.md")), /shifted by 0\.2 x log of each class's share/);
    // The shipped model carries its version and its weights' hash, which loading checks.
    assert.match(metadata.version ?? "", /^\d{4}-\d\d-\d\d /);
    const weights = Deno.readFileSync(join(out, "weights.bin"));
    weights[100] ^= 0xff;
    Deno.writeFileSync(join(out, "weights.bin"), weights);
    await assert.rejects(
      () => loadModel(out),
      /weights\.bin is damaged: its SHA-256 is not metadata\.json's weightsSha256/,
    );
  },
});

/** Write a small gray PNG at `path`. */
async function png(path: string, shade: number) {
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  const raw = { width: 20, height: 20, channels: 1 as const };
  Deno.writeFileSync(path, await sharp(new Uint8Array(400).fill(shade), { raw }).png().toBuffer());
}
