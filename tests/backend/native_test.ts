/** The native WASM SIMD kernels (lib/backend/kernels.c) against tfjs's own ops on the cpu backend. */
import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { batchNormTraining, nativeDropout } from "../../lib/model/layers.ts";
import { nativeApplies } from "../../lib/backend/native.ts";

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

/** Run `f` on wasm and on the cpu backend; each one's outputs as arrays. */
async function onBothBackends(f: () => tf.Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  await initBackend();
  const read = () => tf.tidy(f).map((t) => t.dataSync() as Float32Array);
  const wasm = read();
  await tf.setBackend("cpu");
  const cpu = read();
  await tf.setBackend("wasm");
  return [wasm, cpu];
}

function assertClose(got: Float32Array, want: Float32Array, tolerance: number, name: string) {
  assert.equal(got.length, want.length, `${name} size`);
  const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= tolerance * scale, `${name}[${i}]: ${v} vs ${want[i]}`));
}

// Activation shapes of the architectures' batch norms (and a batch of one pixel row per channel block).
for (const shape of [[4, 48, 48, 16], [3, 12, 12, 64], [5, 6, 6, 256], [1, 1, 3, 4]]) {
  Deno.test(`batch norm on the native kernels matches tfjs ops on cpu: ${shape.join("x")}`, async () => {
    const channels = shape[3], size = shape.reduce((a, b) => a * b);
    const [x, dy] = [random(size, 1).map((v) => 3 * v + 1), random(size, 2)];
    const [gamma, beta] = [random(channels, 3), random(channels, 4)];
    const [wasm, cpu] = await onBothBackends(() => {
      const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { y, mean, variance } = batchNormTraining(xx, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
        tf.dispose([mean, variance]);
        return y.mul(tf.tensor(dy, shape)).sum();
      };
      const inputs = [tf.tensor(x, shape), tf.tensor1d(gamma), tf.tensor1d(beta)];
      const { y, mean, variance } = batchNormTraining(
        inputs[0],
        inputs[1] as tf.Tensor1D,
        inputs[2] as tf.Tensor1D,
        1e-3,
      );
      return [y, mean, variance, ...tf.grads(f)(inputs)];
    });
    ["y", "mean", "variance", "dx", "dgamma", "dbeta"].forEach((name, i) => assertClose(wasm[i], cpu[i], 2e-5, name));
  });
}

Deno.test("ReLU's gradient on the native kernel matches the cpu backend", async () => {
  const x = random(2 * 6 * 6 * 32, 5), dy = random(x.length, 6);
  x[0] = 0; // the gradient at 0 is 0, as in tfjs
  const [wasm, cpu] = await onBothBackends(() => [
    tf.grad((t: tf.Tensor) => tf.relu(t).mul(tf.tensor(dy, [2, 6, 6, 32])).sum())(tf.tensor(x, [2, 6, 6, 32])),
  ]);
  assertClose(wasm[0], cpu[0], 0, "dx");
});

for (const [h, w, pad] of [[8, 6, "valid"], [7, 9, "valid"], [8, 8, "same"], [48, 48, "same"]] as const) {
  Deno.test(`MaxPoolGrad 2x2 stride 2 on the native kernel (${h}x${w}x16, ${pad}) matches the cpu backend`, async () => {
    const x = random(2 * h * w * 16, 7);
    x[1] = x[17] = x[16 * w + 1] = 2; // a tie: the first maximum takes the gradient
    const [wasm, cpu] = await onBothBackends(() => [
      tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, 2, 2, pad).square().sum())(tf.tensor4d(x, [2, h, w, 16])),
    ]);
    assertClose(wasm[0], cpu[0], 1e-6, "dx");
  });
}

Deno.test("native dropout keeps about 1 - rate of the values, scaled by 1 / (1 - rate), and its gradient is the mask", async () => {
  await initBackend();
  const x = tf.ones([64, 24, 24, 16]);
  assert.ok(nativeApplies(x));
  const [y, dx] = tf.tidy(() => {
    const f = (t: tf.Tensor) => nativeDropout(t, 0.25, 1234).mul(2).sum();
    const { value, grad } = tf.valueAndGrad(f)(x);
    return [nativeDropout(x, 0.25, 1234), grad, value];
  });
  const values = y.dataSync(), grads = dx.dataSync();
  const kept = values.filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6), "kept values are scaled by 1 / keep");
  assert.ok(Math.abs(kept.length / values.length - 0.75) < 0.01, `kept ${kept.length / values.length}`);
  // Same seed, same mask: the gradient (2 * mask) is zero exactly where the output is.
  values.forEach((v, i) => assert.equal(grads[i], 2 * v));
  const other = tf.tidy(() => nativeDropout(x, 0.25, 99).dataSync());
  assert.ok(other.some((v, i) => v !== values[i]), "another seed gives another mask");
  tf.dispose([x, y, dx]);
});

/** The sections of a WASM module: [id, bytes] pairs in file order. */
function wasmSections(bytes: Uint8Array): [number, Uint8Array][] {
  const sections: [number, Uint8Array][] = [];
  let at = 8; // magic and version
  while (at < bytes.length) {
    const id = bytes[at++];
    let size = 0;
    for (let shift = 0;; shift += 7) {
      const byte = bytes[at++];
      size |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    sections.push([id, bytes.subarray(at, at + size)]);
    at += size;
  }
  return sections;
}

Deno.test("kernels.wasm has no data segments and its code never reads or moves a stack pointer", () => {
  const sections = wasmSections(Deno.readFileSync(new URL("../../lib/backend/kernels.wasm", import.meta.url)));
  const ids = sections.map(([id]) => id);
  assert.ok(ids.includes(10), "a code section");
  assert.ok(!ids.includes(11) && !ids.includes(12), `no data section: sections ${ids.join(", ")}`);
  // global.get / global.set (0x23 / 0x24) of global 0, the linker's __stack_pointer, whose index the
  // linker pads to up to five LEB128 bytes (0x80 ... 0x00). A byte scan can only err towards failing
  // (an immediate holding these bytes), never towards passing.
  const code = sections.find(([id]) => id === 10)![1];
  const indexZeroAt = (i: number) => {
    for (let k = i; k < i + 5; k++) if (code[k] !== 0x80) return code[k] === 0;
    return false;
  };
  const uses = code.findIndex((byte, i) => (byte === 0x23 || byte === 0x24) && indexZeroAt(i + 1));
  assert.equal(uses, -1, "a global.get/global.set 0 in the code section");
});
