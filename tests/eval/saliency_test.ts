import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { saliencyMaps } from "../../lib/eval/saliency.ts";

Deno.test("a network that only sees the left half of the image gives no saliency on the right half", async () => {
  await initBackend();
  const input = tf.input({ shape: [8, 8, 1] });
  const left = tf.layers.cropping2D({ cropping: [[0, 0], [0, 4]] }).apply(input) as tf.SymbolicTensor;
  const flat = tf.layers.flatten().apply(left) as tf.SymbolicTensor;
  const output = tf.layers.dense({
    units: 7,
    activation: "softmax",
    kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }),
  })
    .apply(flat) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  const images = tf.randomUniform([3, 8, 8, 1], 0, 1, "float32", 5) as tf.Tensor4D;
  const maps = await saliencyMaps(model, images, undefined, { samples: 4 });
  assert.equal(maps.length, 3 * 64);
  for (let i = 0; i < 3; i++) {
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const v = maps[i * 64 + y * 8 + x];
        if (x >= 4) assert.equal(v, 0, `image ${i} (${x}, ${y}) on the right half`);
        else assert.ok(v >= 0 && v <= 1);
      }
    }
    const leftMax = Math.max(...maps.subarray(i * 64, (i + 1) * 64));
    assert.ok(Math.abs(leftMax - 1) < 1e-5, "each map is scaled to its maximum");
  }
  tf.dispose([images]);
  model.dispose();
});
