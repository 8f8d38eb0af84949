import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { featureModel, principalComponents } from "../../lib/eval/explorer.ts";
import { buildModel, ensembleModel } from "../../lib/model/architectures.ts";
import { seededRandom } from "../../lib/util/random.ts";

Deno.test("PCA finds the direction of most variance first, and its share of the variance", () => {
  // Points a*u + b*w + noise in 5-D, with a's spread 10x b's: PC1 ~ a, PC2 ~ b.
  const random = seededRandom(3);
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const u = [1, 1, 0, 0, 0].map((v) => v / Math.SQRT2), w = [0, 0, 1, -1, 1].map((v) => v / Math.sqrt(3));
  const n = 400, d = 5;
  const a = Array.from({ length: n }, () => 10 * normal()), b = Array.from({ length: n }, () => normal());
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) x[i * d + j] = 5 + a[i] * u[j] + b[i] * w[j] + 0.01 * normal();
  }
  const { projection, explained } = principalComponents(x, n, d);
  const correlation = (p: number[], q: number[]) => {
    const mp = p.reduce((s, v) => s + v, 0) / n, mq = q.reduce((s, v) => s + v, 0) / n;
    let pq = 0, pp = 0, qq = 0;
    for (let i = 0; i < n; i++) {
      [pq, pp, qq] = [pq + (p[i] - mp) * (q[i] - mq), pp + (p[i] - mp) ** 2, qq + (q[i] - mq) ** 2];
    }
    return pq / Math.sqrt(pp * qq);
  };
  const pc = (k: number) => Array.from({ length: n }, (_, i) => projection[2 * i + k]);
  assert.ok(Math.abs(correlation(pc(0), a)) > 0.999, "PC1 follows the widest direction");
  assert.ok(Math.abs(correlation(pc(1), b)) > 0.99, "PC2 follows the second");
  const varianceA = a.reduce((s, v) => s + v * v, 0), varianceB = b.reduce((s, v) => s + v * v, 0);
  assert.ok(Math.abs(explained[0] - varianceA / (varianceA + varianceB)) < 0.01, `PC1 explains ${explained[0]}`);
  assert.ok(explained[0] + explained[1] <= 1 + 1e-9);
});

Deno.test("the feature model outputs what the classifier sees: one head's input, or every member's, concatenated", async () => {
  await initBackend();
  const single = buildModel("compact", 48, 1);
  const head = single.layers[single.layers.length - 1];
  const width = (head.input as tf.SymbolicTensor).shape[1] as number;
  const images = tf.randomUniform([2, 48, 48, 1], 0, 1, "float32", 2) as tf.Tensor4D;
  const features = featureModel(single).predict(images) as tf.Tensor;
  assert.deepEqual(features.shape, [2, width]);
  // The head applied to the features gives the model's own output.
  const again = head.apply(features) as tf.Tensor, direct = single.predict(images) as tf.Tensor;
  assert.ok(tf.max(tf.abs(again.sub(direct))).dataSync()[0] < 1e-5);
  const ensemble = ensembleModel([1, 2].map((seed) => ({ arch: "compact", model: buildModel("compact", 48, seed) })));
  const both = featureModel(ensemble).predict(images) as tf.Tensor;
  assert.deepEqual(both.shape, [2, 2 * width]);
  tf.dispose([images, features, again, direct, both]);
});
