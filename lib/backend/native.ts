/**
 * Our own WASM SIMD kernels (`kernels.c`, built to `kernels.wasm` by
 * `deno task build:kernels`), instantiated on the tfjs WASM backend's memory
 * so they read and write tensors in place: every pointer they take is a
 * tensor's byte offset on the backend's heap. `registerNativeKernels()`
 * registers them as tfjs kernels of the wasm backend:
 *
 * - `FerBatchNormForward` / `FerBatchNormBackward`: training-mode batch
 *   normalization, two passes each way (tfjs runs a dozen element-wise ops);
 * - `FerDropout`: inverted dropout with a seeded mask, one pass;
 * - `FerReluBackward`, and ReLU's gradient rerouted to it;
 * - `MaxPoolGrad` for 2x2 windows, stride 2.
 */
import * as tf from "@tensorflow/tfjs";
import { replaceWasmKernel } from "./registry.ts";

type Info = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Backend = any;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: Backend; attrs: Record<string, unknown> };

/** The exported kernels; pointers are byte offsets on the backend's heap, sizes are element counts. */
export interface NativeKernels {
  conv2d_filter_grad(
    x: number,
    dy: number,
    dw: number,
    n: number,
    h: number,
    w: number,
    ci: number,
    oh: number,
    ow: number,
    co: number,
    kh: number,
    kw: number,
    padTop: number,
    padLeft: number,
  ): void;
  batch_norm_forward(
    x: number,
    gamma: number,
    beta: number,
    y: number,
    mean: number,
    variance: number,
    invstd: number,
    scratch: number,
    rows: number,
    channels: number,
    epsilon: number,
  ): void;
  batch_norm_backward(
    dy: number,
    x: number,
    mean: number,
    invstd: number,
    gamma: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    scratch: number,
    rows: number,
    channels: number,
  ): void;
  relu_backward(dy: number, x: number, dx: number, size: number): void;
  max_pool_2x2_backward(x: number, dy: number, dx: number, n: number, h: number, w: number, c: number): void;
  dropout_forward(x: number, y: number, mask: number, size: number, keep: number, seed: number): void;
  winograd_filter(g: number, u: number, cin: number, cout: number, flip: number): void;
  winograd_filter_grad3x3(
    x: number,
    dy: number,
    dw: number,
    v: number,
    y: number,
    m: number,
    n: number,
    h: number,
    w: number,
    ci: number,
    co: number,
    chunk: number,
  ): void;
  winograd4_filter(g: number, u: number, cin: number, cout: number): void;
  winograd4_conv3x3: NativeKernels["winograd_conv3x3"];
  winograd_conv3x3(
    x: number,
    u: number,
    out: number,
    v: number,
    m: number,
    bias: number,
    relu: number,
    n: number,
    h: number,
    w: number,
    ci: number,
    co: number,
    chunk: number,
  ): void;
}

let kernels: NativeKernels | undefined;

/** `kernels.wasm`'s bytes. */
function kernelBytes(): Uint8Array<ArrayBuffer> {
  return Deno.readFileSync(new URL("./kernels.wasm", import.meta.url));
}

/**
 * Whether this JavaScript engine compiles our kernels (they use WebAssembly's
 * relaxed SIMD, which Deno and current browsers have and Node 20 has only
 * behind a flag); where it does not, tfjs's own WASM kernels run instead.
 */
export function nativeKernelsSupported(): boolean {
  return WebAssembly.validate(kernelBytes());
}

/** Instantiate `kernels.wasm` on the wasm backend's memory (once). */
export function nativeKernels(backend: Backend): NativeKernels {
  if (kernels) return kernels;
  const memory = backend.wasm.asm?.memory as WebAssembly.Memory | undefined;
  if (!(memory instanceof WebAssembly.Memory)) throw new Error("the tfjs wasm backend does not expose its memory");
  const instance = new WebAssembly.Instance(new WebAssembly.Module(kernelBytes()), { env: { memory } });
  kernels = instance.exports as unknown as NativeKernels;
  return kernels;
}

/** Byte offset of a tensor's data on the backend's heap. */
export function heapOffset(backend: Backend, info: Info): number {
  return backend.getMemoryOffset(info.dataId) as number;
}

/** Whether the native batch-norm, dropout and ReLU kernels take a tensor of this shape on the active backend. */
export function nativeApplies(x: tf.Tensor): boolean {
  return tf.getBackend() === "wasm" && x.dtype === "float32" && x.shape[x.rank - 1] % 4 === 0;
}

function batchNormForward({ inputs, backend, attrs }: KernelArgs): Info[] {
  const { x, gamma, beta } = inputs as { x: Info; gamma: Info; beta: Info };
  const channels = x.shape[x.shape.length - 1];
  const [y, mean, variance, invstd] = [x.shape, [channels], [channels], [channels]].map((shape) =>
    backend.makeOutput(shape, "float32")
  );
  const scratch = backend.makeOutput([channels], "float32");
  const at = (info: Info) => heapOffset(backend, info);
  nativeKernels(backend).batch_norm_forward(
    at(x),
    at(gamma),
    at(beta),
    at(y),
    at(mean),
    at(variance),
    at(invstd),
    at(scratch),
    tf.util.sizeFromShape(x.shape) / channels,
    channels,
    attrs.epsilon as number,
  );
  backend.disposeData(scratch.dataId);
  return [y, mean, variance, invstd];
}

function batchNormBackward({ inputs, backend }: KernelArgs): Info[] {
  const { dy, x, mean, invstd, gamma } = inputs as Record<string, Info>;
  const channels = x.shape[x.shape.length - 1];
  const [dx, dgamma, dbeta] = [x.shape, [channels], [channels]].map((shape) => backend.makeOutput(shape, "float32"));
  const scratch = backend.makeOutput([4 * channels], "float32");
  const at = (info: Info) => heapOffset(backend, info);
  nativeKernels(backend).batch_norm_backward(
    at(dy),
    at(x),
    at(mean),
    at(invstd),
    at(gamma),
    at(dx),
    at(dgamma),
    at(dbeta),
    at(scratch),
    tf.util.sizeFromShape(x.shape) / channels,
    channels,
  );
  backend.disposeData(scratch.dataId);
  return [dx, dgamma, dbeta];
}

function dropoutForward({ inputs, backend, attrs }: KernelArgs): Info[] {
  const { x } = inputs as { x: Info };
  const [y, mask] = [backend.makeOutput(x.shape, "float32"), backend.makeOutput(x.shape, "float32")];
  const { rate, seed } = attrs as { rate: number; seed: number };
  nativeKernels(backend).dropout_forward(
    heapOffset(backend, x),
    heapOffset(backend, y),
    heapOffset(backend, mask),
    tf.util.sizeFromShape(x.shape),
    1 - rate,
    seed >>> 0,
  );
  return [y, mask];
}

function reluBackward({ inputs, backend }: KernelArgs): Info {
  const { dy, x } = inputs as { dy: Info; x: Info };
  const dx = backend.makeOutput(x.shape, "float32");
  nativeKernels(backend).relu_backward(
    heapOffset(backend, dy),
    heapOffset(backend, x),
    heapOffset(backend, dx),
    tf.util.sizeFromShape(x.shape),
  );
  return dx;
}

/** MaxPoolGrad for 2x2 windows, stride 2, no padding; anything else goes to `fallback`. */
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
    const [n, h, w, c] = input.shape;
    const validWindows = pad === "valid" || (pad === "same" && h % 2 === 0 && w % 2 === 0);
    if (fh !== 2 || fw !== 2 || sh !== 2 || sw !== 2 || !validWindows || input.dtype !== "float32") {
      return fallback(args as never);
    }
    const backend = args.backend;
    const dx = backend.makeOutput(input.shape, "float32");
    nativeKernels(backend).max_pool_2x2_backward(
      heapOffset(backend, input),
      heapOffset(backend, dy),
      heapOffset(backend, dx),
      n,
      h,
      w,
      c,
    );
    return dx;
  }) as unknown as tf.KernelFunc;
}

/** ReLU's gradient: the native kernel where it applies, else tfjs's `dy * step(x)`. */
function reluGradient(dy: tf.Tensor, saved: tf.Tensor[]) {
  const [x] = saved;
  return {
    x: () => nativeApplies(x) ? tf.engine().runKernel("FerReluBackward", { dy, x }) as tf.Tensor : dy.mul(x.step()),
  };
}

/** Register the native kernels on the wasm backend, and ReLU's gradient (once). */
export function registerNativeKernels(): void {
  if (tf.getKernel("FerBatchNormForward", "wasm")) return;
  const register = (kernelName: string, kernelFunc: unknown) =>
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: kernelFunc as tf.KernelFunc });
  register("FerBatchNormForward", batchNormForward);
  register("FerBatchNormBackward", batchNormBackward);
  register("FerDropout", dropoutForward);
  register("FerReluBackward", reluBackward);
  replaceWasmKernel("MaxPoolGrad", maxPoolGradKernel);
  tf.registerGradient({ kernelName: "Relu", inputsToSave: ["x"], gradFunc: reluGradient as tf.GradFunc });
}
