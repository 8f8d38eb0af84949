/**
 * Guards the shipped model: evaluated on PrivateTest from ../shared, its
 * accuracy must stay within 0.5 points of the figure in its report.json
 * (catches a broken loader, preprocessing or kernel).
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { initBackend } from "../../lib/backend/backend.ts";
import { loadModel } from "../../lib/model/model_io.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { evaluateSet } from "../../lib/eval/evaluate.ts";
import { projectPath } from "../../lib/util/paths.ts";

const SHIPPED = projectPath("outputs", "model");

Deno.test("the shipped model keeps its PrivateTest accuracy (within 0.5 points of report.json)", async () => {
  await initBackend();
  const expected = JSON.parse(Deno.readTextFileSync(join(SHIPPED, "report.json")));
  assert.equal(expected.split, "PrivateTest");
  const { model, metadata } = await loadModel(SHIPPED);
  assert.deepEqual(metadata.labels, expected.labels);
  const data = await loadDataset(resolveDataPath());
  const report = await evaluateSet(model, data.splits.PrivateTest, "PrivateTest", metadata.labels);
  assert.equal(report.n, 3589);
  assert.ok(
    report.accuracy >= expected.accuracy - 0.005,
    `PrivateTest accuracy ${report.accuracy.toFixed(4)} fell below ${expected.accuracy.toFixed(4)} - 0.005`,
  );
});
