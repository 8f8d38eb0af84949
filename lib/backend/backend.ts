/**
 * The tfjs WASM (SIMD) backend, set up for Deno, with the kernels training
 * needs that tfjs-backend-wasm 4.22 lacks or runs slowly.
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { registerConvGradientKernels } from "./conv.ts";
import { registerFastKernels } from "./reductions.ts";
import { registerNativeKernels } from "./native.ts";

let ready: Promise<void> | undefined;

/** Folder of the wasm package's `.wasm` binaries on disk. */
export function wasmDistDir(): string {
  const entry = new URL(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
  return entry.pathname.slice(0, entry.pathname.lastIndexOf("/") + 1);
}

/** Make `wasm` the active tfjs backend (idempotent) and register our kernels. */
export function initBackend(): Promise<void> {
  ready ??= (async () => {
    setWasmPaths(wasmDistDir());
    if (!(await tf.setBackend("wasm"))) {
      throw new Error("tfjs WASM backend failed to initialise");
    }
    registerConvGradientKernels();
    registerFastKernels();
    registerNativeKernels();
  })();
  return ready;
}

export { tf };
