/** Candidates side by side: scoreCandidate's prior strengths are ship --balance's, and classChanges' arithmetic. */
import { assert } from "../assert.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { selectRows, stratifiedSample } from "../../lib/data/dataset.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { classChanges, scoreCandidate } from "../../lib/eval/candidates.ts";
import { projectPath } from "../../lib/util/paths.ts";
import { priorStrength } from "../../lib/model/model_io.ts";
import { renderSvg, tradeoffSpec } from "../../lib/util/charts.ts";

/** The prior strength the model shipped to `outputs/NAME` carries. */
function shippedStrength(name: string): number {
  return priorStrength(JSON.parse(Deno.readTextFileSync(projectPath("outputs", name, "metadata.json"))));
}

Deno.test("a candidate moved to its balanced twin's strength scores as its shipped balanced twin; strengths in any order; changes add up", async () => {
  await initBackend();
  const data = await loadDataset(resolveDataPath());
  const set = selectRows(data.splits.PublicTest, stratifiedSample(data.splits.PublicTest.labels, 600, 3));
  const sets = [{ name: "PublicTest", set }];
  // outputs/model-balanced is outputs/model's net shipped at a higher prior strength (ship --balance-strength).
  const gap = shippedStrength("model-balanced") - shippedStrength("model");
  assert.ok(gap > 0, `model-balanced is shipped ${gap} above outputs/model's strength`);
  const [plain, balanced, again] = await scoreCandidate(projectPath("outputs", "model"), [0, gap, 0], sets, EMOTIONS);
  const [twin] = await scoreCandidate(projectPath("outputs", "model-balanced"), [0], sets, EMOTIONS);
  assert.equal(plain.model, "outputs/model");
  assert.equal(balanced.strength, gap);
  assert.deepEqual(balanced.reports.PublicTest.confusion_matrix, twin.reports.PublicTest.confusion_matrix);
  assert.deepEqual(again.reports.PublicTest.confusion_matrix, plain.reports.PublicTest.confusion_matrix);
  assert.notDeepEqual(balanced.reports.PublicTest.confusion_matrix, plain.reports.PublicTest.confusion_matrix);
  const changes = classChanges(plain.reports.PublicTest, balanced.reports.PublicTest);
  assert.equal(changes.length, EMOTIONS.length);
  const withoutNeutral = { ...plain.reports.PublicTest, per_class: { ...plain.reports.PublicTest.per_class } };
  withoutNeutral.per_class.neutral = { ...withoutNeutral.per_class.neutral, support: 0 };
  assert.deepEqual(classChanges(withoutNeutral, withoutNeutral).map((c) => c.class), EMOTIONS.slice(0, 6));
  const gained = changes.reduce((sum, c) => sum + c.change * c.images, 0) / 100 / set.n;
  const moved = balanced.reports.PublicTest.accuracy - plain.reports.PublicTest.accuracy;
  assert.ok(Math.abs(gained - moved) < 1e-3, `per-class changes weigh to ${gained}, accuracy moved ${moved}`);
  assert.ok(changes.find((c) => c.class === "disgust")!.change >= 0, "balancing does not cost the rarest class");
  await assert.rejects(
    () => scoreCandidate(projectPath("outputs", "model-ferplus"), [0], sets, EMOTIONS),
    /outputs\/model-ferplus: its classes \(.*contempt\) are not the sets'/,
  );
  await assert.rejects(
    () => scoreCandidate(projectPath("outputs", "model"), [0, NaN], sets, EMOTIONS),
    /a prior strength must be a number \(got NaN\)/,
  );
  const other = { ...plain.reports.PublicTest, n: 1 };
  assert.throws(() => classChanges(plain.reports.PublicTest, other), /not of the same images/);
  const points = [plain, balanced].map((s) => ({
    model: s.model,
    strength: s.strength,
    x: 100 * s.reports.PublicTest.accuracy,
    y: 100 * s.reports.PublicTest.macro_f1,
  }));
  const svg = await renderSvg(tradeoffSpec(points, { x: "PublicTest", y: "macro-F1" }, { y: 50 }));
  assert.match(svg, /<svg/);
});
