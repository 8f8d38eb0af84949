import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { buildModel, ensembleModel } from "../../lib/model/architectures.ts";
import { foldBatchNorm } from "../../lib/core/fold.js";

/** Give every BatchNormalization layer moving statistics and scales far from their initial ones. */
function perturbNorms(model: tf.LayersModel, seed: number) {
  let s = seed;
  const next = () => (s = (s * 16807) % 2147483647) / 2147483647;
  for (const layer of model.layers.filter((l) => l.getClassName() === "BatchNormalization")) {
    layer.setWeights(
      layer.getWeights().map((w, i) =>
        tf.tensor(Float32Array.from({ length: w.size }, () => i === 3 ? 0.2 + 2 * next() : 2 * next() - 0.5), w.shape)
      ),
    );
  }
}

function outputs(model: tf.LayersModel, images: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(images) as tf.Tensor).dataSync() as Float32Array);
}

for (const arch of ["compact", "medium"]) {
  Deno.test(`foldBatchNorm: the ${arch} net predicts the same probabilities with no BatchNorm, ReLU or dropout layer left`, async () => {
    await initBackend();
    const model = buildModel(arch, 48, 3);
    perturbNorms(model, 7);
    const folded = foldBatchNorm(tf, model) as tf.LayersModel;
    const kinds = folded.layers.map((l) => l.getClassName());
    for (const gone of ["BatchNormalization", "ReLU", "Dropout"]) assert.ok(!kinds.includes(gone), `${gone} left`);
    const convs = (m: tf.LayersModel) => m.layers.filter((l) => l.getClassName() === "Conv2D").length;
    assert.equal(convs(folded), convs(model));
    for (const batch of [1, 40]) { // 40: more than the 32 images tfjs-layers predicts at a time
      const images = tf.randomUniform([batch, 48, 48, 1], -1, 1, "float32", batch);
      const [want, got] = [outputs(model, images), outputs(folded, images)];
      images.dispose();
      const spread = Math.max(...want) - Math.min(...want);
      assert.ok(spread > 0.05, `the probe's probabilities should differ by class (spread ${spread})`);
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `p[${i}] ${got[i]} vs ${want[i]}`);
      }
    }
    model.dispose();
    folded.dispose();
  });
}

Deno.test("foldBatchNorm: an ensemble folds every member, and the original still predicts after the folded is disposed", async () => {
  await initBackend();
  const members = [1, 2].map((seed) => ({ arch: "compact", model: buildModel("compact", 48, seed) }));
  members.forEach(({ model }, i) => perturbNorms(model, 11 + i));
  const ensemble = ensembleModel(members);
  const folded = foldBatchNorm(tf, ensemble) as tf.LayersModel;
  assert.ok(!folded.layers.some((l) => l.getClassName() === "BatchNormalization"));
  const images = tf.randomUniform([3, 48, 48, 1], -1, 1, "float32", 3);
  const want = outputs(ensemble, images), got = outputs(folded, images);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `p[${i}] ${got[i]} vs ${want[i]}`);
  folded.dispose();
  const again = outputs(ensemble, images);
  assert.deepEqual(Array.from(again), Array.from(want));
  images.dispose();
  ensemble.dispose();
  members.forEach(({ model }) => model.dispose());
});

Deno.test("foldBatchNorm: a convolution whose output feeds two layers keeps its BatchNorm", async () => {
  await initBackend();
  const input = tf.input({ shape: [8, 8, 4] });
  const conv = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: "same", useBias: false }).apply(input);
  const norm = tf.layers.batchNormalization().apply(conv) as tf.SymbolicTensor;
  const side = tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor;
  const main = tf.layers.globalAveragePooling2d({}).apply(norm) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: tf.layers.concatenate().apply([main, side]) as tf.SymbolicTensor });
  perturbNorms(model, 5);
  const folded = foldBatchNorm(tf, model) as tf.LayersModel;
  assert.ok(folded.layers.some((l) => l.getClassName() === "BatchNormalization"));
  const images = tf.randomUniform([2, 8, 8, 4], -1, 1, "float32", 9);
  const want = outputs(model, images), got = outputs(folded, images);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `y[${i}] ${got[i]} vs ${want[i]}`);
  images.dispose();
});
