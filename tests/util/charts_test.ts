import { assert } from "../assert.ts";
import { join } from "node:path";
import { EMOTIONS } from "../../lib/data/labels.ts";
import {
  classDistributionSpec,
  confusionMatricesSpec,
  learningCurvesSpec,
  perClassSpec,
  renderSvg,
  saveChart,
} from "../../lib/util/charts.ts";

const history = [1, 2, 3].map((epoch) => ({
  epoch,
  loss: 2 - epoch / 10,
  accuracy: 0.2 + epoch / 20,
  val_loss: 2.1 - epoch / 10,
  val_accuracy: 0.2 + epoch / 25,
  lr: 0.001,
  seconds: 10,
}));

Deno.test("learning curves render to SVG and PNG files", async () => {
  const base = join(Deno.makeTempDirSync(), "curves");
  await saveChart(learningCurvesSpec(history), base);
  const svg = Deno.readTextFileSync(`${base}.svg`);
  assert.match(svg, /^<svg/);
  assert.match(svg, /accuracy/);
  const png = Deno.readFileSync(`${base}.png`);
  assert.deepEqual(Array.from(png.subarray(1, 4)), [0x50, 0x4e, 0x47]);
  assert.ok(png.length > 5000);
});

Deno.test("learning curves draw a watched folder's accuracy where the epochs have it", async () => {
  const watched = history.map((h) => ({ ...h, watch_accuracy: 0.5 + h.epoch / 100 }));
  const values = learningCurvesSpec(watched).data.values as { split: string; metric: string; value: number }[];
  assert.deepEqual(values.filter((v) => v.split === "watched").map((v) => [v.metric, v.value]), [
    ["accuracy", 0.51],
    ["accuracy", 0.52],
    ["accuracy", 0.53],
  ]);
  assert.ok(!learningCurvesSpec(history).data.values.some((v: { split: string }) => v.split === "watched"));
  assert.match(await renderSvg(learningCurvesSpec(watched)), /watched/);
});

Deno.test("confusion matrix spec holds counts and row-normalized fractions", async () => {
  const spec = confusionMatricesSpec([[3, 1], [0, 4]], ["a", "b"]);
  const [counts, normalized] = spec.hconcat;
  assert.deepEqual(counts.data.values.map((v: { value: number }) => v.value), [3, 1, 0, 4]);
  assert.deepEqual(normalized.data.values.map((v: { value: number }) => v.value), [0.75, 0.25, 0, 1]);
  assert.match(await renderSvg(spec), /row-normalized/);
});

Deno.test("class distribution and per-class specs compile", async () => {
  assert.match(await renderSvg(classDistributionSpec({ Training: [1, 2, 3, 4, 5, 6, 7] }, EMOTIONS)), /<svg/);
  assert.match(await renderSvg(perClassSpec({ angry: { precision: 0.5, recall: 0.4, f1: 0.44 } })), /<svg/);
});
