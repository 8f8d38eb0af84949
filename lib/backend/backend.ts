/**
 * The tfjs backends in Deno: WASM (SIMD), the default, with the kernels
 * training needs that tfjs-backend-wasm 4.22 lacks or runs slowly; and
 * WebGPU (tfjs-backend-webgpu, on Deno's WebGPU) for machines with a GPU.
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { registerConvGradientKernels } from "./conv.ts";
import { registerFastKernels } from "./reductions.ts";
import { nativeKernelsSupported, registerNativeKernels } from "./native.ts";

let ready: Promise<void> | undefined;

/** Folder of the wasm package's `.wasm` binaries on disk. */
export function wasmDistDir(): string {
  const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
  return entry.pathname.slice(0, entry.pathname.lastIndexOf("/") + 1);
}

/** Which backend to run on: WASM (the default), WebGPU, or WebGPU only when the GPU is real hardware. */
export type BackendChoice = "wasm" | "webgpu" | "auto";
export const BACKEND_CHOICES: readonly BackendChoice[] = ["wasm", "webgpu", "auto"];

/** The backend a command runs on, and the GPU adapter behind WebGPU. */
export interface ActiveBackend {
  backend: "wasm" | "webgpu";
  /** "vendor architecture device (description)", with "fallback" for a software adapter such as lavapipe. */
  adapter?: string;
}

/** Make `wasm` the active tfjs backend (idempotent) and register our kernels. */
function initWasm(): Promise<void> {
  ready ??= (async () => {
    setWasmPaths(wasmDistDir());
    if (!(await tf.setBackend("wasm"))) {
      throw new Error("tfjs WASM backend failed to initialise");
    }
    if (!nativeKernelsSupported()) return; // tfjs's own kernels (Node 20: no relaxed SIMD)
    registerConvGradientKernels();
    registerFastKernels();
    registerNativeKernels();
  })();
  return ready;
}

/** The WebGPU adapter Deno offers (needs `--unstable-webgpu`, set in deno.json), or undefined. */
async function gpuAdapter(): Promise<GPUAdapter | undefined> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  return (await gpu?.requestAdapter()) ?? undefined;
}

/** Whether the adapter is a software one (Deno 2.9 reports it in `info`, the spec on the adapter). */
function isFallback(adapter: GPUAdapter): boolean {
  const flagged = adapter as unknown as { isFallbackAdapter?: boolean; info: { isFallbackAdapter?: boolean } };
  return Boolean(flagged.isFallbackAdapter ?? flagged.info.isFallbackAdapter);
}

function describe(adapter: GPUAdapter): string {
  const { vendor, architecture, device, description } = adapter.info;
  const name = [vendor, architecture, device].filter((s) => s).join(" ");
  return `${name}${description ? ` (${description})` : ""}${isFallback(adapter) ? ", fallback (software)" : ""}`;
}

/**
 * Make the chosen backend active (WASM by default). `auto` takes WebGPU only
 * for a hardware adapter, else WASM; `webgpu` fails with one line when Deno
 * has no adapter. Our WASM kernels are registered either way.
 */
export async function initBackend(choice: BackendChoice = "wasm"): Promise<ActiveBackend> {
  await initWasm();
  if (choice === "wasm") {
    if (tf.getBackend() !== "wasm") await tf.setBackend("wasm");
    return { backend: "wasm" };
  }
  const adapter = await gpuAdapter();
  if (!adapter || (choice === "auto" && isFallback(adapter))) {
    if (choice === "webgpu") {
      throw new Error(
        "--backend webgpu: no WebGPU adapter (install a Vulkan, Metal or D3D12 driver; Mesa's lavapipe works)",
      );
    }
    await tf.setBackend("wasm");
    return { backend: "wasm" };
  }
  await import("@tensorflow/tfjs-backend-webgpu"); // registers the "webgpu" backend
  if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs WebGPU backend failed to initialise");
  return { backend: "webgpu", adapter: describe(adapter) };
}

export { tf };
