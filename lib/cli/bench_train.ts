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
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { BACKEND_CHOICES, type BackendChoice, initBackend } from "../backend/backend.ts";
import { ARCHITECTURES } from "../model/architectures.ts";
import { compare, profileTrainStep, shippedArchs, tfjsInferenceSpeed } from "../train/bench.ts";
import { idleForTimings, loadAverage, peakRssMiB } from "../util/machine.ts";
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
  const { busy, machineBusy } = await idleForTimings(values["allow-busy"]);
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
