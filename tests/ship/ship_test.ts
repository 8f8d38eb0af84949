/** RECIPE.md as `deno task ship` writes it, from made-up runs and reports. */
import { assert } from "../assert.ts";
import { type Candidate, recipeText, type RunRecord } from "../../lib/ship/ship.ts";
import { DEFAULT_CONFIG, RECIPES } from "../../lib/train/config.ts";
import { bestEpoch, type EpochRecord } from "../../lib/train/history.ts";
import type { Report } from "../../lib/eval/metrics.ts";

const epoch = (n: number, val_accuracy: number): EpochRecord => ({
  epoch: n,
  loss: 1,
  accuracy: 0.5,
  val_loss: 1,
  val_accuracy,
  lr: 1e-3,
  seconds: 100,
});
const run = (name: string, seed: number, accuracies: number[]): RunRecord => ({
  run: `outputs/runs/${name}`,
  config: { ...DEFAULT_CONFIG, ...RECIPES.medium, recipe: "medium", seed },
  history: accuracies.map((a, i) => epoch(i + 1, a)),
  seconds: 3600 * accuracies.length,
});
const report = (accuracy: number, macro_f1: number): Report => ({
  split: "PrivateTest",
  n: 3589,
  accuracy,
  macro_f1,
  per_class: {},
  confusion_matrix: [],
  labels: [],
});

Deno.test("the best epoch is the one with the highest PublicTest accuracy, the first of equals", () => {
  assert.equal(bestEpoch([epoch(1, 0.5), epoch(2, 0.6), epoch(3, 0.6), epoch(4, 0.55)]).epoch, 2);
});

Deno.test("RECIPE.md counts the candidates, ranks them all, and gives every weighed run's command", () => {
  const a = run("a", 11, [0.5, 0.6]);
  const b = run("b", 12, [0.55, 0.58]);
  const other = run("other", 13, [0.4, 0.62, 0.61]);
  const choices: Candidate[] = [
    { name: "ensemble", members: ["x", "y"], publicTest: 0.65, description: "mean of a and b" },
    { name: "best", dir: "outputs/runs/other/best", publicTest: 0.62, description: "other: epoch 2" },
    { name: "best", dir: "outputs/runs/a/best", publicTest: 0.6, description: "a: epoch 2" },
  ];
  const text = recipeText(
    [a, b],
    [a, b, other],
    choices,
    1234567,
    report(0.7, 0.68),
    report(0.71, 0.69),
    "2-core Test CPU, 24 GiB",
  );
  assert.ok(text.includes("| shipped | mean of a and b (PublicTest 65.00%) |"), "the shipped line");
  assert.ok(text.includes("| chosen on PublicTest among | 3 candidates"), "the count");
  assert.ok(
    text.includes("| 1 | 65.00% | mean of a and b |\n| 2 | 62.00% | other: epoch 2 |\n| 3 | 60.00% | a: epoch 2 |"),
  );
  assert.ok(text.includes("| parameters | 1,234,567 |"));
  assert.ok(text.includes("| machine (of this ship command) | 2-core Test CPU, 24 GiB |"), "the machine, as measured");
  assert.ok(text.includes("PrivateTest (evaluated once, 3,589 images)"), "the image count, from the report");
  assert.ok(text.includes("deno task train --recipe medium --seed 12 --out outputs/runs/b"), "a member's command");
  assert.ok(
    text.includes(
      "| outputs/runs/other | `deno task train --recipe medium --seed 13 --out outputs/runs/other` | 62.00% (epoch 2) | 3.00 h |",
    ),
    "the other run's line",
  );
  assert.ok(!text.includes("| outputs/runs/a | `"), "a member is not among the other runs");
  assert.ok(
    text.includes("| plain | 70.00% | 68.00% |") && text.includes("| TTA (mirror x 5 shifts) | 71.00% | 69.00% |"),
  );
  assert.ok(text.includes("--run outputs/runs/a --run outputs/runs/b --run outputs/runs/other"), "the ship command");
});
