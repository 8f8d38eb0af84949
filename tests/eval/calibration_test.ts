import { assert } from "../assert.ts";
import {
  applyTemperature,
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
