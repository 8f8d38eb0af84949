import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { DataParallelTrainer, shareRows } from "../../lib/train/parallel.ts";
import { buildModel } from "../../lib/model/architectures.ts";

const OPTIONS = { weightDecay: 0, labelSmoothing: 0, augment: false };
const LR = 0.01;

function randomSet(n: number, seed: number) {
  let s = seed;
  const next = () => (s = (s * 16807) % 2147483647) / 2147483647;
  return {
    n,
    pixels: Uint8Array.from({ length: n * 2304 }, () => Math.floor(next() * 256)),
    labels: Uint8Array.from({ length: n }, () => Math.floor(next() * 7)),
  };
}

/** A small conv net without BatchNorm or dropout, so the batch split cannot change the maths. */
function plainModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [48, 48, 1],
        filters: 4,
        kernelSize: 3,
        strides: 2,
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({
        units: 7,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}

Deno.test("shareRows splits a batch into near-equal contiguous shares", () => {
  assert.deepEqual(shareRows([1, 2, 3, 4, 5], 2), [[1, 2, 3], [4, 5]]);
  assert.deepEqual(shareRows([1, 2], 1), [[1, 2]]);
});

Deno.test({
  name: "two workers take the same optimizer steps as one worker on the same global batch",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const train = randomSet(40, 3);
    const batches = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]];
    const results: Float32Array[] = [];
    const losses: number[][] = [];
    for (const workers of [1, 2]) {
      const model = plainModel();
      const trainer = await DataParallelTrainer.start(model, train, { ...OPTIONS, workers });
      const stepLosses: number[] = [];
      for (const [i, rows] of batches.entries()) stepLosses.push((await trainer.step(rows, i, LR)).loss);
      await trainer.syncTo(model);
      trainer.terminate();
      results.push(Float32Array.from(model.getWeights().flatMap((w) => Array.from(w.dataSync()))));
      losses.push(stepLosses);
    }
    const moved = plainModel().getWeights().flatMap((w) => Array.from(w.dataSync()));
    assert.ok(results[0].some((v, i) => Math.abs(v - moved[i]) > 1e-3), "training changed the weights");
    results[0].forEach((v, i) =>
      assert.ok(Math.abs(v - results[1][i]) < 1e-5, `weight ${i}: ${v} vs ${results[1][i]}`)
    );
    losses[0].forEach((l, i) => assert.ok(Math.abs(l - losses[1][i]) < 1e-5, `loss ${i}`));
  },
});

Deno.test({
  name: "a worker's tensor count stays flat across training steps (no leaks)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const train = randomSet(64, 5);
    const trainer = await DataParallelTrainer.start(buildModel("compact"), train, {
      ...OPTIONS,
      augment: true,
      mix: { mixup: 0.2, cutmix: 1 },
      workers: 2,
    });
    const rows = Array.from({ length: 32 }, (_, i) => i);
    await trainer.step(rows, 0, LR);
    const before = await trainer.tensorCounts();
    for (let s = 1; s < 4; s++) await trainer.step(rows.map((r) => r + (s % 2) * 32), s, LR);
    assert.deepEqual(await trainer.tensorCounts(), before);
    trainer.terminate();
  },
});

Deno.test({
  name: "the workers mix their batches (--mixup, --cutmix) and vary contrast (--contrast) when told: another loss",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const train = randomSet(16, 7);
    const rows = Array.from({ length: 16 }, (_, i) => i);
    // Each change off gives the same loss as none; each on, another loss from the same step.
    const off = [{ mix: { mixup: 0, cutmix: 0 } }, { contrast: 0 }];
    const on = [{ mix: { mixup: 1, cutmix: 0 } }, { mix: { mixup: 0, cutmix: 1 } }, { contrast: 0.5 }];
    const loss = async (change: object) => {
      const options = { ...OPTIONS, augment: true, ...change, workers: 1 };
      const trainer = await DataParallelTrainer.start(plainModel(), train, options);
      const { loss } = await trainer.step(rows, 0, LR);
      trainer.terminate();
      return loss;
    };
    const none = await loss({});
    for (const change of off) assert.equal(await loss(change), none, `${JSON.stringify(change)} is no change`);
    for (const change of on) {
      assert.ok(Math.abs(await loss(change) - none) > 1e-4, `${JSON.stringify(change)} changes the loss`);
    }
  },
});
