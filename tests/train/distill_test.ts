/** Distillation: the blended targets, the teacher's probabilities kept for a resumed run, and bad teachers refused. */
import { assert } from "../assert.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { join } from "node:path";
import { exists } from "../../lib/util/paths.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { makeMetadata, saveModel } from "../../lib/model/model_io.ts";
import { balanceClasses } from "../../lib/eval/calibration.ts";
import { trainingTargets } from "../../lib/train/losses.ts";
import { agreement, teacherProbabilities } from "../../lib/train/distill.ts";
import { parseTrainArgs } from "../../lib/train/config.ts";
import { batchTensor, type FaceSet } from "../../lib/data/dataset.ts";
import { transformBatch } from "../../lib/data/augment.ts";
import * as tf from "@tensorflow/tfjs";

const set = (n: number, teacher?: number[]): FaceSet => ({
  n,
  pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (i * 37) % 256),
  labels: Uint8Array.from({ length: n }, (_, i) => i % 3),
  ...(teacher ? { teacher: Float32Array.from(teacher) } : {}),
});

Deno.test("training targets: one-hot labels, blended with the teacher's probabilities by --distill", () => {
  const plain = set(2);
  assert.deepEqual([...trainingTargets(plain, [1, 0], 3, 0.5)], [0, 1, 0, 1, 0, 0]);
  const taught = set(2, [0.5, 0.25, 0.25, 0.25, 0.25, 0.5]);
  const blended = trainingTargets(taught, [1, 0], 3, 0.5);
  assert.deepEqual([...blended], [0.125, 0.625, 0.25, 0.75, 0.125, 0.125]);
  assert.deepEqual([...trainingTargets(taught, [0], 3, 0)], [1, 0, 0], "--distill 0 is the labels alone");
  assert.deepEqual([...trainingTargets(taught, [1], 3, 1)], [0.25, 0.25, 0.5], "--distill 1 is the teacher alone");
  assert.equal(agreement(taught.teacher!, taught), 0.5, "image 0's top class is its label, image 1's is not");
});

/** A compact net saved as a teacher in a new temporary folder: the folder, the teacher's and the net. */
async function savedTeacher(seed: number) {
  await initBackend();
  const root = Deno.makeTempDirSync();
  const teacherDir = join(root, "teacher-model");
  const model = buildModel("compact", 48, seed);
  await saveModel(teacherDir, model, makeMetadata(model, "compact", {}));
  return { root, teacherDir, model };
}

Deno.test("the teacher predicts the training images once; a resumed run reuses them; a bad teacher is refused", async () => {
  const { root, teacherDir, model } = await savedTeacher(3);
  const train = set(5);
  const logs: string[] = [];
  const out = join(root, "run");
  Deno.mkdirSync(out);
  const first = (await teacherProbabilities([teacherDir], out, train, EMOTIONS, (m: string) => logs.push(m))).teacher!;
  assert.equal(first.length, 5 * 7);
  for (let i = 0; i < 5; i++) {
    const sum = first.subarray(7 * i, 7 * i + 7).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `row ${i} sums to ${sum}`);
  }
  const again = (await teacherProbabilities([teacherDir], out, train, EMOTIONS, (m: string) => logs.push(m))).teacher!;
  assert.deepEqual([...again], [...first]);
  assert.ok(logs.at(-1)!.startsWith("teacher: reusing"), logs.join("\n"));
  // Another training set (a different --subset) is predicted afresh.
  await teacherProbabilities([teacherDir], out, set(4), EMOTIONS, (m: string) => logs.push(m));
  assert.ok(!logs.at(-1)!.startsWith("teacher: reusing"), logs.join("\n"));

  const metadataPath = join(teacherDir, "metadata.json");
  const metadata = JSON.parse(Deno.readTextFileSync(metadataPath));
  Deno.writeTextFileSync(metadataPath, JSON.stringify({ ...metadata, labels: [..."abcdefg"] }));
  await assert.rejects(
    () => teacherProbabilities([teacherDir], join(root, "other"), train, EMOTIONS, () => {}),
    Error,
    `--teacher ${teacherDir}: its classes (a, b, c, d, e, f, g) are not the data's (angry,`,
  );
  assert.throws(() => parseTrainArgs(["--teacher", "/nowhere"]), /--teacher \/nowhere: no saved model there/);
  assert.throws(() => parseTrainArgs(["--distill", "1.5"]), /--distill 1\.5/);
  model.dispose();
});

Deno.test("several teachers teach their mean, each read at the training prior", async () => {
  await initBackend();
  const root = Deno.makeTempDirSync();
  const train = set(6);
  const prior = [0.3, 0.05, 0.15, 0.2, 0.1, 0.1, 0.1];
  const save = async (name: string, seed: number, extra: Record<string, unknown>, training = {}, shift = 0) => {
    const model = buildModel("compact", 48, seed);
    if (shift) balanceClasses(model, prior, shift);
    await saveModel(join(root, name), model, { ...makeMetadata(model, "compact", training), ...extra });
    model.dispose();
    return join(root, name);
  };
  const plain = await save("plain", 3, {});
  // The same net as trained with the prior in its loss (its output balanced), and as shipped at -0.4 from that.
  const adjusted = await save("adjusted", 4, { classPrior: prior, balanceStrength: 0 }, { config: { logitAdjust: 1 } });
  const shipped = await save(
    "shipped",
    4,
    { classPrior: prior, balanceStrength: -0.4 },
    { config: { logitAdjust: 1 } },
    -0.4,
  );
  const asIs = await save("as-is", 4, {});
  const alone = async (dir: string) =>
    (await teacherProbabilities([dir], join(root, `run-${dir.split("/").pop()}`), train, EMOTIONS, () => {})).teacher!;
  const [p, a, s, raw] = [await alone(plain), await alone(adjusted), await alone(shipped), await alone(asIs)];
  // Read at the training prior: the adjusted net's probabilities are its raw ones times the prior, renormalized.
  for (let i = 0; i < train.n; i++) {
    const row = [...raw.subarray(7 * i, 7 * i + 7)].map((q, k) => q * prior[k]);
    const total = row.reduce((x, y) => x + y, 0);
    row.forEach((q, k) => assert.ok(Math.abs(a[7 * i + k] - q / total) < 1e-5, `image ${i} class ${k}`));
  }
  // The strengths add up: the same net shipped at -0.4 is read at the same place.
  assert.ok(a.every((q, i) => Math.abs(q - s[i]) < 1e-5), "shipped at -0.4 is moved a further -0.6");
  const logs: string[] = [];
  const { teacher: mean } = await teacherProbabilities(
    [plain, adjusted],
    join(root, "run"),
    train,
    EMOTIONS,
    (m) => logs.push(m),
  );
  assert.ok(mean!.every((q, i) => Math.abs(q - (p[i] + a[i]) / 2) < 1e-6), "the mean of the two");
  assert.equal(logs.filter((m) => m.includes("agrees with")).length, 3, logs.join("\n"));
  // A resumed run reuses them only with the same teachers, in the same order.
  await teacherProbabilities([plain, adjusted], join(root, "run"), train, EMOTIONS, (m) => logs.push(m));
  assert.ok(logs.at(-1)!.startsWith("teacher: reusing"), logs.join("\n"));
  await teacherProbabilities([adjusted, plain], join(root, "run"), train, EMOTIONS, (m) => logs.push(m));
  assert.ok(!logs.at(-1)!.startsWith("teacher: reusing"), logs.join("\n"));
  const { config } = parseTrainArgs(["--teacher", plain, "--teacher", adjusted]);
  assert.deepEqual(config.teacher, [plain, adjusted]);
  assert.equal(parseTrainArgs([]).config.teacher, undefined, "no --teacher: no teacher");
  assert.throws(() => parseTrainArgs(["--teacher", plain, "--teacher", "/nowhere"]), /--teacher \/nowhere: no saved/);
});

Deno.test("--teacher-views: the teacher reads K augmented views of each image, and each step teaches the view it shows", async () => {
  const { root, teacherDir, model } = await savedTeacher(5);
  const train = set(3);
  const logs: string[] = [];
  const out = join(root, "run");
  const views = { count: 2, seed: 7 };
  const taught = await teacherProbabilities([teacherDir], out, train, EMOTIONS, (m) => logs.push(m), { views });
  const [teacher, matrices] = [taught.teacher!, taught.teacherViews!];
  assert.equal(teacher.length, 3 * 2 * 7);
  assert.equal(matrices.length, 3 * 2 * 8);
  // Each stored row is the model's reading of that image moved by that view's transform, and the views differ.
  for (let i = 0; i < 3; i++) {
    for (let v = 0; v < 2; v++) {
      const at = v * 3 + i; // view-major: every image's view 0, then every image's view 1
      const expected = tf.tidy(() =>
        (model.predict(
          transformBatch(batchTensor(train, [i]), matrices.subarray(8 * at, 8 * at + 8)),
        ) as tf.Tensor).dataSync()
      );
      expected.forEach((p, k) =>
        assert.ok(Math.abs(teacher[7 * at + k] - p) < 1e-5, `image ${i} view ${v} class ${k}`)
      );
    }
  }
  assert.notDeepEqual([...matrices.subarray(0, 8)], [...matrices.subarray(8, 16)]);
  // A resumed run reuses them; another count of views is read afresh.
  const again = await teacherProbabilities([teacherDir], out, train, EMOTIONS, (m) => logs.push(m), { views });
  assert.ok(logs.at(-1)!.startsWith("teacher: reusing"), logs.join("\n"));
  assert.deepEqual([...again.teacherViews!], [...matrices]);
  // A kept file cut short is predicted again, not read.
  const kept = join(out, "teacher", "views.bin");
  Deno.writeFileSync(kept, Deno.readFileSync(kept).subarray(0, 40));
  const mended = await teacherProbabilities([teacherDir], out, train, EMOTIONS, (m) => logs.push(m), { views });
  assert.ok(logs.some((m) => m.includes("has one of the wrong size; predicting again")), logs.join("\n"));
  assert.deepEqual([...mended.teacherViews!], [...matrices], "the same seed draws the same views");
  const three = await teacherProbabilities([teacherDir], out, train, EMOTIONS, (m) => logs.push(m), {
    views: { count: 3, seed: 7 },
  });
  assert.ok(!logs.at(-1)!.startsWith("teacher: reusing"), logs.join("\n"));
  assert.equal(three.teacher!.length, 3 * 3 * 7);
  // The target of a row shown in view v is the teacher's reading of view v.
  const set2 = { ...train, ...taught };
  const targets = trainingTargets(set2, [1, 0], 7, 1, Math.random, { views: [1, 0] });
  assert.deepEqual([...targets.subarray(0, 7)], [...teacher.subarray(7 * 4, 7 * 5)], "image 1, view 1");
  assert.deepEqual([...targets.subarray(7, 14)], [...teacher.subarray(0, 7)], "image 0, view 0");
  assert.throws(() => parseTrainArgs(["--teacher-views", "4"]), /--teacher-views 4 needs --teacher/);
  assert.throws(
    () => parseTrainArgs(["--teacher", teacherDir, "--teacher-views", "4", "--teacher-tta"]),
    /--teacher-views 4 and --teacher-tta/,
  );
  assert.throws(
    () => parseTrainArgs(["--teacher", teacherDir, "--teacher-views", "4", "--no-augment"]),
    /--teacher-views 4 needs augmentation/,
  );
  assert.throws(() => parseTrainArgs(["--teacher", teacherDir, "--teacher-views", "0"]), /--teacher-views/);
  assert.equal(parseTrainArgs(["--teacher", teacherDir, "--teacher-views", "4"]).config.teacherViews, 4);
  assert.throws(() => parseTrainArgs(["--teacher-each-step"]), /--teacher-each-step needs --teacher/);
  assert.throws(
    () => parseTrainArgs(["--teacher", teacherDir, "--teacher-each-step", "--teacher-views", "4"]),
    /--teacher-each-step and --teacher-views both/,
  );
  assert.throws(
    () => parseTrainArgs(["--teacher", teacherDir, "--teacher-each-step", "--teacher-tta"]),
    /--teacher-each-step and --teacher-tta both/,
  );
  assert.equal(parseTrainArgs(["--teacher", teacherDir, "--teacher-each-step"]).config.teacherEachStep, true);
  model.dispose();
});

Deno.test("a teacher pass stopped part-way goes on from the parts it kept; they leave once the pass is whole", async () => {
  const { root, teacherDir: first, model } = await savedTeacher(5);
  const { teacherDir: second, model: other } = await savedTeacher(6);
  const train = set(3);
  const views = { count: 2, seed: 7 };
  const whole = await teacherProbabilities([first, second], join(root, "whole"), train, EMOTIONS, () => {}, { views });
  assert.ok(!exists(join(root, "whole", "teacher-parts")), "a whole pass leaves no parts");
  // The second teacher is damaged, so the pass stops after the first teacher's two views.
  const metadataPath = join(second, "metadata.json");
  const metadata = Deno.readTextFileSync(metadataPath);
  Deno.writeTextFileSync(metadataPath, "{");
  const out = join(root, "run"), parts = join(out, "teacher-parts");
  await assert.rejects(() => teacherProbabilities([first, second], out, train, EMOTIONS, () => {}, { views }));
  assert.deepEqual([...Deno.readDirSync(parts)].map((e) => e.name).sort(), ["0-0.bin", "0-1.bin", "source.json"]);
  // Mended, the pass goes on: the first teacher's views are read from its parts (its weights are gone, so it could
  // not predict them again), and the result is the whole pass's.
  Deno.writeTextFileSync(metadataPath, metadata);
  Deno.removeSync(join(first, "weights.bin"));
  const logs: string[] = [];
  const resumed = await teacherProbabilities([first, second], out, train, EMOTIONS, (m) => logs.push(m), { views });
  assert.ok(logs.some((m) => m.includes("going on from the 2 part(s)")), logs.join("\n"));
  assert.deepEqual([...resumed.teacher!], [...whole.teacher!]);
  assert.ok(!exists(parts), "the parts leave once teacher/ is whole");
  model.dispose();
  other.dispose();
});

Deno.test("the teacher pass in two workers gives the pass in one process, and a damaged teacher stops it in one line", async () => {
  const { root, teacherDir: first, model } = await savedTeacher(5);
  const { teacherDir: second, model: other } = await savedTeacher(6);
  const train = set(5);
  for (const reading of [{}, { tta: true }, { views: { count: 3, seed: 7 } }]) {
    const name = JSON.stringify(reading);
    const one = await teacherProbabilities(
      [first, second],
      join(root, `one-${name}`),
      train,
      EMOTIONS,
      () => {},
      reading,
    );
    const logs: string[] = [];
    const two = await teacherProbabilities(
      [first, second],
      join(root, `two-${name}`),
      train,
      EMOTIONS,
      (m) => logs.push(m),
      {
        ...reading,
        workers: 2,
      },
    );
    assert.ok(logs.some((m) => m.includes("in 2 workers")), logs.join("\n"));
    assert.deepEqual([...two.teacher!], [...one.teacher!], name);
    assert.deepEqual([...(two.teacherViews ?? [])], [...(one.teacherViews ?? [])], name);
  }
  Deno.writeTextFileSync(join(second, "metadata.json"), "{");
  await assert.rejects(
    () => teacherProbabilities([first, second], join(root, "damaged"), train, EMOTIONS, () => {}, { workers: 2 }),
    { message: /^[^\n]*metadata\.json is damaged[^\n]*$/ },
  );
  model.dispose();
  other.dispose();
});
