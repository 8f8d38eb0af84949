import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { ARCHITECTURES, buildModel } from "../../lib/model/architectures.ts";
import { filterGradientKernel } from "../../lib/core/filter_gradient.js";
import { foldBatchNorm } from "../../lib/core/fold.js";
import { keepFilterTransforms } from "../../lib/backend/conv.ts";

/** dx and dw of sum(conv2d(x, w) * dy) on the active backend. */
type Shape4 = [number, number, number, number];

function convGrads(
  x: Float32Array,
  xs: Shape4,
  w: Float32Array,
  ws: Shape4,
  dy: Float32Array,
  stride: number,
  pad: "same" | "valid",
) {
  return tf.tidy(() => {
    const dyT = tf.tensor(dy, tf.conv2d(tf.zeros(xs) as tf.Tensor4D, tf.zeros(ws) as tf.Tensor4D, stride, pad).shape);
    const f = (a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad).mul(dyT).sum();
    const forward = tf.conv2d(tf.tensor(x, xs) as tf.Tensor4D, tf.tensor(w, ws) as tf.Tensor4D, stride, pad);
    return [...tf.grads(f)([tf.tensor(x, xs), tf.tensor(w, ws)]), forward].map((g) => g.dataSync());
  });
}

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

// Shapes the architectures use (3x3, same, stride 1) and the other cases the kernels must handle.
const CASES: [number, number, number, number, number, "same" | "valid"][] = [
  // batch, size, channels in, channels out, stride, padding
  [3, 48, 1, 16, 1, "same"],
  [2, 12, 16, 32, 1, "same"],
  [8, 6, 8, 16, 1, "same"], // a 6x6 map over enough images for Winograd (at batch 2 it takes XNNPACK)
  [5, 6, 8, 16, 1, "same"], // 45 tiles: a last block of one tile (the one-row kernel)
  [7, 6, 16, 8, 1, "same"], // 63 tiles: a last block of three
  [2, 6, 8, 8, 1, "valid"],
  [2, 11, 4, 6, 2, "same"],
  [2, 12, 4, 6, 2, "same"],
  [2, 11, 4, 6, 2, "valid"],
  [2, 12, 4, 6, 2, "valid"],
  [2, 9, 4, 16, 1, "valid"],
];
// Every convolution of every architecture (3x3, same, stride 1), at its input size.
const layerShapes = new Set<string>();
for (const spec of Object.values(ARCHITECTURES)) {
  let cin = 1, size = 48;
  for (const filters of spec.blockFilters) {
    for (let c = 0; c < spec.convsPerBlock; c++, cin = filters) layerShapes.add(`${size},${cin},${filters}`);
    size /= 2;
  }
}
for (const key of layerShapes) {
  const [size, cin, cout] = key.split(",").map(Number);
  CASES.push([2, size, cin, cout, 1, "same"]);
}

for (const [n, size, cin, cout, stride, pad] of CASES) {
  Deno.test(`conv2d and its gradients on wasm match the cpu backend: ${n}x${size}x${size}x${cin}->${cout}, stride ${stride}, ${pad}`, async () => {
    await initBackend();
    const xs: Shape4 = [n, size, size, cin], ws: Shape4 = [3, 3, cin, cout];
    const x = random(xs.reduce((a, b) => a * b), 1), w = random(ws.reduce((a, b) => a * b), 2);
    const outShape = tf.tidy(() =>
      tf.conv2d(tf.zeros(xs) as tf.Tensor4D, tf.zeros(ws) as tf.Tensor4D, stride, pad).shape
    );
    const dy = random(outShape.reduce((a, b) => a * b), 3);
    const [dxWasm, dwWasm, yWasm] = convGrads(x, xs, w, ws, dy, stride, pad);
    await tf.setBackend("cpu");
    const [dxCpu, dwCpu, yCpu] = convGrads(x, xs, w, ws, dy, stride, pad);
    await tf.setBackend("wasm");
    const pairs = [[dxWasm, dxCpu, "dx"], [dwWasm, dwCpu, "dw"], [yWasm, yCpu, "y"]] as const;
    for (const [got, want, name] of pairs) {
      assert.equal(got.length, want.length, `${name} size`);
      const scale = (want as Float32Array).reduce((m: number, v: number) => Math.max(m, Math.abs(v)), 1);
      for (let i = 0; i < got.length; i++) {
        assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * scale, `${name}[${i}]: ${got[i]} vs ${want[i]}`);
      }
    }
  });
}

Deno.test("conv2d filter gradient matches finite differences", async () => {
  await initBackend();
  const xs: Shape4 = [2, 7, 7, 2], ws: Shape4 = [3, 3, 2, 3];
  const x = tf.tensor(random(196, 5), xs) as tf.Tensor4D;
  const w = random(54, 6);
  const loss = (wv: Float32Array) =>
    tf.tidy(() => tf.conv2d(x, tf.tensor(wv, ws) as tf.Tensor4D, 2, "same").square().sum().dataSync()[0]);
  const grad = tf.tidy(() =>
    tf.grad((wt: tf.Tensor) => tf.conv2d(x, wt as tf.Tensor4D, 2, "same").square().sum())(tf.tensor(w, ws)).dataSync()
  );
  for (const i of [0, 7, 20, 33, 53]) {
    const h = 1e-2;
    const plus = w.slice(), minus = w.slice();
    plus[i] += h;
    minus[i] -= h;
    const numeric = (loss(plus) - loss(minus)) / (2 * h);
    assert.ok(Math.abs(numeric - grad[i]) < 2e-2 * Math.max(1, Math.abs(numeric)), `w[${i}]: ${grad[i]} vs ${numeric}`);
  }
});

Deno.test("the page's JavaScript filter-gradient kernel matches ours: same, valid and strided", async () => {
  await initBackend();
  const kernel = filterGradientKernel(tf);
  for (const [stride, pad] of [[1, "same"], [1, "valid"], [2, "same"]] as const) {
    const xs: Shape4 = [2, 9, 7, 3], ws: Shape4 = [3, 3, 3, 4];
    const x = tf.tensor4d(random(2 * 9 * 7 * 3, 5), xs);
    const dyShape = tf.conv2d(x, tf.zeros(ws) as tf.Tensor4D, stride, pad).shape;
    const dy = tf.tensor4d(random(dyShape.reduce((a, b) => a * b), 9), dyShape);
    const ours = tf.grad((w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, stride, pad).mul(dy).sum())(tf.zeros(ws));
    const info = kernel({
      inputs: { x, dy },
      backend: tf.backend(),
      attrs: { strides: stride, pad, dataFormat: "NHWC", dimRoundingMode: undefined, filterShape: ws },
    });
    const page = tf.engine().makeTensorFromTensorInfo(info);
    const gap = tf.max(tf.abs(page.sub(ours))).dataSync()[0];
    assert.ok(gap < 1e-4, `stride ${stride} ${pad}: largest difference ${gap}`);
    tf.dispose([x, dy, ours, page]);
  }
});

// A folded convolution (bias, then ReLU or none) takes Winograd's epilogue where Winograd applies, XNNPACK elsewhere.
for (
  const [n, size, cin, cout, activation] of [
    [1, 48, 24, 24, "relu"],
    [2, 12, 16, 32, "linear"],
    [1, 6, 96, 192, "relu"],
  ] as const
) {
  Deno.test(`fused conv2d with bias and ${activation} on wasm matches the cpu backend: ${n}x${size}x${size}x${cin}->${cout}`, async () => {
    await initBackend();
    const xs: Shape4 = [n, size, size, cin], ws: Shape4 = [3, 3, cin, cout];
    const x = random(xs.reduce((a, b) => a * b), 4), w = random(ws.reduce((a, b) => a * b), 5), b = random(cout, 6);
    const run = () =>
      tf.tidy(() =>
        tf.fused.conv2d({
          x: tf.tensor(x, xs) as tf.Tensor4D,
          filter: tf.tensor(w, ws) as tf.Tensor4D,
          strides: 1,
          pad: "same",
          bias: tf.tensor1d(b),
          activation,
        }).dataSync() as Float32Array
      );
    const got = run();
    await tf.setBackend("cpu");
    const want = run();
    await tf.setBackend("wasm");
    const scale = want.reduce((m: number, v: number) => Math.max(m, Math.abs(v)), 1);
    assert.ok(want.some((v) => v === 0) === (activation === "relu"), "the cpu reference clamps only with relu");
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * scale, `y[${i}]: ${got[i]} vs ${want[i]}`);
    }
  });
}

Deno.test("kept filter transforms: a folded net predicts as with per-call transforms (batch 1, 6x6 maps included, and 5), a weight set anew is transformed anew, and dispose frees them", async () => {
  await initBackend();
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const start = backend.numDataIds();
  const model = buildModel("medium", 48, 3);
  const plain = foldBatchNorm(tf, model) as tf.LayersModel, kept = foldBatchNorm(tf, model) as tf.LayersModel;
  model.dispose();
  const ids = backend.numDataIds();
  keepFilterTransforms(kept);
  assert.equal(
    backend.numDataIds() - ids,
    7,
    "every 3x3 convolution but the first (one input channel) keeps its transform",
  );
  const compare = (label: string) => {
    for (const n of [1, 5]) {
      const [a, b] = tf.tidy(() => {
        const x = tf.randomUniform([n, 48, 48, 1], 0, 1, "float32", n);
        return [plain, kept].map((m) => (m.predict(x) as tf.Tensor).dataSync());
      });
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `${label}, batch ${n}: ${a[i]} vs ${b[i]}`);
      }
    }
  };
  compare("as folded");
  const conv = (m: tf.LayersModel) => m.layers.filter((l) => l.getClassName() === "Conv2D")[3];
  const weights = conv(plain).getWeights().map((w) => tf.mul(w, 1.5));
  conv(plain).setWeights(weights), conv(kept).setWeights(weights);
  tf.dispose(weights);
  compare("one filter set anew");
  plain.dispose(), kept.dispose();
  assert.equal(backend.numDataIds(), start, "dispose frees the weights and the kept transforms");
});

// A kept transform is F(4x4, 3x3)'s where the map divides into 4x4 blocks (9 tiles at 12x12: a last block of one).
for (const [n, size, cin, cout] of [[1, 48, 24, 24], [1, 12, 112, 112], [3, 24, 24, 48], [2, 8, 16, 8]] as const) {
  Deno.test(`a folded convolution with its F(4x4, 3x3) transform kept matches the cpu backend: ${n}x${size}x${size}x${cin}->${cout}`, async () => {
    await initBackend();
    const input = tf.input({ shape: [size, size, cin] });
    const layer = tf.layers.conv2d({ filters: cout, kernelSize: 3, padding: "same", activation: "relu" });
    const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
    const [w, b] = [random(9 * cin * cout, 7), random(cout, 8)];
    model.setWeights([tf.tensor(w, [3, 3, cin, cout]), tf.tensor1d(b)]);
    const xs: Shape4 = [n, size, size, cin], x = random(xs.reduce((p, q) => p * q), 9);
    keepFilterTransforms(model);
    const got = tf.tidy(() => (model.predict(tf.tensor(x, xs)) as tf.Tensor).dataSync() as Float32Array);
    model.dispose();
    await tf.setBackend("cpu");
    const want = tf.tidy(() =>
      tf.relu(
        tf.conv2d(tf.tensor(x, xs) as tf.Tensor4D, tf.tensor(w, [3, 3, cin, cout]) as tf.Tensor4D, 1, "same").add(
          tf.tensor1d(b),
        ),
      ).dataSync() as Float32Array
    );
    await tf.setBackend("wasm");
    const scale = want.reduce((m: number, v: number) => Math.max(m, Math.abs(v)), 1);
    for (let i = 0; i < got.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * scale, `y[${i}]: ${got[i]} vs ${want[i]}`);
    }
  });
}
