/**
 * Faster versions of WASM kernels on the training path, written in
 * TypeScript over the backend's heap, for the cases the network uses;
 * anything else goes to the backend's own kernel.
 *
 * - Sum and Mean over every axis but the last (BatchNorm's statistics and
 *   gradients): the backend transposes the whole tensor first so the axes
 *   are innermost; one pass with a per-channel accumulator needs no copy.
 * - MaxPoolGrad for 2x2 windows with stride 2: one pass over the windows.
 */
import * as tf from "@tensorflow/tfjs";

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

/** MaxPoolGrad for 2x2 windows, stride 2, no padding: the gradient goes to each window's first maximum. */
function maxPoolGrad2x2(backend: Backend, dy: Info, input: Info): Info {
  const [n, h, w, c] = input.shape;
  const [oh, ow] = [dy.shape[1], dy.shape[2]];
  const dx = backend.makeOutput(input.shape, "float32");
  const x = heap(backend, input), g = heap(backend, dy), out = heap(backend, dx);
  out.fill(0);
  const row = w * c;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        const base = ((b * h + 2 * i) * w + 2 * j) * c;
        const gBase = ((b * oh + i) * ow + j) * c;
        for (let k = 0; k < c; k++) {
          const topLeft = base + k, topRight = topLeft + c, bottomLeft = topLeft + row, bottomRight = bottomLeft + c;
          let best = topLeft, max = x[topLeft];
          if (x[topRight] > max) (best = topRight), (max = x[topRight]);
          if (x[bottomLeft] > max) (best = bottomLeft), (max = x[bottomLeft]);
          if (x[bottomRight] > max) best = bottomRight;
          out[best] += g[gBase + k];
        }
      }
    }
  }
  return dx;
}

function maxPoolGradKernel(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { dy, input } = args.inputs as { dy: Info; input: Info };
    const { filterSize, strides, pad } = args.attrs as {
      filterSize: number | number[];
      strides: number | number[];
      pad: unknown;
    };
    const pair = (v: number | number[]) => (Array.isArray(v) ? v : [v, v]);
    const [fh, fw] = pair(filterSize), [sh, sw] = pair(strides);
    const validWindows = pad === "valid" || (pad === "same" && input.shape[1] % 2 === 0 && input.shape[2] % 2 === 0);
    if (fh !== 2 || fw !== 2 || sh !== 2 || sw !== 2 || !validWindows || input.dtype !== "float32") {
      return fallback(args as never);
    }
    return maxPoolGrad2x2(args.backend, dy, input);
  }) as unknown as tf.KernelFunc;
}

/** Replace Sum, Mean and MaxPoolGrad on the wasm backend (once). */
export function registerFastKernels(): void {
  const replace = (name: string, make: (fallback: tf.KernelFunc) => tf.KernelFunc) => {
    const original = tf.getKernel(name, "wasm");
    if (!original || (original.kernelFunc as { fast?: boolean }).fast) return;
    const kernelFunc = make(original.kernelFunc);
    (kernelFunc as { fast?: boolean }).fast = true;
    tf.unregisterKernel(name, "wasm");
    tf.registerKernel({ ...original, kernelFunc });
  };
  replace("Sum", (f) => reductionKernel("Sum", f));
  replace("Mean", (f) => reductionKernel("Mean", f));
  replace("MaxPoolGrad", maxPoolGradKernel);
}
