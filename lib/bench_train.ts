/**
 * Training-speed benchmark: the same architecture, batch and input size
 * trained in tfjs-wasm (this project, data-parallel workers) and in PyTorch
 * on the CPU with the same thread count, side by side in one run. Prints one
 * JSON line last: {"arch", "batch", "tfjs_img_s", "torch_img_s", "ratio", ...}.
 *
 *   deno task bench:train [--arch compact] [--batch 128] [--steps 8] [--workers 2] [--rounds 3] [--profile]
 *
 * `--profile` first prints a per-kernel table of one single-threaded training step.
 */
import * as tf from "@tensorflow/tfjs";
import { parseArgs } from "node:util";
import { initBackend } from "./backend.ts";
import { ARCHITECTURES, buildModel } from "./models.ts";
import { DataParallelTrainer } from "./parallel.ts";
import { projectPath } from "./paths.ts";

/** Images per second of `steps` data-parallel training steps on random images. */
export async function tfjsTrainSpeed(arch: string, batch: number, steps: number, workers: number): Promise<number> {
  const n = batch;
  const train = {
    n,
    pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (i * 7919) % 256),
    labels: Uint8Array.from({ length: n }, (_, i) => i % 7),
  };
  const model = buildModel(arch);
  const trainer = await DataParallelTrainer.start(model, train, {
    workers,
    lr: 1e-3,
    labelSmoothing: 0,
    augment: true,
  });
  const rows = Array.from({ length: batch }, (_, i) => i);
  try {
    for (let s = 0; s < 2; s++) await trainer.step(rows, s, 1e-3); // warm-up
    const start = performance.now();
    for (let s = 0; s < steps; s++) await trainer.step(rows, s, 1e-3);
    return (steps * batch) / ((performance.now() - start) / 1000);
  } finally {
    trainer.terminate();
    model.dispose();
  }
}

/** Images per second of batched inference on this thread. */
export async function tfjsInferenceSpeed(arch: string, batch: number, repeats = 5): Promise<number> {
  const model = buildModel(arch);
  const x = tf.randomUniform([batch, 48, 48, 1]);
  const run = async () => {
    const y = model.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  await run();
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await run();
  const rate = (repeats * batch) / ((performance.now() - start) / 1000);
  x.dispose();
  model.dispose();
  return rate;
}

/** Milliseconds per kernel of one training step (forward, backward, Adam) on this thread, largest first. */
export async function profileTrainStep(
  arch: string,
  batch: number,
): Promise<{ kernel: string; ms: number; calls: number }[]> {
  const model = buildModel(arch);
  model.compile({ optimizer: tf.train.adam(1e-3), loss: "categoricalCrossentropy" });
  const x = tf.randomUniform([batch, 48, 48, 1]);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 7), "int32"), 7);
  await model.trainOnBatch(x, y); // warm-up
  const info = await tf.profile(async () => {
    await model.trainOnBatch(x, y);
  });
  const table = new Map<string, { ms: number; calls: number }>();
  for (const k of info.kernels) {
    const row = table.get(k.name) ?? { ms: 0, calls: 0 };
    row.ms += k.kernelTimeMs as number;
    row.calls++;
    table.set(k.name, row);
  }
  tf.dispose([x, y]);
  model.dispose();
  return [...table].map(([kernel, r]) => ({ kernel, ...r })).sort((a, b) => b.ms - a.ms);
}

/** PyTorch's figure for the same net, or undefined (with the reason on stderr) when torch is missing. */
async function torchTrainSpeed(
  arch: string,
  batch: number,
  steps: number,
  threads: number,
): Promise<number | undefined> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: [projectPath("lib", "bench_torch.py")],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify({ spec: ARCHITECTURES[arch], batch, steps, threads })));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  if (code !== 0) {
    const message = new TextDecoder().decode(stderr);
    console.error(
      message.includes("No module named 'torch'")
        ? "PyTorch is not installed: `apt-get install python3-torch` (Debian) for the reference figure"
        : `PyTorch reference failed:\n${message}`,
    );
    return undefined;
  }
  return JSON.parse(new TextDecoder().decode(stdout).trim().split("\n").pop()!).torch_img_s;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      arch: { type: "string", default: "compact" },
      batch: { type: "string", default: "128" },
      steps: { type: "string", default: "8" },
      workers: { type: "string", default: String(Math.min(2, navigator.hardwareConcurrency || 1)) },
      profile: { type: "boolean", default: false },
      rounds: { type: "string", default: "3" },
    },
  });
  const arch = values.arch,
    batch = Number(values.batch),
    steps = Number(values.steps),
    workers = Number(values.workers),
    rounds = Number(values.rounds);
  if (!ARCHITECTURES[arch]) throw new Error(`unknown architecture ${arch}`);
  await initBackend();
  if (values.profile) {
    const rows = await profileTrainStep(arch, batch);
    console.log(`| kernel | ms per step (batch ${batch}, 1 thread) | calls |\n| --- | --- | --- |`);
    // "__op" and "scope" entries wrap kernels already listed; leave them out so the column adds up.
    const kernels = rows.filter((r) => r.ms >= 1 && !r.kernel.endsWith("__op") && !r.kernel.includes("scope"));
    for (const r of kernels) console.log(`| ${r.kernel} | ${r.ms.toFixed(0)} | ${r.calls} |`);
  }
  // Alternate the two a few rounds and keep each one's best, so a passing load on the machine
  // does not decide the ratio.
  let tfjs = 0, torch: number | undefined;
  for (let round = 1; round <= rounds; round++) {
    console.error(
      `round ${round}/${rounds}: tfjs-wasm ${arch}, batch ${batch}, ${workers} worker(s), ${steps} steps ...`,
    );
    tfjs = Math.max(tfjs, await tfjsTrainSpeed(arch, batch, steps, workers));
    console.error(`round ${round}/${rounds}: PyTorch (CPU, ${workers} thread(s), channels_last) ...`);
    const t = await torchTrainSpeed(arch, batch, steps, workers);
    if (t !== undefined) torch = Math.max(torch ?? 0, t);
    console.error(`  tfjs ${tfjs.toFixed(1)} images/s, PyTorch ${torch?.toFixed(1) ?? "n/a"} images/s (best so far)`);
  }
  const inference = await tfjsInferenceSpeed(arch, 256);
  const round = (v: number | undefined) => (v === undefined ? null : Math.round(v * 10) / 10);
  console.log(JSON.stringify({
    arch,
    batch,
    tfjs_img_s: round(tfjs),
    torch_img_s: round(torch),
    ratio: torch ? Math.round((tfjs / torch) * 1000) / 1000 : null,
    threads: workers,
    tfjs_inference_img_s: round(inference),
  }));
}
