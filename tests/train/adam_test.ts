import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { FlatAdam } from "../../lib/train/adam.ts";

const shapes = [[3, 3, 2, 4], [4], [5, 7]];

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

Deno.test("FlatAdam takes the same steps as tfjs's Adam, and its state loads into tfjs's Adam", async () => {
  await initBackend();
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b));
  const total = sizes.reduce((a, b) => a + b);
  const variables = shapes.map((shape, i) => tf.variable(tf.tensor(random(sizes[i], i + 1), shape), true, `w${i}`));
  const flat = new Float32Array(total);
  flat.set(variables.flatMap((v) => Array.from(v.dataSync())));
  const reference = tf.train.adam(0.01);
  const adam = new FlatAdam(shapes.map((shape, i) => ({ name: `w${i}`, shape, decay: false })));
  for (let step = 0; step < 5; step++) {
    const gradients = random(total, 100 + step);
    let offset = 0;
    reference.applyGradients(variables.map((v, i) => {
      const tensor = tf.tensor(gradients.subarray(offset, offset + sizes[i]), shapes[i]);
      offset += sizes[i];
      return { name: v.name, tensor };
    }));
    adam.step(flat, gradients, 0.01);
  }
  const want = variables.flatMap((v) => Array.from(v.dataSync()));
  want.forEach((w, i) => assert.ok(Math.abs(flat[i] - w) < 1e-6, `weight ${i}: ${flat[i]} vs ${w}`));
  // The state round-trips through tfjs's own layout.
  const saved = adam.getWeights();
  const refState = await reference.getWeights();
  assert.deepEqual(saved.map((w) => w.data.length), refState.map((w) => w.tensor.size));
  const restored = new FlatAdam(adam.slots);
  restored.setWeights(saved);
  assert.equal(restored.iterations, 5);
  assert.deepEqual(Array.from(restored.v), Array.from(adam.v));
  assert.throws(() => restored.setWeights(saved.slice(0, 3)), /moments/);
  tf.dispose(variables);
});

Deno.test("FlatAdam's weight decay shrinks only the slots marked for it", () => {
  const adam = new FlatAdam([{ name: "k", shape: [2], decay: true }, { name: "b", shape: [2], decay: false }], {
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    weightDecay: 0.1,
  });
  const weights = Float32Array.of(1, 1, 1, 1);
  adam.step(weights, new Float32Array(4), 0.5);
  assert.ok(Math.abs(weights[0] - 0.95) < 1e-7 && Math.abs(weights[1] - 0.95) < 1e-7);
  assert.deepEqual(Array.from(weights.subarray(2)), [1, 1]);
});
