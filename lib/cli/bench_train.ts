/**
 * Training-speed benchmark: the same architecture, batch and input size
 * trained in tfjs-wasm (this project, data-parallel workers) and in PyTorch
 * on the CPU with the same thread count, side by side in one run. Prints one
 * JSON line per architecture: {"arch", "batch", "tfjs_img_s", "torch_img_s", "ratio", ...}.
 *
 *   deno task bench:train [--arch compact] [--batch 128] [--steps 8] [--workers N] [--rounds 3] [--profile]
 *                         [--allow-busy]
 *
 * It benchmarks `--arch`, and the shipped model's architecture when that is
 * another one. Timings taken beside other work are not results: it first
 * watches the CPU for two seconds and refuses to run when other processes
 * keep more than a quarter of a core busy (`--allow-busy` runs anyway and
 * marks the JSON `"machine_busy": true`). `--profile` first prints a
 * per-kernel table of one single-threaded training step.
 */
import * as tf from "@tensorflow/tfjs";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { type ActiveBackend, BACKEND_CHOICES, type BackendChoice, initBackend } from "../backend/backend.ts";
import { ARCHITECTURES, buildModel } from "../model/architectures.ts";
import { DataParallelTrainer } from "../train/parallel.ts";
import { LocalTrainer, type Trainer } from "../train/local.ts";
import { exists, projectPath } from "../util/paths.ts";
import { busyCores, loadAverage, peakRssMiB } from "../util/machine.ts";
import { runCommand } from "./run.ts";

export const BENCH_TRAIN_FLAGS = {
  arch: { type: "string", choices: Object.keys(ARCHITECTURES), default: "compact", help: "architecture to time" },
  batch: { type: "integer", min: 2, default: 128, help: "images per training step" },
  steps: { type: "integer", min: 1, default: 8, help: "timed steps per round" },
  workers: {
    type: "integer",
    min: 1,
    default: navigator.hardwareConcurrency || 1,
    help: "data-parallel workers, and PyTorch's threads",
  },
  rounds: { type: "integer", min: 1, default: 3, help: "alternating rounds; each side's best counts" },
  profile: { type: "boolean", help: "first print a per-kernel table of one single-threaded step" },
  "allow-busy": { type: "boolean", help: "run on a busy machine, marking the figures machine_busy" },
  backend: {
    type: "string",
    choices: BACKEND_CHOICES,
    default: "wasm",
    help: "tfjs backend (webgpu trains in one process)",
  },
} as const satisfies FlagTable;

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
async function torchTrainSpeed(
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
function shippedArchs(): string[] {
  try {
    const metadata = JSON.parse(Deno.readTextFileSync(projectPath("outputs", "model", "metadata.json")));
    const named = String(metadata.architecture).replace(/^ensemble of /, "").split(/,\s*/);
    return named.filter((arch) => ARCHITECTURES[arch]);
  } catch {
    return [];
  }
}

/** Best-of-`rounds` images/s of tfjs and PyTorch, alternated so a passing load does not decide the ratio. */
async function compare(
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

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "bench:train", summary: "Training speed of this project against PyTorch on the same cores, side by side." },
    BENCH_TRAIN_FLAGS,
    args,
  );
  const { batch, steps, workers, rounds } = values;
  const archs = [...new Set([values.arch, ...shippedArchs()])];
  for (const arch of archs) {
    if (!ARCHITECTURES[arch]) throw new Error(`--arch ${arch}: choose one of ${Object.keys(ARCHITECTURES).join(", ")}`);
  }
  const busy = await busyCores();
  const machineBusy = busy !== undefined && busy > 0.25;
  if (machineBusy && !values["allow-busy"]) {
    throw new Error(
      `the machine is busy (other processes kept ${busy.toFixed(2)} cores busy; load average ${loadAverage()}): ` +
        "timings now would not be results. Stop them, or pass --allow-busy to mark the figures as taken under load",
    );
  }
  const active = await initBackend(values.backend as BackendChoice);
  console.error(`backend: ${active.backend}${active.adapter ? ` on ${active.adapter}` : ""}`);
  for (const arch of archs) {
    if (values.profile) {
      const rows = await profileTrainStep(arch, batch);
      console.log(`| kernel | ms per step (${arch}, batch ${batch}, 1 thread) | calls |\n| --- | --- | --- |`);
      // "__op" and "scope" entries wrap kernels already listed; leave them out so the column adds up.
      const kernels = rows.filter((r) => r.ms >= 1 && !r.kernel.endsWith("__op") && !r.kernel.includes("scope"));
      for (const r of kernels) console.log(`| ${r.kernel} | ${r.ms.toFixed(0)} | ${r.calls} |`);
    }
    const { tfjs, torch } = await compare(arch, batch, steps, workers, rounds, active);
    const inference = await tfjsInferenceSpeed(arch, 256);
    const round = (v: number | undefined) => (v === undefined ? null : Math.round(v * 10) / 10);
    console.log(JSON.stringify({
      arch,
      backend: active.backend,
      ...(active.adapter ? { adapter: active.adapter } : {}),
      batch,
      tfjs_img_s: round(tfjs),
      torch_img_s: round(torch),
      ratio: torch ? Math.round((tfjs / torch) * 1000) / 1000 : null,
      threads: workers,
      tfjs_inference_img_s: round(inference),
      peak_rss_mib: peakRssMiB() ?? null,
      busy_cores_before: busy === undefined ? null : Math.round(busy * 100) / 100,
      load_avg_1m: loadAverage() ?? null,
      machine_busy: machineBusy,
    }));
  }
}

if (import.meta.main) await runCommand(main);
