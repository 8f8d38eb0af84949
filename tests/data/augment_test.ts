import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { augmentBatch, augmentMatrix, DEFAULT_AUGMENT } from "../../lib/data/augment.ts";
import { seededRandom } from "../../lib/util/random.ts";
import { batchNormTraining } from "../../lib/model/layers.ts";

const identity = { flip: false, degrees: 0, scale: 1, shiftX: 0, shiftY: 0 };

function transform(x: tf.Tensor4D, m: number[]) {
  return tf.image.transform(x, tf.tensor2d([m]), "bilinear", "nearest");
}

Deno.test("augmentMatrix: identity leaves the image alone; flip mirrors it; a shift moves it", async () => {
  await initBackend();
  const x = tf.randomUniform([1, 48, 48, 1]) as tf.Tensor4D;
  assert.deepEqual(Array.from(transform(x, augmentMatrix(48, identity)).dataSync()), Array.from(x.dataSync()));
  const flipped = transform(x, augmentMatrix(48, { ...identity, flip: true }));
  assert.deepEqual(Array.from(flipped.dataSync()), Array.from(tf.image.flipLeftRight(x).dataSync()));
  const shifted = transform(x, augmentMatrix(48, { ...identity, shiftX: 3 })).dataSync();
  assert.equal(shifted[10 * 48 + 5], x.dataSync()[10 * 48 + 8]);
});

Deno.test("augmentBatch is seeded, keeps the shape and changes the pixels", async () => {
  await initBackend();
  const x = tf.randomUniform([8, 48, 48, 1]) as tf.Tensor4D;
  const a = augmentBatch(x, DEFAULT_AUGMENT, seededRandom(3));
  const b = augmentBatch(x, DEFAULT_AUGMENT, seededRandom(3));
  assert.deepEqual(a.shape, [8, 48, 48, 1]);
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  assert.ok(tf.sub(a, x).abs().mean().dataSync()[0] > 0.01);
});

Deno.test("batchNormTraining's hand-written gradient equals autodiff of moments + batchNorm", async () => {
  await initBackend();
  const x = tf.randomNormal([4, 5, 5, 3]), dy = tf.randomNormal([4, 5, 5, 3]);
  const gamma = tf.randomNormal([3]) as tf.Tensor1D, beta = tf.randomNormal([3]) as tf.Tensor1D;
  const reference = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const m = tf.moments(xx, [0, 1, 2]);
    return tf.batchNorm(xx, m.mean, m.variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3).mul(dy).sum();
  };
  const fast = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { y, mean, variance } = batchNormTraining(xx, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
    tf.dispose([mean, variance]);
    return y.mul(dy).sum();
  };
  const want = tf.grads(reference)([x, gamma, beta]), got = tf.grads(fast)([x, gamma, beta]);
  want.forEach((w, i) => assert.ok(tf.sub(w, got[i]).abs().max().dataSync()[0] < 1e-4, `gradient ${i}`));
});
