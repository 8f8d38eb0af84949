/**
 * Convolution kernels for the tfjs WASM backend, for training and prediction.
 *
 * - 3x3 "same" convolutions with stride 1 (every convolution of our
 *   architectures but the first layer's) go through Winograd F(2x2, 3x3) on
 *   our native kernels (kernels.c): the forward pass, the input gradient
 *   (the same convolution with the flipped, transposed filter) and the
 *   filter gradient, each with 16 multiply-adds per 2x2 outputs and channel
 *   pair instead of 36. The forward pass also takes a bias and ReLU, applied
 *   as the outputs are written: the convolutions of a model folded for
 *   prediction (`foldBatchNorm` in lib/core/fold.js). A prediction model's
 *   filters keep their Winograd transform between calls
 *   (`keepFilterTransforms`), which at batch 1 costs more than the products,
 *   and where its maps divide into 4x4 blocks it is F(4x4, 3x3)'s: 36
 *   multiply-adds per 4x4 outputs and channel pair instead of 64.
 * - Other stride-1 filter gradients: a direct SIMD kernel accumulating the
 *   filter gradient in registers (tfjs-backend-wasm 4.22 has none at all).
 * - Everything else: the filter gradient as a forward convolution of the
 *   transposed input with the output gradient as filter, dilated by the
 *   stride; the input gradient as a forward convolution of the stride-spread
 *   output gradient (the backend's own kernel is 5-10x slower); forward
 *   convolutions on the backend's own XNNPACK kernel.
 */
import * as tf from "@tensorflow/tfjs";
import { heapOffset, nativeKernels } from "./native.ts";
import { replaceWasmKernel } from "./registry.ts";

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
  const [kh, kw, ci, co] = filterShape;
  if (winogradApplies(x, info, ci, co)) return winogradFilterGrad(backend, x, dy);
  if (info.strideHeight === 1 && info.strideWidth === 1 && co % 8 === 0 && x.dtype === "float32") {
    // Direct SIMD kernel (kernels.c): no transposes, the filter gradient accumulated in place.
    const dw = backend.makeOutput(filterShape, "float32");
    backend.typedArrayFromHeap(dw).fill(0);
    const [n, h, w] = x.shape;
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
  if (winogradApplies(dy, { ...info, inHeight: dy.shape[1], inWidth: dy.shape[2] }, co, ci)) {
    return winogradConv2D(backend, dy, filter, ci, true);
  }
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

/** Bytes of Winograd scratch (transformed inputs and products) per chunk of images: about half an L2 cache. */
const WINOGRAD_CHUNK_BYTES = 1 << 20;

/** Images per Winograd chunk: as many as keep its 16 transformed planes of inputs and outputs in cache. */
function winogradChunk(n: number, tilesPerImage: number, cin: number, cout: number, positions = 16): number {
  const bytesPerImage = positions * 4 * tilesPerImage * (cin + cout);
  return Math.max(1, Math.min(n, Math.floor(WINOGRAD_CHUNK_BYTES / bytesPerImage)));
}

/**
 * Fewest 2x2 output tiles (over the whole batch) for Winograd, unless the
 * filter's transform is kept (`keepFilterTransforms`): below it the
 * transform, redone every call, costs more than it saves, and XNNPACK is
 * faster (a 6x6 map at batch 1: 1.2 against 6.4 ms for 192 channels with
 * the transform's first, scalar version; 12x12 still favours Winograd).
 */
const WINOGRAD_MIN_TILES = 32;

/**
 * Whether a convolution takes the Winograd kernel: 3x3, stride 1, no
 * dilation, one pixel of zero padding all round ("same"), even height and
 * width, in channels % 4 == 0 and out channels % 8 == 0, at least
 * WINOGRAD_MIN_TILES tiles.
 */
function winogradApplies(
  x: Info,
  info: tf.backend_util.Conv2DInfo,
  cin: number,
  cout: number,
  minTiles = WINOGRAD_MIN_TILES,
): boolean {
  const { top, bottom, left, right } = info.padInfo;
  const tiles = x.shape[0] * Math.floor(info.inHeight / 2) * Math.floor(info.inWidth / 2);
  return tiles >= minTiles && x.dtype === "float32" && info.filterHeight === 3 && info.filterWidth === 3 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 && info.dilationHeight === 1 && info.dilationWidth === 1 && top === 1 &&
    bottom === 1 && left === 1 && right === 1 && info.inHeight % 2 === 0 && info.inWidth % 2 === 0 &&
    cin % 4 === 0 && cout % 8 === 0;
}

/**
 * A 3x3 "same" convolution by Winograd F(2x2, 3x3) on the native kernel
 * (kernels.c), plus `bias` and then ReLU when given (a folded convolution,
 * `foldBatchNorm`). With `flip`, `filter` is the forward filter
 * [3, 3, cout, cin] of which this computes the input gradient (flipped, in
 * and out swapped).
 */
function winogradConv2D(
  backend: Backend,
  x: Info,
  filter: Info,
  cout: number,
  flip: boolean,
  epilogue: { bias?: Info; relu?: boolean } = {},
): Info {
  const [n, h, w, cin] = x.shape;
  const native = nativeKernels(backend);
  const at = (info: Info) => heapOffset(backend, info);
  const stored = flip ? undefined : keptTransforms.get(filter.dataId);
  const kept = stored && (stored.tile === 2 || (h % 4 === 0 && w % 4 === 0)) ? stored : undefined;
  const tile = kept?.tile ?? 2, positions = (tile + 2) ** 2;
  const u = kept?.u ?? winogradFilter(backend, filter, cin, cout, flip);
  const tilesPerImage = (h / tile) * (w / tile);
  const chunk = winogradChunk(n, tilesPerImage, cin, cout, positions);
  const tiles = Math.ceil((chunk * tilesPerImage) / 4) * 4;
  const v = backend.makeOutput([positions * tiles * cin], "float32");
  const m = backend.makeOutput([positions * tiles * cout], "float32");
  const out = backend.makeOutput([n, h, w, cout], "float32");
  const bias = epilogue.bias ? at(epilogue.bias) : 0;
  const conv = tile === 4 ? native.winograd4_conv3x3 : native.winograd_conv3x3;
  conv(at(x), at(u), at(out), at(v), at(m), bias, epilogue.relu ? 1 : 0, n, h, w, cin, cout, chunk);
  dispose(backend, v, m);
  if (!kept) dispose(backend, u);
  return out;
}

/** U = G g G^T of a 3x3 filter [3, 3, cin, cout] (or, with `flip`, of its input gradient's), on the heap. */
function winogradFilter(backend: Backend, filter: Info, cin: number, cout: number, flip: boolean): Info {
  const u = backend.makeOutput([16 * cin * cout], "float32");
  nativeKernels(backend).winograd_filter(heapOffset(backend, filter), heapOffset(backend, u), cin, cout, flip ? 1 : 0);
  return u;
}

/** U = G g G^T of a 3x3 filter [3, 3, cin, cout] for F(4x4, 3x3) (36 positions), on the heap. */
function winograd4Filter(backend: Backend, filter: Info, cin: number, cout: number): Info {
  const u = backend.makeOutput([36 * cin * cout], "float32");
  nativeKernels(backend).winograd4_filter(heapOffset(backend, filter), heapOffset(backend, u), cin, cout);
  return u;
}

/**
 * Winograd transforms kept between calls, by their filter's data id (a changed weight has a new one):
 * F(4x4, 3x3)'s (`tile` 4) for a layer whose maps divide into 4x4 blocks, else F(2x2, 3x3)'s.
 */
const keptTransforms = new WeakMap<object, { u: Info; tile: 2 | 4 }>();

/**
 * Keep the Winograd transform of each of a prediction model's 3x3 stride-1
 * "same" convolution filters, so that its calls skip it and take Winograd
 * at any batch size (transforming a 256 x 256 filter costs about a
 * millisecond, more than the products at batch 1): F(4x4, 3x3)'s where the
 * layer's maps divide into 4x4 blocks, else F(2x2, 3x3)'s (the
 * convolutions `winogradApplies` to); `model.dispose()` frees them. For
 * models whose weights stay as they are: a weight set anew gets a new data
 * id, and is transformed per call again. Does nothing off the wasm backend
 * or without our kernels.
 */
export function keepFilterTransforms(model: tf.LayersModel): void {
  const backend = tf.backend() as Backend;
  if (tf.getBackend() !== "wasm" || !registered) return;
  const kept: Info[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() !== "Conv2D") continue;
    const { strides, dilationRate, padding } = layer.getConfig() as {
      strides: [number, number];
      dilationRate: [number, number];
      padding: "same" | "valid";
    };
    const filter = layer.getWeights()[0];
    const [kh, kw, cin, cout] = filter.shape;
    const [, h, w] = (layer.input as tf.SymbolicTensor).shape;
    if (!h || !w || filter.dtype !== "float32") continue;
    const x = { shape: [1, h, w, cin], dtype: "float32" } as unknown as Info;
    const info = tf.backend_util.computeConv2DInfo([1, h, w, cin], [kh, kw, cin, cout], strides, dilationRate, padding);
    if (!winogradApplies(x, info, cin, cout, 1)) continue; // the calls would not take Winograd
    const tile = h % 4 === 0 && w % 4 === 0 ? 4 : 2;
    const u = tile === 4
      ? winograd4Filter(backend, filter as unknown as Info, cin, cout)
      : winogradFilter(backend, filter as unknown as Info, cin, cout, false);
    keptTransforms.set(filter.dataId, { u, tile });
    kept.push(u);
  }
  const dispose = model.dispose.bind(model);
  model.dispose = () => {
    for (const u of kept.splice(0)) backend.disposeData(u.dataId);
    return dispose();
  };
}

/** The filter gradient [3, 3, cin, cout] of a convolution `winogradApplies` to, by Winograd (kernels.c). */
function winogradFilterGrad(backend: Backend, x: Info, dy: Info): Info {
  const [n, h, w, cin] = x.shape;
  const cout = dy.shape[3];
  const at = (info: Info) => heapOffset(backend, info);
  const tilesPerImage = (h / 2) * (w / 2);
  const chunk = winogradChunk(n, tilesPerImage, cin, cout);
  const v = backend.makeOutput([16 * chunk * tilesPerImage * cin], "float32");
  const y = backend.makeOutput([16 * chunk * tilesPerImage * cout], "float32");
  const m = backend.makeOutput([16 * cin * cout], "float32");
  const dw = backend.makeOutput([3, 3, cin, cout], "float32");
  nativeKernels(backend).winograd_filter_grad3x3(at(x), at(dy), at(dw), at(v), at(y), at(m), n, h, w, cin, cout, chunk);
  dispose(backend, v, y, m);
  return dw;
}

/**
 * Conv2D / FusedConv2D (with a bias and ReLU or none, as a folded
 * convolution has) by Winograd where it applies, else the backend's own
 * (XNNPACK).
 */
function conv2dKernel(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Attrs }) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, Info | undefined>;
    const { strides, pad, dilations, dataFormat, dimRoundingMode, activation } = args.attrs as ConvGradAttrs & {
      dilations: [number, number] | number;
      dataFormat?: string;
      activation?: string;
    };
    const relu = activation === "relu";
    const supported = !preluActivationWeights && (relu || (activation ?? "linear") === "linear") &&
      (dataFormat ?? "NHWC") === "NHWC" && (!bias || (bias.shape.length === 1 && bias.dtype === "float32"));
    if (!supported) return fallback(args as never);
    const [kh, kw, cin, cout] = filter!.shape;
    const info = tf.backend_util.computeConv2DInfo(
      x!.shape as [number, number, number, number],
      [kh, kw, cin, cout],
      strides,
      dilations,
      pad,
      dimRoundingMode,
    );
    const minTiles = keptTransforms.has(filter!.dataId) ? 1 : WINOGRAD_MIN_TILES;
    return winogradApplies(x!, info, cin, cout, minTiles)
      ? winogradConv2D(args.backend, x!, filter!, cout, false, { bias, relu })
      : fallback(args as never);
  }) as unknown as tf.KernelFunc;
}

/** Whether our convolution kernels are the wasm backend's (engines without relaxed SIMD run tfjs's own). */
let registered = false;

/** Register the gradient kernels, and Winograd for the forward convolution, on the wasm backend (once). */
export function registerConvGradientKernels(): void {
  replaceWasmKernel("Conv2D", conv2dKernel);
  registered = true;
  replaceWasmKernel("FusedConv2D", conv2dKernel);
  replaceWasmKernel("Conv2DBackpropInput", () => conv2dBackpropInput as unknown as tf.KernelFunc);
  if (!tf.getKernel("Conv2DBackpropFilter", "wasm")) {
    tf.registerKernel({
      kernelName: "Conv2DBackpropFilter",
      backendName: "wasm",
      kernelFunc: conv2dBackpropFilter as unknown as tf.KernelFunc,
    });
  }
}
