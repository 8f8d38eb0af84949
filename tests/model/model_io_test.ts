import { assert } from "../assert.ts";
import { join } from "node:path";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { architectureNames, buildModel, ensembleModel, modelSummary } from "../../lib/model/architectures.ts";
import { predictSet, TTA_VIEWS } from "../../lib/eval/evaluate.ts";
import {
  loadModel,
  loadOptimizerFiles,
  makeMetadata,
  modelFiles,
  optimizerFiles,
  priorStrength,
  readOptimizerWeights,
  saveModel,
  toFloat16,
  writeOptimizerWeights,
} from "../../lib/model/model_io.ts";
import { writeFolderAtomic } from "../../lib/util/files.ts";

Deno.test("the registry has a compact and a larger architecture, each summarised with its parameter count", async () => {
  await initBackend();
  assert.ok(architectureNames().includes("compact") && architectureNames().includes("vgg"));
  const compact = buildModel("compact"), vgg = buildModel("vgg");
  assert.ok(vgg.countParams() > 2 * compact.countParams());
  assert.match(modelSummary(compact), new RegExp(`Total params: ${compact.countParams()}`));
  assert.deepEqual(compact.outputs[0].shape, [null, 7]);
  assert.throws(
    () => buildModel("resnet9000"),
    /unknown architecture "resnet9000"; choose one of: compact, medium, medium-wide, medium-wider, vgg/,
  );
  compact.dispose();
  vgg.dispose();
});

Deno.test("a saved model loads back with one call and gives the same outputs", async () => {
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "model");
  const model = buildModel("compact");
  model.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy" });
  const x = tf.randomUniform([4, 48, 48, 1]);
  // A training step moves BatchNorm statistics away from their initial values.
  await model.trainOnBatch(x, tf.oneHot(tf.tensor1d([0, 1, 2, 3], "int32"), 7));
  await saveModel(dir, model, makeMetadata(model, "compact", { note: "test" }, { PublicTest: { accuracy: 0.5 } }));
  for (const f of ["model.json", "weights.bin", "metadata.json"]) assert.ok(Deno.statSync(join(dir, f)).isFile);
  const loaded = await loadModel(dir);
  const a = (model.predict(x) as tf.Tensor).dataSync(), b = (loaded.model.predict(x) as tf.Tensor).dataSync();
  assert.deepEqual(Array.from(b), Array.from(a));
  assert.equal(loaded.metadata.labels[3], "happy");
  assert.equal(loaded.metadata.inputSize, 48);
  assert.equal(loaded.metadata.parameters, model.countParams());
  const json = JSON.parse(Deno.readTextFileSync(join(dir, "model.json")));
  assert.equal(json.format, "layers-model");
  assert.ok(JSON.stringify(json.modelTopology).includes('"class_name":"BatchNormalization"'));
  await assert.rejects(() => loadModel(Deno.makeTempDirSync()), /not a saved model folder \(missing model\.json\)/);
});

Deno.test("float16 weights: IEEE half rounding, half the bytes, the same answers within half precision", async () => {
  const values = Float32Array.of(0, -0, 1, -2, 65504, 1e6, 6.1e-5, 5.96e-8, 1e-9, 1 + 2 ** -11, 1 + 3 * 2 ** -11, NaN);
  assert.deepEqual(
    Array.from(toFloat16(values), (h) => h.toString(16)),
    ["0", "8000", "3c00", "c000", "7bff", "7c00", "3ff", "1", "0", "3c00", "3c02", "7e00"],
    "zero, signs, the largest half, overflow, subnormals, underflow, ties to even, NaN",
  );
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "model");
  const model = buildModel("compact");
  const files = await modelFiles(model, { float16: true });
  writeFolderAtomic(dir, { ...files, "metadata.json": makeMetadata(model, "compact", {}) });
  const full = (await modelFiles(model))["weights.bin"] as Uint8Array;
  assert.equal((files["weights.bin"] as Uint8Array).length * 2, full.length);
  const loaded = await loadModel(dir);
  const x = tf.randomUniform([4, 48, 48, 1]);
  const gap = tf.sub(model.predict(x) as tf.Tensor, loaded.model.predict(x) as tf.Tensor).abs().max().dataSync()[0];
  assert.ok(gap > 0 && gap < 5e-3, `float16 probabilities differ from float32 by ${gap}`);
  // A half-precision infinity in the weights is refused by name.
  const bytes = Deno.readFileSync(join(dir, "weights.bin"));
  new Uint16Array(bytes.buffer).fill(0x7c00, 0, 8);
  Deno.writeFileSync(join(dir, "weights.bin"), bytes);
  await assert.rejects(() => loadModel(dir), /weights\.bin is damaged: 8 of its weights are not finite numbers/);
});

Deno.test("an ensemble model averages its members' probabilities and saves and loads like any model", async () => {
  await initBackend();
  const members = [1, 2].map((seed) => ({ arch: "compact", model: buildModel("compact", 48, seed) }));
  const x = tf.randomUniform([3, 48, 48, 1]);
  // A training step on the first member moves its BatchNorm statistics, so copying them is checked too.
  members[0].model.compile({ optimizer: tf.train.adam(0.01), loss: "categoricalCrossentropy" });
  await members[0].model.trainOnBatch(x, tf.oneHot(tf.tensor1d([0, 1, 2], "int32"), 7));
  const [p1, p2] = members.map((m) => m.model.predict(x) as tf.Tensor);
  assert.ok(tf.abs(p1.sub(p2)).max().dataSync()[0] > 1e-3, "the members should differ");
  const ensemble = ensembleModel(members);
  assert.equal(ensemble.countParams(), 2 * members[0].model.countParams());
  const expected = Array.from(p1.add(p2).div(2).dataSync());
  const dir = join(Deno.makeTempDirSync(), "ensemble");
  await saveModel(dir, ensemble, makeMetadata(ensemble, "ensemble of compact, compact", {}));
  const loaded = await loadModel(dir);
  for (const model of [ensemble, loaded.model]) {
    const got = Array.from((model.predict(x) as tf.Tensor).dataSync());
    got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-5, `probability ${i}: ${v} vs ${expected[i]}`));
  }
  assert.throws(() => ensembleModel(members.slice(0, 1)), /at least 2 members/);
});

Deno.test("optimizer state round-trips, so a resumed run takes the same next step", async () => {
  await initBackend();
  const dir = Deno.makeTempDirSync();
  const w = tf.variable(tf.tensor1d([1, 2, 3]));
  const optimizer = tf.train.adam(0.1);
  const loss = () => w.square().sum() as tf.Scalar;
  optimizer.minimize(loss);
  optimizer.minimize(loss);
  writeFolderAtomic(join(dir, "ckpt"), optimizerFiles(await readOptimizerWeights(optimizer)));
  const w2 = tf.variable(w.clone());
  optimizer.minimize(loss);
  const fresh = tf.train.adam(0.1);
  await writeOptimizerWeights(fresh, loadOptimizerFiles(join(dir, "ckpt")));
  fresh.minimize(() => w2.square().sum() as tf.Scalar, false, [w2]);
  // Equal up to float rounding (Adam recomputes beta^t on restore); a fresh Adam would step by 0.1.
  const [resumed, continued] = [w2.dataSync(), w.dataSync()];
  continued.forEach((v, i) => assert.ok(Math.abs(resumed[i] - v) < 1e-5, `${resumed[i]} vs ${v}`));

  // A damaged checkpoint is refused with the file named, not read as wrong moments.
  const ckpt = join(dir, "ckpt");
  const bin = Deno.readFileSync(join(ckpt, "optimizer.bin"));
  Deno.writeFileSync(join(ckpt, "optimizer.bin"), bin.subarray(0, bin.length - 4));
  assert.throws(() => loadOptimizerFiles(ckpt), /ckpt\/optimizer.bin is damaged: \d+ bytes where .* need \d+/);
  Deno.writeFileSync(join(ckpt, "optimizer.bin"), bin);
  Deno.writeTextFileSync(join(ckpt, "optimizer.json"), '[{"name": "m", "shape": "3"}]');
  assert.throws(() => loadOptimizerFiles(ckpt), /ckpt\/optimizer.json is damaged: not a list of \{ name, shape \}/);
  Deno.writeTextFileSync(join(ckpt, "optimizer.json"), '[{"name": "m", ');
  assert.throws(() => loadOptimizerFiles(ckpt), /ckpt\/optimizer.json is damaged/);
});

Deno.test("writeFolderAtomic replaces a folder whole and leaves no temporary folders", () => {
  const root = Deno.makeTempDirSync();
  const dir = join(root, "ckpt");
  writeFolderAtomic(dir, { "a.json": { v: 1 }, "b.bin": new Uint8Array([1, 2]) });
  writeFolderAtomic(dir, { "a.json": { v: 2 } });
  assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name), ["ckpt"]);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.json"]);
  assert.equal(JSON.parse(Deno.readTextFileSync(join(dir, "a.json"))).v, 2);
});

Deno.test("test-time augmentation averages 10 views: unchanged for a flat image, different for a face", async () => {
  await initBackend();
  const model = buildModel("compact");
  const flat = { n: 1, labels: new Uint8Array(1), pixels: new Uint8Array(2304).fill(128) };
  const face = { n: 1, labels: new Uint8Array(1), pixels: Uint8Array.from({ length: 2304 }, (_, i) => (i * 37) % 256) };
  const close = (a: Float32Array, b: Float32Array) => a.every((v, i) => Math.abs(v - b[i]) < 1e-5);
  assert.equal(TTA_VIEWS.length, 10);
  assert.ok(close(await predictSet(model, flat, { tta: true }), await predictSet(model, flat)));
  const tta = await predictSet(model, face, { tta: true });
  assert.ok(!close(tta, await predictSet(model, face)));
  assert.ok(Math.abs(tta.reduce((a, b) => a + b, 0) - 1) < 1e-4);
});

Deno.test("a model folder is checked on load: metadata against the model, and weights on a probe image", async () => {
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "model");
  const model = buildModel("compact");
  const metadata = makeMetadata(model, "compact", {});
  await saveModel(dir, model, metadata);
  model.dispose();
  const withMetadata = (changes: Record<string, unknown>) =>
    Deno.writeTextFileSync(join(dir, "metadata.json"), JSON.stringify({ ...metadata, ...changes }));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ inputSize: 0 }, /metadata\.json: inputSize: 0 is not a whole number of pixels/],
    [{ inputSize: 64 }, /metadata\.json: inputSize: 64, but the model takes 48x48 images/],
    [{ channels: 3 }, /metadata\.json: channels: 3/],
    [{ labels: ["a", "b", "c"] }, /metadata\.json: labels: 3 names, but the model has 7 output classes/],
    [{ labels: ["a", "a", "b", "c", "d", "e", "f"] }, /labels: a class name appears twice/],
    [{ temperature: -1 }, /metadata\.json: temperature: -1 is not a positive number/],
    [{ temperature: 0 }, /temperature: 0 is not a positive number/],
    [{ temperature: "abc" }, /temperature: "abc" is not a positive number/],
    [{ normalization: { scale: "x", offset: 0 } }, /normalization: needs a finite, non-zero scale/],
  ];
  for (const [changes, error] of cases) {
    withMetadata(changes);
    await assert.rejects(() => loadModel(dir), error, JSON.stringify(changes));
  }
  withMetadata({ temperature: 0.9 });
  (await loadModel(dir)).model.dispose();
  const weights = Deno.readFileSync(join(dir, "weights.bin"));
  const random = new Uint8Array(weights.length);
  for (let i = 0; i < random.length; i += 65536) crypto.getRandomValues(random.subarray(i, i + 65536));
  Deno.writeFileSync(join(dir, "weights.bin"), random);
  await assert.rejects(() => loadModel(dir), /weights\.bin is damaged: \d+ of its weights are not finite numbers/);
  // Finite but wrong weights (huge values) get past the scan; the probe image catches their output.
  const huge = new Float32Array(weights.length / 4).fill(3e38);
  Deno.writeFileSync(join(dir, "weights.bin"), new Uint8Array(huge.buffer));
  await assert.rejects(() => loadModel(dir), /weights\.bin is damaged: the model's output on a gray probe image/);
});

Deno.test("a FIFO in a model folder (model.json, metadata.json or weights.bin) is refused before it is opened", async () => {
  await initBackend();
  const model = buildModel("compact");
  for (const name of ["model.json", "metadata.json", "weights.bin"]) {
    const dir = join(Deno.makeTempDirSync(), "model");
    await saveModel(dir, model, makeMetadata(model, "compact", {}));
    Deno.removeSync(join(dir, name));
    await new Deno.Command("mkfifo", { args: [join(dir, name)] }).output();
    await assert.rejects(
      () => loadModel(dir),
      new RegExp(`${name.replace(".", "\\.")}: not a regular file \\(a FIFO, device or socket\\); not read`),
    );
  }
  model.dispose();
});

Deno.test("a saved model's prior strength: 0 as trained, 1 balanced, else the strength ship recorded", () => {
  const prior = [0.5, 0.5];
  assert.equal(priorStrength({}), 0);
  assert.equal(priorStrength({ classPrior: prior }), 1);
  assert.equal(priorStrength({ classPrior: prior, balanceStrength: -0.6 }), -0.6);
  assert.equal(priorStrength({ classPrior: prior, balanceStrength: 0 }), 0);
});
