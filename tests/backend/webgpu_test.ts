/**
 * WebGPU against WASM (CI installs Mesa's lavapipe, a Vulkan driver on the
 * CPU, so Deno's WebGPU has a fallback adapter there): one training step of
 * each architecture gives the same loss and gradients, a short run on WebGPU
 * makes the loss fall, and the shipped model predicts the same. Skipped
 * where Deno finds no WebGPU adapter.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import sharp from "sharp";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { ARCHITECTURES, buildModel } from "../../lib/model/architectures.ts";
import { selectRows } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { predictSet } from "../../lib/eval/evaluate.ts";
import { loadModel } from "../../lib/model/model_io.ts";
import { LocalTrainer } from "../../lib/train/local.ts";
import { smoothedCrossEntropy } from "../../lib/train/losses.ts";
import { projectPath } from "../../lib/util/paths.ts";

const adapter = await (navigator as { gpu?: GPU }).gpu?.requestAdapter();
const ignore = !adapter;
const options = { sanitizeResources: false, sanitizeOps: false, ignore };

/** Loss and flat gradients of one training-mode step (dropout off) of a model of `arch` holding `weights`. */
async function oneStep(
  backend: "wasm" | "webgpu",
  arch: string,
  weights: { data: Float32Array; shape: number[] }[],
  images: Float32Array,
  labels: number[],
) {
  await initBackend(backend);
  const model = buildModel(arch, 48, 1);
  model.setWeights(weights.map((w) => tf.tensor(w.data, w.shape)));
  for (const layer of model.layers) {
    if (layer.getClassName() === "Dropout") (layer as unknown as { rate: number }).rate = 0;
  }
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.tidy(() => {
    const x = tf.tensor4d(images, [labels.length, 48, 48, 1]);
    const y = tf.oneHot(tf.tensor1d(labels, "int32"), 7);
    const loss = smoothedCrossEntropy(0.1);
    const { value, grads } = tf.variableGrads(
      () => loss(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      variables,
    );
    return { value, grads: variables.map((v) => grads[v.name]) };
  });
  // WebGPU in Deno has no synchronous read: everything is read with data().
  const result = {
    loss: (await value.data())[0],
    gradients: await Promise.all(grads.map(async (g) => Array.from(await g.data()))),
  };
  tf.dispose([value, ...grads]);
  model.dispose();
  return result;
}

for (const arch of Object.keys(ARCHITECTURES)) {
  Deno.test({
    name: `one training step of ${arch} on WebGPU gives the loss and gradients of WASM (within 1e-3 of the largest)`,
    ...options,
    fn: async () => {
      const n = 4;
      const images = Float32Array.from({ length: n * 48 * 48 }, (_, i) => ((i * 7919) % 256) / 255);
      const labels = Array.from({ length: n }, (_, i) => i % 7);
      await initBackend("wasm");
      const built = buildModel(arch, 48, 7);
      const weights = built.getWeights().map((t) => ({ data: t.dataSync() as Float32Array, shape: t.shape }));
      built.dispose();
      const wasm = await oneStep("wasm", arch, weights, images, labels);
      const gpu = await oneStep("webgpu", arch, weights, images, labels);
      await initBackend("wasm");
      assert.ok(Math.abs(wasm.loss - gpu.loss) < 1e-4 * Math.max(1, wasm.loss), `loss ${wasm.loss} vs ${gpu.loss}`);
      wasm.gradients.forEach((want, v) => {
        const scale = want.reduce((m, g) => Math.max(m, Math.abs(g)), 1e-6);
        want.forEach((g, i) =>
          assert.ok(
            Math.abs(g - gpu.gradients[v][i]) <= 1e-3 * scale,
            `gradient ${v}[${i}]: ${g} vs ${gpu.gradients[v][i]}`,
          )
        );
      });
    },
  });
}

Deno.test({
  name: "a short run on WebGPU (one process) makes the training loss fall",
  ...options,
  fn: async () => {
    const data = await loadDataset(resolveDataPath());
    const train = selectRows(data.splits.Training, Array.from({ length: 16 }, (_, i) => i));
    await initBackend("webgpu");
    const model = buildModel("compact", 48, 1);
    const trainer = await LocalTrainer.start(model, train, { weightDecay: 0, labelSmoothing: 0, augment: false });
    const rows = Array.from({ length: 16 }, (_, i) => i);
    const losses: number[] = [];
    try {
      for (let step = 0; step < 6; step++) losses.push((await trainer.step(rows, step, 3e-3)).loss);
    } finally {
      trainer.terminate();
      model.dispose();
      await initBackend("wasm");
    }
    assert.ok(losses[5] < losses[0], `loss should fall: ${losses.map((l) => l.toFixed(3))}`);
  },
});

Deno.test({
  name: "the shipped model predicts PrivateTest faces on WebGPU as on WASM (within 1e-3)",
  ...options,
  fn: async () => {
    const data = await loadDataset(resolveDataPath());
    const faces = selectRows(data.splits.PrivateTest, Array.from({ length: 32 }, (_, i) => i));
    await initBackend("wasm");
    const { model } = await loadModel(projectPath("outputs", "model"));
    const onWasm = await predictSet(model, faces);
    await initBackend("webgpu");
    const onGpu = await predictSet(model, faces);
    await initBackend("wasm");
    model.dispose();
    onWasm.forEach((p, i) => assert.ok(Math.abs(p - onGpu[i]) < 1e-3, `[${i}] ${p} vs ${onGpu[i]}`));
  },
});

/** Run a command of lib/cli/ in a subprocess; its status and output. */
async function command(name: string, args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", projectPath("lib", "cli", `${name}.ts`), ...args],
  }).output();
  return { code, stdout: new TextDecoder().decode(stdout), stderr: new TextDecoder().decode(stderr) };
}

/** A folder DIR/[split/]<class>/*.png of `perClass` FER2013 PrivateTest faces for each of its first classes. */
async function faceFolder(perClass: number, splits: string[] = [""]): Promise<string> {
  const data = await loadDataset(resolveDataPath());
  const set = data.splits.PrivateTest;
  const root = Deno.makeTempDirSync();
  for (const split of splits) {
    for (const [c, label] of ["angry", "happy"].entries()) {
      const rows = [...set.labels.keys()].filter((i) => set.labels[i] === [0, 3][c]).slice(0, perClass);
      for (const row of rows) {
        const dir = join(root, split, label);
        Deno.mkdirSync(dir, { recursive: true });
        const pixels = set.pixels.subarray(row * 48 * 48, (row + 1) * 48 * 48);
        const png = await sharp(pixels, { raw: { width: 48, height: 48, channels: 1 } }).png().toBuffer();
        Deno.writeFileSync(join(dir, `${split}${row}.png`), png);
      }
    }
  }
  return root;
}

Deno.test({
  name: "the commands themselves on WebGPU: predict, evaluate (BatchNorm folded) and train",
  ...options,
  fn: async () => {
    const photo = projectPath("..", "shared", "media", "single_face.jpg");
    const predicted = await command("predict", ["--backend", "webgpu", photo]);
    assert.equal(predicted.code, 0, predicted.stderr);
    assert.equal(JSON.parse(predicted.stdout).faces.length, 1);

    const faces = await faceFolder(4);
    const out = Deno.makeTempDirSync();
    const model = projectPath("outputs", "model");
    const evaluated = await command("evaluate", [
      "--backend",
      "webgpu",
      "--model",
      model,
      "--data",
      faces,
      "--out",
      out,
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    assert.ok(JSON.parse(Deno.readTextFileSync(join(out, "report.json"))).n === 8, evaluated.stdout);

    const run = join(Deno.makeTempDirSync(), "run");
    const train = await faceFolder(6, ["train", "val"]);
    const trained = await command("train", [
      "--backend",
      "webgpu",
      "--data",
      train,
      "--epochs",
      "1",
      "--batch-size",
      "8",
      "--out",
      run,
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    assert.ok(Deno.statSync(join(run, "best", "model.json")).isFile);
  },
});
