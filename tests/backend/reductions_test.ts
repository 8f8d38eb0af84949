import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

/** Run `f` on wasm and on the cpu backend; both results as arrays. */
async function onBothBackends(f: () => tf.Tensor): Promise<[Float32Array, Float32Array, number[]]> {
  await initBackend();
  const wasm = tf.tidy(f);
  const shape = wasm.shape;
  const a = wasm.dataSync() as Float32Array;
  await tf.setBackend("cpu");
  const b = tf.tidy(f).dataSync() as Float32Array;
  await tf.setBackend("wasm");
  return [a, b, shape];
}

function assertClose(a: Float32Array, b: Float32Array, tolerance: number) {
  assert.equal(a.length, b.length);
  a.forEach((v, i) =>
    assert.ok(Math.abs(v - b[i]) <= tolerance * Math.max(1, Math.abs(b[i])), `[${i}] ${v} vs ${b[i]}`)
  );
}

for (const op of ["sum", "mean"] as const) {
  Deno.test(`${op} over the leading axes (BatchNorm statistics) matches the cpu backend, keepDims both ways`, async () => {
    const data = random(3 * 5 * 7 * 6, 1);
    for (const keepDims of [false, true]) {
      const [a, b, shape] = await onBothBackends(() => tf[op](tf.tensor4d(data, [3, 5, 7, 6]), [0, 1, 2], keepDims));
      assert.deepEqual(shape, keepDims ? [1, 1, 1, 6] : [6]);
      assertClose(a, b, 1e-5);
    }
    // Other reductions still go to the backend's own kernel.
    const [c, d] = await onBothBackends(() => tf[op](tf.tensor4d(data, [3, 5, 7, 6]), [1, 2]));
    assertClose(c, d, 1e-5);
  });
}

for (const [h, w, pad] of [[8, 6, "valid"], [7, 9, "valid"], [8, 8, "same"], [6, 10, "same"]] as const) {
  Deno.test(`MaxPoolGrad 2x2 stride 2 (${h}x${w}, ${pad}) matches the cpu backend`, async () => {
    const x = random(2 * h * w * 3, 2);
    const [a, b] = await onBothBackends(() =>
      tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, pad).square().sum())(tf.tensor4d(x, [2, h, w, 3]))
    );
    assertClose(a, b, 1e-6);
  });
}
