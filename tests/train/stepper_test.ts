/** A training step: with the same seed it repeats exactly, dropout masks included (a resumed or repeated run reproduces). */
import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { Stepper } from "../../lib/train/stepper.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { dropout, withDropoutRandom } from "../../lib/model/layers.ts";
import { IMAGE_SIZE } from "../../lib/data/dataset.ts";
import { seededRandom } from "../../lib/util/random.ts";
import { tinyFaceSet } from "./tiny_set.ts";

Deno.test("a step's gradients repeat with its seed and change with another (dropout masks seeded)", async () => {
  await initBackend();
  const model = buildModel("compact", IMAGE_SIZE, 3);
  const train = tinyFaceSet();
  // No augmentation: only the dropout masks differ between seeds.
  const stepper = await Stepper.create(model, train, { labelSmoothing: 0, augment: false, weightDecay: 0 });
  const rows = [0, 1, 2, 3, 4, 5, 6, 7];
  const [a, b, c] = [
    await stepper.computeGradients(rows, 7),
    await stepper.computeGradients(rows, 7),
    await stepper.computeGradients(rows, 8),
  ];
  assert.equal(a.loss, b.loss);
  assert.deepEqual(Array.from(a.gradients), Array.from(b.gradients));
  assert.ok(a.gradients.some((g, i) => g !== c.gradients[i]), "another seed should draw other dropout masks");
  model.dispose();
});

Deno.test("dropout masks are seeded where the native kernel does not apply too (tfjs's dropout, as on WebGPU)", async () => {
  await initBackend();
  await tf.setBackend("cpu");
  try {
    const layer = dropout({ rate: 0.5 });
    const x = tf.ones([4, 6, 6, 8]);
    const mask = (seed: number) =>
      withDropoutRandom(
        seededRandom(seed),
        () => tf.tidy(() => (layer.apply(x, { training: true }) as tf.Tensor).dataSync()),
      );
    const [a, b, c] = [mask(7), mask(7), mask(8)];
    x.dispose();
    assert.ok(a.some((v) => v === 0) && a.some((v) => v !== 0), "a training pass drops some values and keeps others");
    assert.deepEqual(Array.from(a), Array.from(b));
    assert.ok(a.some((v, i) => v !== c[i]), "another seed should draw another mask");
  } finally {
    await tf.setBackend("wasm");
  }
});
