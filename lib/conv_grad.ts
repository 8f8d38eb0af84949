/**
 * Convolution gradient kernels for the tfjs WASM backend, built from the
 * backend's fast (XNNPACK) forward Conv2D.
 *
 * tfjs-backend-wasm 4.22 has no `Conv2DBackpropFilter`, so no conv net can
 * train on it. The filter gradient is itself a convolution: swap the batch
 * and channel axes of the input, use the output gradient as the filter,
 * dilated by the forward stride:
 *
 *   dW[kh,kw,ci,co] = sum_{n,oh,ow} x[n, oh*s+kh-pt, ow*s+kw-pl, ci] * dy[n,oh,ow,co]
 *                   = conv(xT[ci, h, w, n], dyT[oh, ow, n, co], dilation s)[ci, kh, kw, co]
 */
import * as tf from "@tensorflow/tfjs";
import { heapOffset, nativeKernels } from "./backend/native.ts";

type Info = tf.TensorInfo;
type Attrs = Record<string, unknown>;
// deno-lint-ignore no-explicit-any
type Backend = any;

/** Run a registered wasm kernel directly (no tape, no engine bookkeeping). */
function run(name: string, backend: Backend, inputs: Record<string, Info>, attrs: Attrs = {}): Info {
  const kernel = tf.getKernel(name, "wasm");
  if (!kernel) throw new Error(`wasm kernel ${name} is not registered`);
  return kernel.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as Info;
}

function dispose(backend: Backend, ...infos: Info[]) {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** The convolution attributes both gradient kernels receive. */
type ConvGradAttrs = {
  strides: [number, number] | number;
  pad: "same" | "valid" | number;
  dimRoundingMode?: "floor" | "round" | "ceil";
};

/** Conv2DBackpropFilter: the filter gradient of a channels-last 2-D convolution. */
export function conv2dBackpropFilter(
  { inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Attrs },
): Info {
  const { x, dy } = inputs as { x: Info; dy: Info };
  const { strides, pad, dimRoundingMode, filterShape } = attrs as ConvGradAttrs & {
    filterShape: [number, number, number, number];
  };
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const [kh, kw] = filterShape;
  const co = filterShape[3];
  if (info.strideHeight === 1 && info.strideWidth === 1 && co % 8 === 0 && x.dtype === "float32") {
    // Direct SIMD kernel (kernels.c): no transposes, the filter gradient accumulated in place.
    const dw = backend.makeOutput(filterShape, "float32");
    backend.typedArrayFromHeap(dw).fill(0);
    const [n, h, w, ci] = x.shape;
    nativeKernels(backend).conv2d_filter_grad(
      heapOffset(backend, x),
      heapOffset(backend, dy),
      heapOffset(backend, dw),
      n,
      h,
      w,
      ci,
      info.outHeight,
      info.outWidth,
      co,
      kh,
      kw,
      info.padInfo.top,
      info.padInfo.left,
    );
    return dw;
  }
  const xT = run("Transpose", backend, { x }, { perm: [3, 1, 2, 0] }); // [ci, h, w, n]
  const dyT = run("Transpose", backend, { x: dy }, { perm: [1, 2, 0, 3] }); // [oh, ow, n, co]
  const { top, bottom, left, right } = info.padInfo;
  const full = run("Conv2D", backend, { x: xT, filter: dyT }, {
    strides: 1,
    pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
    dilations: [info.strideHeight, info.strideWidth],
    dataFormat: "NHWC",
  }); // [ci, >=kh, >=kw, co]
  const cropped = run("Slice", backend, { x: full }, {
    begin: [0, 0, 0, 0],
    size: [full.shape[0], kh, kw, full.shape[3]],
  });
  const dw = run("Transpose", backend, { x: cropped }, { perm: [1, 2, 0, 3] }); // [kh, kw, ci, co]
  dispose(backend, xT, dyT, full, cropped);
  return dw;
}

/**
 * Conv2DBackpropInput: the input gradient, as a forward convolution of the
 * stride-dilated, padded output gradient with the flipped, transposed filter
 * (the backend's own kernel is 5-10x slower than this).
 */
export function conv2dBackpropInput(
  { inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Attrs },
): Info {
  const { dy, filter } = inputs as { dy: Info; filter: Info };
  const { strides, pad, dimRoundingMode, inputShape } = attrs as ConvGradAttrs & {
    inputShape: [number, number, number, number];
  };
  const [kh, kw, ci, co] = filter.shape;
  const info = tf.backend_util.computeConv2DInfo(inputShape, [kh, kw, ci, co], strides, 1, pad, dimRoundingMode);
  const [n, h, w] = inputShape;
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const [oh, ow] = [dy.shape[1], dy.shape[2]];
  const owned: Info[] = [];
  // Spread dy onto the input grid: [n, oh, ow, co] -> [n, oh*sh, ow*sw, co].
  let spread = dy;
  if (sh > 1 || sw > 1) {
    const r = run("Reshape", backend, { x: dy }, { shape: [n, oh, 1, ow, 1, co] });
    const p = run("PadV2", backend, { x: r }, {
      paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]],
      constantValue: 0,
    });
    spread = run("Reshape", backend, { x: p }, { shape: [n, oh * sh, ow * sw, co] });
    owned.push(r, p, spread);
  }
  const flipped = run("Reverse", backend, { x: filter }, { dims: [0, 1] });
  const kernel = run("Transpose", backend, { x: flipped }, { perm: [0, 1, 3, 2] }); // [kh, kw, co, ci]
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = Math.max(0, h + kh - 1 - top - oh * sh);
  const right = Math.max(0, w + kw - 1 - left - ow * sw);
  const full = run("Conv2D", backend, { x: spread, filter: kernel }, {
    strides: 1,
    pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
    dilations: 1,
    dataFormat: "NHWC",
  });
  owned.push(flipped, kernel);
  if (full.shape[1] === h && full.shape[2] === w) {
    dispose(backend, ...owned);
    return full;
  }
  const dx = run("Slice", backend, { x: full }, { begin: [0, 0, 0, 0], size: [n, h, w, ci] });
  dispose(backend, ...owned, full);
  return dx;
}

/** Register the gradient kernels on the wasm backend (once). */
export function registerConvGradientKernels(): void {
  if (!tf.getKernel("Conv2DBackpropFilter", "wasm")) {
    tf.registerKernel({
      kernelName: "Conv2DBackpropFilter",
      backendName: "wasm",
      kernelFunc: conv2dBackpropFilter as unknown as tf.KernelFunc,
    });
  }
  tf.unregisterKernel("Conv2DBackpropInput", "wasm");
  tf.registerKernel({
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    kernelFunc: conv2dBackpropInput as unknown as tf.KernelFunc,
  });
}
