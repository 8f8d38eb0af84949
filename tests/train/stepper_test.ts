/** A training step: with the same seed it repeats exactly, dropout masks included (a resumed or repeated run reproduces). */
import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { Stepper } from "../../lib/train/stepper.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { dropout, withDropoutRandom } from "../../lib/model/layers.ts";
import { IMAGE_SIZE } from "../../lib/data/dataset.ts";
import { seededRandom } from "../../lib/util/random.ts";
import { tinyFaceSet } from "./tiny_set.ts";
import { makeMetadata, saveModel } from "../../lib/model/model_io.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { loadTeacher } from "../../lib/train/distill.ts";
import { predictSet } from "../../lib/eval/evaluate.ts";
import { join } from "node:path";

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

/** A net without dropout, the same each time: the images and targets alone make its gradients. */
function net(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [IMAGE_SIZE, IMAGE_SIZE, 1] }),
      tf.layers.dense({
        units: 7,
        activation: "softmax",
        kernelInitializer: tf.initializers.randomNormal({ seed: 1, stddev: 0.01 }),
      }),
    ],
  });
}

Deno.test("with the teacher's views, a step shows each image in its stored view and teaches that view's target", async () => {
  await initBackend();
  const n = 4, rows = [3, 0, 2, 1];
  const teacher = Float32Array.from({ length: n * 7 }, (_, i) => ((i * 5 + 3 * Math.floor(i / 7)) % 7 + 1) / 28);
  const identity = [1, 0, 0, 0, 1, 0, 0, 0];
  // Two views of each image, both the image as it is and both taught the same: the same step as no augmentation.
  const twice = Float32Array.from({ length: n * 2 * 7 }, (_, i) => teacher[i % (n * 7)]);
  const viewed = {
    ...tinyFaceSet(n),
    teacher: twice,
    teacherViews: Float32Array.from({ length: n * 2 * 8 }, (_, i) => identity[i % 8]),
  };
  const plain = { ...tinyFaceSet(n), teacher };
  const options = { labelSmoothing: 0, weightDecay: 0, distill: 1 };
  const [a, b, c] = [net(), net(), net()];
  const withViews = await (await Stepper.create(a, viewed, { ...options, augment: true })).computeGradients(rows, 5);
  const asIs = await (await Stepper.create(b, plain, { ...options, augment: false })).computeGradients(rows, 5);
  assert.ok(Math.abs(withViews.loss - asIs.loss) < 1e-6, `${withViews.loss} vs ${asIs.loss}`);
  withViews.gradients.forEach((g, i) => assert.ok(Math.abs(g - asIs.gradients[i]) < 1e-5, `gradient ${i}`));
  // Augmented at random instead, the same step moves.
  const random = await (await Stepper.create(c, plain, { ...options, augment: true })).computeGradients(rows, 5);
  assert.ok(Math.abs(random.loss - asIs.loss) > 1e-6, "random views should change the step");
  [a, b, c].forEach((model) => model.dispose());
});

Deno.test("--teacher-each-step: the teacher reads the step's images, and teaches what it reads there", async () => {
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "teacher");
  const saved = buildModel("compact", IMAGE_SIZE, 9);
  await saveModel(dir, saved, makeMetadata(saved, "compact", {}));
  saved.dispose();
  const n = 4, rows = [3, 0, 2, 1];
  const teacher = await loadTeacher(dir, EMOTIONS);
  const stored = { ...tinyFaceSet(n), teacher: await predictSet(teacher, tinyFaceSet(n)) };
  teacher.dispose();
  // Without augmentation the step shows the images as they are: the same step as the stored probabilities.
  const options = { labelSmoothing: 0, weightDecay: 0, distill: 1, augment: false };
  const live = await Stepper.create(net(), tinyFaceSet(n), { ...options, teachers: { dirs: [dir], labels: EMOTIONS } });
  const once = await Stepper.create(net(), stored, options);
  const [a, b] = [await live.computeGradients(rows, 5), await once.computeGradients(rows, 5)];
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `${a.loss} vs ${b.loss}`);
  a.gradients.forEach((g, i) => assert.ok(Math.abs(g - b.gradients[i]) < 1e-4, `gradient ${i}`));
  // Augmented, it teaches its reading of the moved images, not the stored one of the images as they are.
  const moved = await Stepper.create(net(), tinyFaceSet(n), {
    ...options,
    augment: true,
    teachers: { dirs: [dir], labels: EMOTIONS },
  });
  const still = await Stepper.create(net(), stored, { ...options, augment: true });
  const [c, d] = [await moved.computeGradients(rows, 5), await still.computeGradients(rows, 5)];
  assert.ok(Math.abs(c.loss - d.loss) > 1e-6, "the same moved images, other targets: another loss");
  // A teacher of other classes is refused, naming it.
  await assert.rejects(
    () => Stepper.create(net(), tinyFaceSet(n), { ...options, teachers: { dirs: [dir], labels: ["a", "b"] } }),
    /--teacher .*teacher: its classes/,
  );
  [live, once, moved, still].forEach((s) => s.dispose());
});
