import * as tf from "@tensorflow/tfjs";
import { assert } from "../assert.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { buildModel, ensembleModel } from "../../lib/model/architectures.ts";
import {
  applyTemperature,
  balanceClasses,
  classPrior,
  expectedCalibrationError,
  fitTemperature,
  reliabilityBins,
} from "../../lib/eval/calibration.ts";

/** Predictions that are right 60% of the time but always claim `confidence` for their pick. */
function overconfident(n: number, confidence: number): { probabilities: Float32Array; labels: Uint8Array } {
  const classes = 3, probabilities = new Float32Array(n * classes), labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    probabilities.set([confidence, (1 - confidence) / 2, (1 - confidence) / 2], i * classes);
    labels[i] = i % 10 < 6 ? 0 : 1 + (i % 2);
  }
  return { probabilities, labels };
}

Deno.test("ECE is the gap between claimed confidence and accuracy; reliability bins count every prediction", () => {
  const { probabilities, labels } = overconfident(1000, 0.95);
  assert.ok(Math.abs(expectedCalibrationError(probabilities, labels, 3) - 0.35) < 1e-6);
  const bins = reliabilityBins(probabilities, labels, 3, 10);
  assert.equal(bins.reduce((n, b) => n + b.count, 0), 1000);
  assert.ok(Math.abs(bins[9].accuracy - 0.6) < 1e-9 && Math.abs(bins[9].confidence - 0.95) < 1e-6);
});

Deno.test("temperature scaling fitted on overconfident predictions cools them: T > 1, ECE falls, argmax kept", () => {
  const { probabilities, labels } = overconfident(1000, 0.95);
  const t = fitTemperature(probabilities, labels, 3);
  assert.ok(t > 1, `T = ${t}`);
  const scaled = applyTemperature(probabilities, 3, t);
  assert.ok(Math.abs(scaled[0] - 0.6) < 0.01, `calibrated confidence ${scaled[0]}`);
  assert.ok(expectedCalibrationError(scaled, labels, 3) < 0.01);
  const identity = applyTemperature(probabilities, 3, 1);
  assert.deepEqual(Array.from(identity), Array.from(probabilities));
});

Deno.test("balancing divides each class's probability by its training share (every member of an ensemble)", async () => {
  await initBackend();
  const prior = [0.4, 0.02, 0.1, 0.2, 0.1, 0.08, 0.1];
  const x = tf.randomUniform([5, 48, 48, 1], 0, 1, "float32", 7);
  const single = buildModel("compact");
  const before = single.predict(x) as tf.Tensor2D;
  assert.equal(balanceClasses(single, prior), 1);
  const after = single.predict(x) as tf.Tensor2D;
  const expected = tf.tidy(() => {
    const divided = before.div(tf.tensor1d(prior));
    return divided.div(divided.sum(1, true));
  });
  const gap = tf.tidy(() => after.sub(expected).abs().max().dataSync()[0]);
  assert.ok(gap < 1e-5, `balanced probabilities are ${gap} from p / prior, renormalized`);
  const ensemble = ensembleModel([{ arch: "compact", model: single }, {
    arch: "compact",
    model: buildModel("compact"),
  }]);
  assert.equal(balanceClasses(ensemble, prior), 2, "both members' outputs");
  // Half the strength divides by the prior's square root; -0.5 then undoes it.
  const half = buildModel("compact");
  const plain = half.predict(x) as tf.Tensor2D;
  balanceClasses(half, prior, 0.5);
  const halfway = half.predict(x) as tf.Tensor2D;
  const want = tf.tidy(() => {
    const divided = plain.div(tf.tensor1d(prior).sqrt());
    return divided.div(divided.sum(1, true));
  });
  assert.ok(tf.tidy(() => halfway.sub(want).abs().max().dataSync()[0]) < 1e-5, "strength 0.5: p / sqrt(prior)");
  balanceClasses(half, prior, -0.5);
  assert.ok(
    tf.tidy(() => (half.predict(x) as tf.Tensor).sub(plain).abs().max().dataSync()[0]) < 1e-5,
    "-0.5 undoes 0.5",
  );
  tf.dispose([plain, halfway, want]);
  half.dispose();
  assert.throws(() => balanceClasses(single, [0.5, 0.5]), /no softmax output of 2 classes/);
  tf.dispose([x, before, after, expected]);
  single.dispose();
  ensemble.dispose();
});

Deno.test("the class prior is each class's share of the set, and a class without images is refused by name", () => {
  const set = { n: 4, pixels: new Uint8Array(4 * 2304), labels: Uint8Array.from([0, 0, 0, 1]) };
  assert.deepEqual(classPrior(set, ["a", "b"]), [0.75, 0.25]);
  assert.throws(() => classPrior(set, ["a", "b", "c"]), /--balance: no training images of c; cannot balance/);
});
