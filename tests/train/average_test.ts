import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { batchNormalization } from "../../lib/model/layers.ts";
import { IMAGE_SIZE, PIXELS } from "../../lib/data/dataset.ts";
import { meanWeights, recomputeBatchNorm } from "../../lib/train/average.ts";

Deno.test("meanWeights averages element by element and refuses mismatched sizes", () => {
  const a = [new Float32Array([1, 2]), new Float32Array([3])];
  const b = [new Float32Array([3, 6]), new Float32Array([-3])];
  assert.deepEqual(meanWeights([a, b]).map((w) => [...w]), [[2, 4], [0]]);
  assert.throws(() => meanWeights([a, [new Float32Array([1]), new Float32Array([3])]]), /weight 0 differs in size/);
  assert.throws(() => meanWeights([]), /no weights/);
});

Deno.test("recomputeBatchNorm sets moving statistics to the mean of the batch statistics", async () => {
  await initBackend();
  const input = tf.input({ shape: [IMAGE_SIZE, IMAGE_SIZE, 1] });
  const model = tf.model({ inputs: input, outputs: batchNormalization({}).apply(input) as tf.SymbolicTensor });
  const n = 10, batchSize = 4;
  const pixels = new Uint8Array(n * PIXELS).map((_, i) => (i * 7919) % 256);
  recomputeBatchNorm(model, { n, pixels, labels: new Uint8Array(n) }, batchSize);

  const batchMeans: number[] = [], batchVariances: number[] = [];
  for (let start = 0; start < n; start += batchSize) {
    const values = [...pixels.subarray(start * PIXELS, Math.min(start + batchSize, n) * PIXELS)].map((p) => p / 255);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    batchMeans.push(mean);
    batchVariances.push(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
  }
  const average = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const [, , movingMean, movingVariance] = model.getWeights().map((w) => w.dataSync()[0]);
  assert.ok(Math.abs(movingMean - average(batchMeans)) < 1e-4, `moving mean ${movingMean}`);
  assert.ok(Math.abs(movingVariance - average(batchVariances)) < 1e-4, `moving variance ${movingVariance}`);
  const layer = model.layers[1] as unknown as { momentum: number };
  assert.equal(layer.momentum, 0.99, "the layer's own momentum is restored");
  model.dispose();
});
