import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { saliencyGridSvg, saliencyMaps } from "../../lib/eval/saliency.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";

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

Deno.test("the saliency grid shows, per class, the first right and first wrong face with their maps", async () => {
  await initBackend();
  const model = buildModel("compact");
  const n = 14;
  const set = {
    n,
    pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (i * 31) % 256),
    labels: Uint8Array.from({ length: n }, (_, i) => i % 7),
  };
  const predicted = Array.from(set.labels, (label, i) => (i < 7 ? label : (label + 1) % 7)); // right, then wrong
  const svg = await saliencyGridSvg(model, set, predicted, EMOTIONS, { samples: 2 });
  assert.equal(svg.match(/<image /g)?.length, 7 * 4, "four pictures a class");
  assert.equal(svg.match(/\(none\)/g), null);
  assert.ok(svg.includes(`>said ${EMOTIONS[1]}</text>`), "a wrong face is captioned with the model's answer");
  const allRight = await saliencyGridSvg(model, set, set.labels, EMOTIONS, { samples: 2 });
  assert.equal(allRight.match(/\(none\)/g)?.length, 7, "no wrong face: (none) in each class");
  model.dispose();
});
