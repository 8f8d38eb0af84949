/**
 * Training speed measured side by side: this project's tfjs training step
 * (data-parallel workers, or one process on WebGPU), PyTorch's on the same
 * cores (lib/cli/bench_torch.py), batched inference, and a per-kernel
 * profile of one step. `deno task bench:train` (lib/cli/bench_train.ts)
 * prints them.
 */
import * as tf from "@tensorflow/tfjs";
import type { ActiveBackend } from "../backend/backend.ts";
import { ARCHITECTURES, buildModel } from "../model/architectures.ts";
import { DataParallelTrainer } from "./parallel.ts";
import { LocalTrainer, type Trainer } from "./local.ts";
import { exists, projectPath } from "../util/paths.ts";
/** Images per second of `steps` data-parallel training steps on random images. */
export async function tfjsTrainSpeed(
  arch: string,
  batch: number,
  steps: number,
  workers: number,
  backend: "wasm" | "webgpu" = "wasm",
): Promise<number> {
  const n = batch;
  const train = {
    n,
    pixels: Uint8Array.from({ length: n * 48 * 48 }, (_, i) => (i * 7919) % 256),
    labels: Uint8Array.from({ length: n }, (_, i) => i % 7),
  };
  const model = buildModel(arch);
  const options = { weightDecay: 0, labelSmoothing: 0, augment: true };
  const trainer: Trainer = backend === "webgpu"
    ? await LocalTrainer.start(model, train, options)
    : await DataParallelTrainer.start(model, train, { ...options, workers });
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
export async function torchTrainSpeed(
  arch: string,
  batch: number,
  steps: number,
  threads: number,
): Promise<number | undefined> {
  const args = JSON.stringify({ spec: ARCHITECTURES[arch], batch, steps, threads });
  let result: Deno.CommandOutput;
  try {
    // Debian's python3 (where python3-torch installs), else whichever is on PATH.
    const python = exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    result = await new Deno.Command(python, { args: [projectPath("lib", "cli", "bench_torch.py"), args] }).output();
  } catch {
    console.error("python3 is not installed: no PyTorch reference figure");
    return undefined;
  }
  const { code, stdout, stderr } = result;
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

/**
 * The architectures the shipped model is made of (one, or an ensemble's
 * members: "ensemble of compact, compact"); none when outputs/model holds no model.
 */
export function shippedArchs(): string[] {
  try {
    const metadata = JSON.parse(Deno.readTextFileSync(projectPath("outputs", "model", "metadata.json")));
    const named = String(metadata.architecture).replace(/^ensemble of /, "").split(/,\s*/);
    return named.filter((arch) => ARCHITECTURES[arch]);
  } catch {
    return [];
  }
}

/** Best-of-`rounds` images/s of tfjs and PyTorch, alternated so a passing load does not decide the ratio. */
export async function compare(
  arch: string,
  batch: number,
  steps: number,
  workers: number,
  rounds: number,
  active: ActiveBackend,
) {
  let tfjs = 0, torch: number | undefined;
  for (let round = 1; round <= rounds; round++) {
    console.error(
      `${arch} round ${round}/${rounds}: tfjs-${active.backend}, batch ${batch}, ${workers} worker(s), ${steps} steps`,
    );
    tfjs = Math.max(tfjs, await tfjsTrainSpeed(arch, batch, steps, workers, active.backend));
    const t = await torchTrainSpeed(arch, batch, steps, workers);
    if (t !== undefined) torch = Math.max(torch ?? 0, t);
    console.error(`  tfjs ${tfjs.toFixed(1)} images/s, PyTorch ${torch?.toFixed(1) ?? "n/a"} images/s (best so far)`);
  }
  return { tfjs, torch };
}
