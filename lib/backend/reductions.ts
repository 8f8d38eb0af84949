/**
 * Faster versions of WASM kernels on the training path, written in
 * TypeScript over the backend's heap, for the cases the network uses;
 * anything else goes to the backend's own kernel.
 *
 * - Sum and Mean over every axis but the last (BatchNorm's statistics and
 *   gradients): the backend transposes the whole tensor first so the axes
 *   are innermost; one pass with a per-channel accumulator needs no copy.
 * - Identity, and Cast to the same dtype: share the input's data (reference
 *   counted, as the cpu backend does) instead of copying it. tfjs clones
 *   every tensor it saves for a gradient, so on the training path these
 *   copies cost more than the ReLUs.
 */
import type * as tf from "@tensorflow/tfjs";
import { replaceWasmKernel } from "./registry.ts";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Backend = any;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Record<string, unknown> };

/** Float32 view of a tensor's data on the WASM heap (valid until the next allocation). */
function heap(backend: Backend, info: Info): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** Whether `axis` lists exactly the leading axes 0..rank-2. */
function isLeadingAxes(axis: unknown, rank: number): boolean {
  const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
  return rank >= 2 && axes.length === rank - 1 && axes.every((a, i) => a === i);
}

/** Sum (or mean, with `scale` = 1/count) over the leading axes, a float64 accumulator per channel. */
function reduceLeadingAxes(backend: Backend, x: Info, keepDims: boolean, mean: boolean): Info {
  const channels = x.shape[x.shape.length - 1];
  const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const src = heap(backend, x);
  const acc = new Float64Array(channels);
  for (let r = 0, i = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++, i++) acc[c] += src[i];
  }
  const shape = keepDims ? [...x.shape.slice(0, -1).map(() => 1), channels] : [channels];
  const out = backend.makeOutput(shape, "float32");
  const dst = heap(backend, out);
  for (let c = 0; c < channels; c++) dst[c] = mean ? acc[c] / rows : acc[c];
  return out;
}

function reductionKernel(name: "Sum" | "Mean", fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: Info };
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    if (x.dtype !== "float32" || !isLeadingAxes(axis, x.shape.length)) return fallback(args as never);
    return reduceLeadingAxes(args.backend, x, keepDims, name === "Mean");
  }) as unknown as tf.KernelFunc;
}

/** Identity (and Cast to the input's own dtype) as a new reference to the same data. */
function shareKernel(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: Info };
    const dtype = (args.attrs as { dtype?: string } | undefined)?.dtype ?? x.dtype;
    if (dtype !== x.dtype || x.dtype === "string") return fallback(args as never);
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as tf.KernelFunc;
}

/** Replace Sum, Mean, Identity and Cast on the wasm backend (once). */
export function registerFastKernels(): void {
  replaceWasmKernel("Sum", (f) => reductionKernel("Sum", f));
  replaceWasmKernel("Mean", (f) => reductionKernel("Mean", f));
  replaceWasmKernel("Identity", shareKernel);
  replaceWasmKernel("Cast", shareKernel);
}
