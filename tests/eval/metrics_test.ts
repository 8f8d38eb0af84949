import { assert } from "../assert.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import {
  argmaxRows,
  buildReport,
  chanceWarning,
  confusionMatrix,
  formatReport,
  perClassMetrics,
} from "../../lib/eval/metrics.ts";

Deno.test("confusionMatrix counts rows = truth, columns = prediction", () => {
  const m = confusionMatrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3);
  assert.deepEqual(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]]);
});

Deno.test("perClassMetrics: precision, recall, F1 by hand", () => {
  const [c0, c1, c2] = perClassMetrics([[1, 1, 0], [0, 1, 0], [1, 0, 2]]);
  assert.deepEqual([c0.precision, c0.recall, c0.support], [0.5, 0.5, 2]);
  assert.deepEqual([c1.precision, c1.recall], [0.5, 1]);
  assert.ok(Math.abs(c1.f1 - 2 / 3) < 1e-12);
  assert.deepEqual([c2.precision, c2.recall], [1, 2 / 3]);
});

Deno.test("a class never predicted nor present gets zeros, not NaN", () => {
  const [, c1] = perClassMetrics([[2, 0], [0, 0]]);
  assert.deepEqual(c1, { precision: 0, recall: 0, f1: 0, support: 0 });
});

Deno.test("buildReport: accuracy, macro-F1, labels and sums", () => {
  const truth = [0, 1, 2, 3, 4, 5, 6, 6];
  const predicted = [0, 1, 2, 3, 4, 5, 6, 0];
  const r = buildReport("PrivateTest", truth, predicted, EMOTIONS);
  assert.equal(r.n, 8);
  assert.equal(r.accuracy, 7 / 8);
  assert.equal(r.labels.length, 7);
  assert.equal(r.confusion_matrix.flat().reduce((a, b) => a + b, 0), 8);
  const f1s = Object.values(r.per_class).map((m) => m.f1);
  assert.ok(Math.abs(r.macro_f1 - f1s.reduce((a, b) => a + b) / 7) < 1e-12);
  assert.match(formatReport(r), /accuracy 87\.50%/);
  assert.throws(() => buildReport("x", [0, 1], [0], EMOTIONS), /2 labels but 1 predictions/);
});

Deno.test("argmaxRows picks the largest entry of each row", () => {
  assert.deepEqual(Array.from(argmaxRows([0.1, 0.7, 0.2, 0.5, 0.2, 0.3], 3)), [1, 0]);
});

Deno.test("a report at chance (no better than always answering the commonest class) is warned about", () => {
  const truth = [0, 0, 0, 1, 2, 0, 0, 1];
  assert.match(
    chanceWarning(buildReport("PublicTest", truth, truth.map(() => 0), ["a", "b", "c"]))!,
    /accuracy 62\.50% is at chance \(always answering the most common class scores 62\.50%\)/,
  );
  assert.equal(chanceWarning(buildReport("PublicTest", truth, truth, ["a", "b", "c"])), undefined);
});

Deno.test("macro-F1 averages over the classes that have images; images without an answer count as wrong", () => {
  // Three classes, the third without images (CK+48's neutral): its F1 is not averaged in.
  const r = buildReport("ck", [0, 0, 1, 1], [0, 0, 1, 2], ["a", "b", "c"]);
  const { a, b } = r.per_class;
  assert.ok(Math.abs(r.macro_f1 - (a.f1 + b.f1) / 2) < 1e-12, `${r.macro_f1}`);
  // Two images of class a without a face: in n and a's support, wrong.
  const missed = buildReport("ck", [0, 0, 1, 1], [0, 0, 1, 1], ["a", "b"], [2, 0]);
  assert.equal(missed.n, 6);
  assert.equal(missed.accuracy, 4 / 6);
  assert.deepEqual([missed.per_class.a.support, missed.per_class.a.recall], [4, 0.5]);
  assert.deepEqual(missed.unanswered, [2, 0]);
  assert.match(formatReport(missed), /no answer \(no face found\): 2 images, counted as wrong/);
});
