/** Candidates side by side: scoreCandidate's prior strengths are ship --balance's, and classChanges' arithmetic. */
import { assert } from "../assert.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { selectRows, stratifiedSample } from "../../lib/data/dataset.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { classChanges, scoreCandidate } from "../../lib/eval/candidates.ts";
import { projectPath } from "../../lib/util/paths.ts";
import { priorStrength } from "../../lib/model/model_io.ts";
import { shippedCheckpoints } from "../../lib/ship/ship.ts";
import { renderSvg, tradeoffSpec } from "../../lib/util/charts.ts";

/** The checkpoint shipped to `outputs/NAME` (its run's best/, as trained) and the prior strength it was shipped at. */
function shipped(name: string): { trained: string; strength: number } {
  const metadata = JSON.parse(Deno.readTextFileSync(projectPath("outputs", name, "metadata.json")));
  const [trained] = shippedCheckpoints(metadata);
  return { trained: projectPath(trained), strength: priorStrength(metadata) };
}

Deno.test("the default's run checkpoint moved to its shipped prior strength scores as the default; strengths in any order; changes add up", async () => {
  await initBackend();
  const data = await loadDataset(resolveDataPath());
  const set = selectRows(data.splits.PublicTest, stratifiedSample(data.splits.PublicTest.labels, 600, 3));
  const sets = [{ name: "PublicTest", set }];
  // outputs/model is its run's best/ shipped with part of the training prior put back (ship --balance-strength S).
  const { trained, strength } = shipped("model");
  assert.ok(strength !== 0, `outputs/model is shipped at prior strength ${strength}`);
  const [asTrained, shifted, again] = await scoreCandidate(trained, [0, strength, 0], sets, EMOTIONS);
  const [shippedScore] = await scoreCandidate(projectPath("outputs", "model"), [0], sets, EMOTIONS);
  assert.equal(shippedScore.model, "outputs/model");
  assert.equal(shifted.strength, strength);
  assert.deepEqual(shifted.reports.PublicTest.confusion_matrix, shippedScore.reports.PublicTest.confusion_matrix);
  assert.deepEqual(again.reports.PublicTest.confusion_matrix, asTrained.reports.PublicTest.confusion_matrix);
  assert.notDeepEqual(shifted.reports.PublicTest.confusion_matrix, asTrained.reports.PublicTest.confusion_matrix);
  // From the lower strength to the higher: toward balanced classes.
  const [plain, balanced] = strength < 0 ? [shifted, asTrained] : [asTrained, shifted];
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
