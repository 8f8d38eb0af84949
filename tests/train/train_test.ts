/**
 * End to end on the real dataset: a short training run on a 2,000-image
 * stratified subset of FER2013 Training, its run folder, --resume, weight
 * averaging, a warm restart (--init-from, cosine), shipping the two runs
 * (ensemble candidates), and the evaluate command on PrivateTest.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { exists } from "../../lib/util/paths.ts";
import { trainModel } from "../../lib/train/train.ts";
import { historyCsv, parseHistoryCsv } from "../../lib/train/history.ts";
import { DEFAULT_CONFIG, parseTrainArgs, RECIPES, TRAIN_FLAGS, trainCommand } from "../../lib/train/config.ts";
import { candidates, joinHistories, lineage, subsetsOfTwoOrMore } from "../../lib/ship/ship.ts";
import { snapshotEpochs } from "../../lib/train/run_folder.ts";
import { loadModel, loadOptimizerFiles, makeMetadata, saveModel } from "../../lib/model/model_io.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { classCounts } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { type FaceSet, IMAGE_SIZE } from "../../lib/data/dataset.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { loadFaceFolder } from "../../lib/data/folders.ts";
import { predictSet } from "../../lib/eval/evaluate.ts";
import { accuracy, argmaxRows } from "../../lib/eval/metrics.ts";
import sharp from "sharp";

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
    const watch = await faceFolderOf(data.splits.PrivateTest, 8); // --watch: a folder of faces, a subfolder per class
    const config = {
      ...DEFAULT_CONFIG,
      subset: 2000,
      epochs: 3,
      batchSize: 32,
      lr: 0.001,
      schedule: "plateau" as const,
      augment: false,
      averageFrom: 2,
      watch,
      out,
    };
    const logged: string[] = [];
    const result = await trainModel(config, false, { data, log: (line) => logged.push(line) });
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

    // --watch scored the folder after each epoch as the weights then stood (last/ holds epoch 4's); the extra
    // class folder was left out.
    const watched = resumed.history.map((e) => e.watch_accuracy);
    assert.ok(watched.every((a) => a !== undefined && a >= 0 && a <= 1), `watch_accuracy: ${watched}`);
    assert.match(Deno.readTextFileSync(join(out, "history.csv")).split("\n")[0], /,watch_accuracy$/);
    const last = await loadModel(join(out, "last"));
    const folderFaces = (await loadFaceFolder(watch, EMOTIONS)).set;
    const lastProbabilities = await predictSet(last.model, folderFaces);
    assert.equal(watched[3], accuracy(folderFaces.labels, argmaxRows(lastProbabilities, EMOTIONS.length)));
    last.model.dispose();
    assert.ok(
      logged.some((l) => /--watch: left out .*contempt \(1 images: the model has no such class\)/.test(l)),
      logged.join("\n"),
    );

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

    // A warm restart: --init-from best/ with a cosine schedule starts from the trained weights (so its first
    // epoch already beats the majority class) and anneals the rate to minLr at the last epoch; with --ema, its
    // checkpoint carries the weight average beside Adam's state.
    const restart = await trainModel(
      {
        ...config,
        out: join(out, "..", "restart"),
        epochs: 2,
        averageFrom: undefined,
        initFrom: join(out, "best"),
        schedule: "cosine",
        minLr: 1e-5,
        ema: 0.9,
      },
      false,
      { data, log: () => {} },
    );
    assert.deepEqual(restart.history.map((e) => e.lr), [0.001, 1e-5]);
    const restartState = loadOptimizerFiles(join(out, "..", "restart", "last")).map((w) => w.name);
    assert.equal(
      restartState.filter((name) => name.startsWith("ema/")).length,
      1 + result.model.trainableWeights.length,
    );
    assert.ok(restart.history[0].val_accuracy > majority, `restart epoch 1: ${restart.history[0].val_accuracy}`);
    assert.deepEqual(lineage(join(out, "..", "restart", "best")), [out, join(out, "..", "restart")]);

    // Shipping both runs: their checkpoints and their ensemble compete on PublicTest; the winner is written with
    // PrivateTest reports and a RECIPE.md naming both training commands.
    const shipped = join(out, "..", "shipped");
    const ship = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "lib/cli/ship.ts", "--run", out, "--run", join(out, "..", "restart"), "--out", shipped]
        .concat(["--no-tta"]), // the TTA evaluation is ship_test's
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(ship.code, 0, new TextDecoder().decode(ship.stderr));
    const recipe = Deno.readTextFileSync(join(shipped, "RECIPE.md"));
    // The ensemble joins each run's top checkpoint: the first run's best/ or averaged/, whichever scored higher.
    const tops = [out, join(out, "..", "restart")].map((run) => candidates(run)[0].description);
    assert.ok(
      recipe.includes(`mean of the probabilities of ${tops[0]} and ${tops[1]}`),
      `RECIPE.md should list the ensemble of ${tops.join(" and ")}:\n${recipe}`,
    );
    assert.match(recipe, /--init-from .*\/best/);
    assert.equal(JSON.parse(Deno.readTextFileSync(join(shipped, "report.json"))).n, 3589);
    assert.ok(Deno.statSync(join(shipped, "curves.png")).size > 0);
    assert.ok(!recipe.includes("TTA") && recipe.includes("--no-tta"), "--no-tta: plain figures only, and said so");
    (await loadModel(shipped)).model.dispose();

    // The evaluate command on the untouched test split.
    const evalDir = join(Deno.makeTempDirSync(), "eval");
    const cmd = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "lib/cli/evaluate.ts",
        "--model",
        join(out, "best"),
        "--split",
        "PrivateTest",
        "--out",
        evalDir,
      ],
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
  assert.equal(parseTrainArgs(["--contrast", "0.3"]).config.contrast, 0.3);
  assert.throws(() => parseTrainArgs(["--contrast", "0.3", "--photometric"]), /--contrast 0.3 and --photometric/);
  assert.throws(() => parseTrainArgs(["--contrast", "0.3", "--no-augment"]), /--contrast 0.3 needs augmentation/);
  assert.throws(() => parseTrainArgs(["--contrast", "1.5"]), /--contrast/);
});

Deno.test("history.csv round-trips, with a watch_accuracy column only where an epoch has one", () => {
  const history = [{ epoch: 1, loss: 1.5, accuracy: 0.3, val_loss: 1.6, val_accuracy: 0.28, lr: 0.001, seconds: 12.5 }];
  assert.deepEqual(parseHistoryCsv(historyCsv(history)), history);
  assert.ok(!historyCsv(history).includes("watch"));
  // A run that took --watch on resume: its earlier epochs have no watched score.
  const watched = [...history, { ...history[0], epoch: 2, watch_accuracy: 0.5 }];
  assert.deepEqual(parseHistoryCsv(historyCsv(watched)), watched);
});

Deno.test("the command RECIPE.md prints reproduces each recipe's settings", () => {
  for (const [name, recipe] of Object.entries(RECIPES)) {
    // Written out in full, and as the recipe's name with the one setting a run changed (another seed).
    const full = { ...DEFAULT_CONFIG, ...recipe, out: "outputs/runs/x" };
    const named = { ...full, recipe: name, seed: 99 };
    for (const config of [full, named]) {
      const command = trainCommand(config, "outputs/runs/x");
      const args = command.split(" ").slice(3); // after "deno task train"
      const { config: parsed } = parseTrainArgs(args);
      for (const spec of Object.values(TRAIN_FLAGS) as { key?: string }[]) {
        if (!spec.key || spec.key === "data") continue;
        const key = spec.key as keyof typeof config;
        assert.deepEqual(parsed[key], config[key], `${command}: ${key}`);
      }
    }
    assert.equal(
      trainCommand(named, "outputs/runs/x"),
      `deno task train --recipe ${name} --seed 99 --out outputs/runs/x`,
    );
  }
  // A repeated flag is written once per value (several teachers), and a run saved with one as a string reads the same.
  const teachers = ["outputs/model", "outputs/model-balanced"];
  const taught = trainCommand({ ...DEFAULT_CONFIG, teacher: teachers }, "outputs/runs/x");
  assert.equal(taught, "deno task train --teacher outputs/model --teacher outputs/model-balanced --out outputs/runs/x");
  assert.deepEqual(parseTrainArgs(taught.split(" ").slice(3)).config.teacher, teachers);
  assert.equal(
    trainCommand({ ...DEFAULT_CONFIG, teacher: "outputs/model" }, "outputs/runs/x"),
    "deno task train --teacher outputs/model --out outputs/runs/x",
  );
  assert.throws(
    () => parseTrainArgs(["--schedule", "step"]),
    /--schedule step: choose one of plateau, cosine, onecycle/,
  );
  assert.throws(() => parseTrainArgs(["--init-from", "/nowhere"]), /--init-from \/nowhere: no saved model there/);
  assert.throws(() => parseTrainArgs(["--watch", "/nowhere"]), /--watch \/nowhere: not a folder/);
  assert.throws(() => parseTrainArgs(["--watch", "README.md"]), /--watch README.md: not a folder/);
});

Deno.test("joinHistories numbers epochs on across runs and says which are whose", () => {
  const record = (epoch: number) => ({
    epoch,
    loss: 1,
    accuracy: 0.5,
    val_loss: 1,
    val_accuracy: 0.5,
    lr: 1e-3,
    seconds: 1,
  });
  const { history, title } = joinHistories([
    { run: "outputs/runs/a", history: [record(1), record(2)] },
    { run: "outputs/runs/b", history: [record(1)] },
  ]);
  assert.deepEqual(history.map((h) => h.epoch), [1, 2, 3]);
  assert.equal(title, "Learning curves (epochs 1-2: a, 3-3: b)");
});

Deno.test("ensemble candidates: every choice of two or more runs", () => {
  assert.deepEqual(subsetsOfTwoOrMore(["a", "b", "c"]), [["a", "b"], ["a", "c"], ["b", "c"], ["a", "b", "c"]]);
  assert.deepEqual(subsetsOfTwoOrMore(["a"]), []);
});

Deno.test({
  name:
    "a dataset's classes are the model's: a 3-class set trains a 3-way net; --init-from a 7-class one keeps its trunk",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const set = (n: number) => ({
      n,
      pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (Math.floor(i / 2304) % 3) * 100 + (i % 7)),
      labels: Uint8Array.from({ length: n }, (_, i) => i % 3),
    });
    const data = {
      source: "three",
      labels: ["bird", "cat", "dog"],
      splits: { Training: set(48), PublicTest: set(12), PrivateTest: set(12) },
      skipped: [],
    };
    const root = Deno.makeTempDirSync();
    const base = { ...DEFAULT_CONFIG, epochs: 1, batchSize: 16, augment: false };
    await trainModel({ ...base, out: join(root, "three") }, false, { data, log: () => {} });
    const { model, metadata } = await loadModel(join(root, "three", "best"));
    assert.deepEqual(metadata.labels, ["bird", "cat", "dog"]);
    assert.deepEqual(model.outputs[0].shape, [null, 3]);
    const report = JSON.parse(Deno.readTextFileSync(join(root, "three", "report.json")));
    assert.deepEqual(report.labels, ["bird", "cat", "dog"]);

    const seven = join(root, "seven");
    const fer = buildModel("compact", 48, 9);
    await saveModel(seven, fer, makeMetadata(fer, "compact", {}));
    const logs: string[] = [];
    await trainModel({ ...base, out: join(root, "warm"), initFrom: seven }, false, { data, log: (m) => logs.push(m) });
    assert.match(
      logs.join("\n"),
      /starting from the trunk of .*seven; its classes \(angry, .*\) are not this data's \(bird, cat, dog\), so the head \(emotion\) starts new/,
    );
    fer.dispose();
    model.dispose();
  },
});

Deno.test({
  name: "training on one class or a handful of images is refused before any epoch; a NaN loss stops without saving",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const set = (n: number, label: (i: number) => number) => ({
      n,
      pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (i * 31) % 256),
      labels: Uint8Array.from({ length: n }, (_, i) => label(i)),
    });
    const data = (training: ReturnType<typeof set>) => ({
      source: "faces/",
      labels: ["cat", "dog"],
      splits: { Training: training, PublicTest: set(4, (i) => i % 2), PrivateTest: set(0, () => 0) },
      skipped: [],
    });
    const root = Deno.makeTempDirSync();
    const base = { ...DEFAULT_CONFIG, epochs: 1, batchSize: 8, augment: false };
    await assert.rejects(
      () => trainModel({ ...base, out: join(root, "one") }, false, { data: data(set(20, () => 1)), log: () => {} }),
      /faces\/: the Training images are all of one class \(dog\); a classifier learns from two or more/,
    );
    await assert.rejects(
      () => trainModel({ ...base, out: join(root, "few") }, false, { data: data(set(3, (i) => i % 2)), log: () => {} }),
      /faces\/: 3 Training images; at least 10 are needed/,
    );
    for (const name of ["one", "few"]) assert.ok(!exists(join(root, name, "best")), `${name}: nothing saved`);
    // A teacher read on every step is checked before the workers load it: one line naming it, no worker's stack.
    const teacher = join(root, "seven-classes");
    const seven = buildModel("compact", IMAGE_SIZE, 3);
    await saveModel(teacher, seven, makeMetadata(seven, "compact", {}));
    seven.dispose();
    const taught = { ...base, teacher: [teacher], teacherEachStep: true, out: join(root, "taught") };
    await assert.rejects(
      () => trainModel(taught, false, { data: data(set(16, (i) => i % 2)), log: () => {} }),
      (err: Error) =>
        /^--teacher .*seven-classes: its classes \(angry, .*\) are not the data's \(cat, dog\)$/.test(err.message),
    );
    await assert.rejects(
      () =>
        trainModel({ ...base, lr: 1e30, out: join(root, "nan") }, false, {
          data: data(set(16, (i) => i % 2)),
          log: () => {},
        }),
      /epoch 1: the (training|validation) loss is NaN; stopped without saving this epoch/,
    );
    assert.ok(!exists(join(root, "nan", "best")), "no best/ from a NaN epoch");
  },
});

/** A face folder (a subfolder per class, and one of a class the model lacks) of `perClass` faces of each class of `set`. */
async function faceFolderOf(set: FaceSet, perClass: number): Promise<string> {
  const root = Deno.makeTempDirSync();
  const taken = EMOTIONS.map(() => 0);
  const size = IMAGE_SIZE * IMAGE_SIZE;
  for (let row = 0; row < set.n; row++) {
    const label = set.labels[row];
    if (taken[label] >= perClass) continue;
    const dir = join(root, EMOTIONS[label]);
    Deno.mkdirSync(dir, { recursive: true });
    const pixels = Uint8Array.from(set.pixels.subarray(row * size, (row + 1) * size));
    const raw = { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 1 as const };
    Deno.writeFileSync(join(dir, `${row}.png`), await sharp(pixels, { raw }).png().toBuffer());
    taken[label]++;
  }
  Deno.mkdirSync(join(root, "contempt"));
  Deno.copyFileSync(join(root, EMOTIONS[set.labels[0]], "0.png"), join(root, "contempt", "0.png"));
  return root;
}
