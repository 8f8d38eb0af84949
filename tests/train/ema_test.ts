/** The weight average (--ema): its update, its place in a checkpoint's optimizer state, and the averaged model. */
import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { averagedWeights, emaDecay, splitEmaState, WeightEma } from "../../lib/train/ema.ts";
import { Stepper } from "../../lib/train/stepper.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { IMAGE_SIZE } from "../../lib/data/dataset.ts";
import { tinyFaceSet } from "./tiny_set.ts";

const slots = [{ name: "k", shape: [2, 2], decay: true }, { name: "b", shape: [2], decay: false }];

Deno.test("WeightEma folds each step in with the warmed-up decay, and round-trips through its saved entries", () => {
  assert.equal(emaDecay(0.999, 0), 0.1);
  assert.equal(emaDecay(0.999, 1e6), 0.999);
  const ema = new WeightEma(0.5, slots, new Float32Array(6));
  const weights = Float32Array.from([1, 2, 3, 4, 5, 6]);
  ema.update(weights); // decay 0.1: 90% of the way
  ema.update(weights); // decay 2/11
  const after = 0.9 + 0.1 * (1 - 2 / 11);
  Array.from(ema.average).forEach((a, i) => assert.ok(Math.abs(a - weights[i] * after) < 1e-6, `slot ${i}: ${a}`));
  const saved = ema.getWeights();
  assert.deepEqual(saved.map((w) => w.name), ["ema/updates", "ema/k", "ema/b"]);
  const restored = new WeightEma(0.5, slots, new Float32Array(6));
  restored.setWeights(saved);
  assert.equal(restored.updates, 2);
  assert.deepEqual(Array.from(restored.average), Array.from(ema.average));
  assert.throws(() => restored.setWeights(saved.slice(0, 2)), /holds 1 slots, want 2/);
});

Deno.test("a stepper with --ema saves its average beside Adam's state, and the averaged model takes it", async () => {
  await initBackend();
  const model = buildModel("compact", IMAGE_SIZE, 3);
  const train = tinyFaceSet();
  const options = { labelSmoothing: 0, augment: false, weightDecay: 0, ema: 0.9 };
  const stepper = await Stepper.create(model, train, options);
  // The average of the first kernel, followed by hand from the weights after each step.
  const expected = Float64Array.from(model.trainableWeights[0].read().dataSync());
  for (let i = 0; i < 3; i++) {
    const { gradients } = await stepper.computeGradients([0, 1, 2, 3, 4, 5, 6, 7], i);
    stepper.applyGradients(gradients, 0.01);
    const keep = emaDecay(0.9, i), now = model.trainableWeights[0].read().dataSync();
    for (let j = 0; j < expected.length; j++) expected[j] += (1 - keep) * (now[j] - expected[j]);
  }
  const state = stepper.optimizerWeights();
  const { optimizer, ema } = splitEmaState(state);
  assert.equal(optimizer[0].name, "iter");
  assert.equal(ema.length, 1 + model.trainableWeights.length);
  const averaged = averagedWeights(model, state)!;
  assert.equal(averaged.length, model.weights.length);
  const avg = averaged[0].dataSync(), now = model.trainableWeights[0].read().dataSync();
  avg.forEach((a, j) => assert.ok(Math.abs(a - expected[j]) < 1e-5, `kernel ${j}: ${a} vs ${expected[j]}`));
  assert.ok(avg.some((a, j) => a !== now[j]), "the average should trail the weights");
  const copy = buildModel("compact", IMAGE_SIZE, 4);
  copy.setWeights(averaged); // same order as setWeights wants: throws on a mismatch of shapes
  assert.deepEqual(Array.from(copy.trainableWeights[0].read().dataSync()), Array.from(avg));
  // A checkpoint's state resumes the average; one without an average starts none in the model.
  const resumed = await Stepper.create(model, train, options, state);
  assert.deepEqual(resumed.optimizerWeights().map((w) => w.data), state.map((w) => w.data));
  assert.equal(averagedWeights(model, optimizer), undefined);
  tf.dispose(averaged);
  copy.dispose();
  model.dispose();
});
