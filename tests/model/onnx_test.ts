/**
 * The ONNX export checked by others' code: onnxruntime (onnxruntime-web's
 * WASM, in Deno) gives the tfjs model's probabilities within 1e-4 on 500
 * PrivateTest faces for each architecture and an ensemble, the float16 file
 * within 1e-2 with the same answers, the ONNX checker (Debian's python3-onnx)
 * accepts the files, and what cannot be exported gets one line and no file.
 */
import { assert } from "../assert.ts";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-web";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { architectureNames, buildModel, ensembleModel } from "../../lib/model/architectures.ts";
import { type LoadedModel, loadModel, makeMetadata, saveModel } from "../../lib/model/model_io.ts";
import { exportOnnx } from "../../lib/model/onnx.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { selectRows } from "../../lib/data/dataset.ts";
import { predictSet } from "../../lib/eval/evaluate.ts";
import { argmaxRows } from "../../lib/eval/metrics.ts";
import { calibrate } from "../../lib/core/face_pipeline.js";
import { PROJECT_ROOT, projectPath } from "../../lib/util/paths.ts";
import { runExport } from "../../lib/cli/export.ts";

const options = { sanitizeResources: false, sanitizeOps: false };
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = `file://${dirname(fileURLToPath(import.meta.resolve("onnxruntime-web")))}/`;

/** 500 PrivateTest faces. */
async function faces() {
  const data = await loadDataset(resolveDataPath());
  return selectRows(data.splits.PrivateTest, Array.from({ length: 500 }, (_, i) => i));
}

/** The probabilities predict gives: the folded model's, calibrated by the metadata's temperature. */
async function tfjsProbabilities(loaded: LoadedModel, set: Awaited<ReturnType<typeof faces>>): Promise<Float32Array> {
  const raw = await predictSet(loaded.model, set);
  const k = loaded.metadata.labels.length;
  const out = new Float32Array(raw.length);
  for (let i = 0; i < set.n; i++) {
    out.set(calibrate(raw.subarray(i * k, (i + 1) * k), loaded.metadata.temperature), i * k);
  }
  return out;
}

/** onnxruntime's probabilities for the ONNX file `bytes` on `set`'s pixels (0-255, NHWC). */
async function onnxProbabilities(bytes: Uint8Array, set: Awaited<ReturnType<typeof faces>>): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const pixels = Float32Array.from(set.pixels);
  const { probabilities } = await session.run({ pixels: new ort.Tensor("float32", pixels, [set.n, 48, 48, 1]) });
  await session.release();
  return probabilities.data as Float32Array;
}

/** The ONNX checker of Debian's python3-onnx (the system Python), with full shape inference. */
async function checkOnnx(bytes: Uint8Array): Promise<void> {
  const file = join(Deno.makeTempDirSync(), "m.onnx");
  Deno.writeFileSync(file, bytes);
  const { code, stderr } = await new Deno.Command("/usr/bin/python3", {
    args: ["-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", file],
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

/** A saved net of `arch` with random BatchNorm statistics (so that folding them matters): its folder. */
async function randomNet(arch: string, seed: number): Promise<string> {
  const model = buildModel(arch, 48, seed);
  for (const layer of model.layers.filter((l) => l.getClassName() === "BatchNormalization")) {
    const n = layer.getWeights()[0].shape[0];
    layer.setWeights([
      tf.randomUniform([n], 0.5, 1.5, "float32", seed),
      tf.randomUniform([n], -0.2, 0.2, "float32", seed + 1),
      tf.randomUniform([n], -0.3, 0.3, "float32", seed + 2),
      tf.randomUniform([n], 0.5, 2, "float32", seed + 3),
    ]);
  }
  const dir = join(Deno.makeTempDirSync(), arch);
  await saveModel(dir, model, makeMetadata(model, arch, {}));
  model.dispose();
  return dir;
}

/** The largest difference between two arrays. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

Deno.test({
  name:
    "onnxruntime gives the tfjs probabilities within 1e-4 for every architecture, an ensemble and the shipped model",
  ...options,
  fn: async () => {
    await initBackend();
    const set = await faces();
    const dirs = await Promise.all(architectureNames().map((arch, i) => randomNet(arch, 10 + i)));
    const ensembleDir = join(Deno.makeTempDirSync(), "ensemble");
    const members = await Promise.all(dirs.slice(0, 2).map((dir) => loadModel(dir)));
    const ensemble = ensembleModel(members.map((m) => ({ arch: m.metadata.architecture, model: m.model })));
    await saveModel(ensembleDir, ensemble, makeMetadata(ensemble, "ensemble of compact, medium", {}));
    [ensemble, ...members.map((m) => m.model)].forEach((m) => m.dispose());
    const candidates: [string, LoadedModel][] = [
      ...await Promise.all(
        dirs.map(async (dir, i) =>
          [architectureNames()[i], await loadModel(dir, { fold: true })] as [string, LoadedModel]
        ),
      ),
      ["an ensemble (compact + medium)", await loadModel(ensembleDir, { fold: true })],
      ["outputs/model (with its temperature)", await loadModel(projectPath("outputs", "model"), { fold: true })],
    ];
    for (const [name, loaded] of candidates) {
      const bytes = await exportOnnx(loaded);
      await checkOnnx(bytes);
      const diff = maxDiff(await tfjsProbabilities(loaded, set), await onnxProbabilities(bytes, set));
      assert.ok(diff < 1e-4, `${name}: largest difference ${diff}`);
      loaded.model.dispose();
    }
  },
});

Deno.test({
  name: "the float16 export is within 1e-2 of the model, with the same answer on at least 99.5% of faces",
  ...options,
  fn: async () => {
    await initBackend();
    const set = await faces();
    const loaded = await loadModel(projectPath("outputs", "model"), { fold: true });
    const bytes = await exportOnnx(loaded, { float16: true });
    await checkOnnx(bytes);
    const want = await tfjsProbabilities(loaded, set), got = await onnxProbabilities(bytes, set);
    assert.ok(maxDiff(want, got) < 1e-2, `largest difference ${maxDiff(want, got)}`);
    const [a, b] = [argmaxRows(want, 7), argmaxRows(got, 7)];
    const same = a.filter((c, i) => c === b[i]).length / set.n;
    assert.ok(same >= 0.995, `the same answer on ${same}`);
    assert.ok(bytes.length < 0.6 * (await exportOnnx(loaded)).length, "about half the file");
    loaded.model.dispose();
  },
});

Deno.test({
  name: "export: a layer without an ONNX mapping, and a damaged model, get one line naming them and no file",
  ...options,
  fn: async () => {
    await initBackend();
    const input = tf.input({ shape: [48, 48, 1] });
    const flat = tf.layers.flatten({ name: "flat" }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 7, activation: "softmax" }).apply(flat) as tf.SymbolicTensor;
    const odd = tf.model({ inputs: input, outputs: out });
    const dir = join(Deno.makeTempDirSync(), "odd");
    await saveModel(dir, odd, makeMetadata(odd, "flat", {}));
    const file = join(dir, "odd.onnx");
    await assert.rejects(
      () => runExport(["--model", dir, "--out", file], () => {}),
      /cannot export to ONNX: no mapping for layer flat \(Flatten\)/,
    );
    assert.ok(!Deno.readDirSync(dir).some((e) => e.name.endsWith(".onnx")), "no file");
    Deno.writeFileSync(join(dir, "weights.bin"), new Uint8Array(10));
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", projectPath("lib", "cli", "export.ts"), "--model", dir, "--out", file],
      cwd: PROJECT_ROOT,
    }).output();
    assert.equal(code, 1);
    assert.match(
      new TextDecoder().decode(stderr),
      /^error: .*weights\.bin is damaged: 10 bytes where model\.json describes \d+\n$/,
    );
    assert.ok(!Deno.readDirSync(dir).some((e) => e.name.endsWith(".onnx")), "no file");
    odd.dispose();
  },
});
