/** Swapping a kernel of the tfjs wasm backend for our own, keeping the backend's as a fallback. */
import * as tf from "@tensorflow/tfjs";

const REPLACED = Symbol("replaced by this project");

/**
 * Replace the wasm backend's kernel `name` with `wrap(original)`, where
 * `original` is the backend's own kernel for the cases ours does not take.
 * Idempotent: a kernel already replaced is left alone.
 */
export function replaceWasmKernel(name: string, wrap: (original: tf.KernelFunc) => tf.KernelFunc): void {
  const original = tf.getKernel(name, "wasm");
  if (!original) throw new Error(`the wasm backend has no ${name} kernel to replace`);
  if ((original.kernelFunc as { [REPLACED]?: boolean })[REPLACED]) return;
  const kernelFunc = wrap(original.kernelFunc);
  (kernelFunc as { [REPLACED]?: boolean })[REPLACED] = true;
  tf.unregisterKernel(name, "wasm");
  tf.registerKernel({ ...original, kernelFunc });
}
