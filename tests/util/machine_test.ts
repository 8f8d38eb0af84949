/** Timing side by side: the runs take turns, and each figure is its median round. */
import { assert } from "../assert.ts";
import { timeSideBySide } from "../../lib/util/machine.ts";

Deno.test("timeSideBySide takes turns between the runs and gives each one's seconds per call", async () => {
  const order: string[] = [];
  const sleep = (name: string, ms: number) => () => {
    order.push(name);
    return new Promise((resolve) => setTimeout(resolve, ms));
  };
  const seconds = await timeSideBySide({ quick: sleep("quick", 4), slow: sleep("slow", 16) }, 3, 0.05);
  assert.ok(seconds.quick > 0.003 && seconds.quick < 0.015, `quick: ${seconds.quick}`);
  assert.ok(seconds.slow > 0.015 && seconds.slow < 0.04 && seconds.quick < seconds.slow, `slow: ${seconds.slow}`);
  // One warm-up call each, then three rounds, each a run of calls of one, then of the other.
  const runsOf = order.reduce((runs, name, i) => (name === order[i - 1] ? runs : [...runs, name]), [] as string[]);
  assert.deepEqual(runsOf, ["quick", "slow", "quick", "slow", "quick", "slow", "quick", "slow"]);
});
