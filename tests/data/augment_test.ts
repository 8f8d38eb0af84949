import { assert } from "../assert.ts";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import {
  augmentBatch,
  augmentMatrix,
  betaDraw,
  contrastBatch,
  DEFAULT_AUGMENT,
  jpegBatch,
  jpegTable,
  mixBatch,
  PHOTOMETRIC_AUGMENT,
  photometricBatch,
} from "../../lib/data/augment.ts";
import sharp from "sharp";
import { seededRandom } from "../../lib/util/random.ts";
import { batchNormTraining } from "../../lib/model/layers.ts";

const identity = { flip: false, degrees: 0, scale: 1, shiftX: 0, shiftY: 0 };

function transform(x: tf.Tensor4D, m: number[]) {
  return tf.image.transform(x, tf.tensor2d([m]), "bilinear", "nearest");
}

Deno.test("augmentMatrix: identity leaves the image alone; flip mirrors it; a shift moves it", async () => {
  await initBackend();
  const x = tf.randomUniform([1, 48, 48, 1]) as tf.Tensor4D;
  assert.deepEqual(Array.from(transform(x, augmentMatrix(48, identity)).dataSync()), Array.from(x.dataSync()));
  const flipped = transform(x, augmentMatrix(48, { ...identity, flip: true }));
  assert.deepEqual(Array.from(flipped.dataSync()), Array.from(tf.image.flipLeftRight(x).dataSync()));
  const shifted = transform(x, augmentMatrix(48, { ...identity, shiftX: 3 })).dataSync();
  assert.equal(shifted[10 * 48 + 5], x.dataSync()[10 * 48 + 8]);
});

Deno.test("augmentBatch is seeded, keeps the shape and changes the pixels", async () => {
  await initBackend();
  const x = tf.randomUniform([8, 48, 48, 1]) as tf.Tensor4D;
  const a = augmentBatch(x, DEFAULT_AUGMENT, seededRandom(3));
  const b = augmentBatch(x, DEFAULT_AUGMENT, seededRandom(3));
  assert.deepEqual(a.shape, [8, 48, 48, 1]);
  assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  assert.ok(tf.sub(a, x).abs().mean().dataSync()[0] > 0.01);
});

Deno.test("contrastBatch is seeded and scales each image about its own mean, within 1 +- the limit", async () => {
  await initBackend();
  const x = tf.randomUniform([32, 48, 48, 1], 0.2, 0.8) as tf.Tensor4D;
  const a = contrastBatch(x, 0.3, seededRandom(6));
  assert.deepEqual(Array.from(a.dataSync()), Array.from(contrastBatch(x, 0.3, seededRandom(6)).dataSync()));
  const spread = (t: tf.Tensor) => tf.moments(t, [1, 2, 3]);
  const [before, after] = [spread(x), spread(a)];
  const means = [before.mean.dataSync(), after.mean.dataSync()];
  const ratios = Array.from(after.variance.dataSync(), (v, i) => Math.sqrt(v / before.variance.dataSync()[i]));
  means[0].forEach((m, i) => assert.ok(Math.abs(m - means[1][i]) < 1e-5, `image ${i} keeps its mean`));
  assert.ok(ratios.every((r) => r >= 0.7 - 1e-4 && r <= 1.3 + 1e-4), `factors ${ratios}`);
  assert.ok(Math.min(...ratios) < 0.85 && Math.max(...ratios) > 1.15, `factors spread: ${ratios}`);
  const none = contrastBatch(x, 0, seededRandom(6));
  assert.ok(tf.sub(none, x).abs().max().dataSync()[0] < 1e-6, "limit 0 changes nothing");
});

Deno.test("photometricBatch is seeded, stays in 0..1, and each change does what it says", async () => {
  await initBackend();
  const x = tf.randomUniform([16, 48, 48, 1]) as tf.Tensor4D;
  const a = photometricBatch(x, PHOTOMETRIC_AUGMENT, seededRandom(5));
  assert.deepEqual(
    Array.from(a.dataSync()),
    Array.from(photometricBatch(x, PHOTOMETRIC_AUGMENT, seededRandom(5)).dataSync()),
  );
  assert.ok(a.min().dataSync()[0] >= 0 && a.max().dataSync()[0] <= 1);
  assert.ok(tf.sub(a, x).abs().mean().dataSync()[0] > 0.02, "the pixels change");
  const none = {
    blur: 0,
    gamma: 0,
    contrast: 0,
    brightness: 0,
    noise: 0,
    occlude: 0,
    jpeg: 0,
    jpegQuality: [20, 90] as [number, number],
  };
  const same = photometricBatch(x, none, seededRandom(1));
  assert.ok(tf.sub(same, x).abs().max().dataSync()[0] < 1e-3, "no change when every setting is 0");
  // Full blur smooths: neighbouring pixels of noise come closer.
  const step = (t: tf.Tensor) =>
    t.slice([0, 0, 1, 0], [-1, -1, 47, -1]).sub(t.slice([0, 0, 0, 0], [-1, -1, 47, -1])).abs().mean().dataSync()[0];
  assert.ok(step(photometricBatch(x, { ...none, blur: 1 }, seededRandom(2))) < 0.9 * step(x), "blur smooths");
  // Every image gets a patch: a rectangle of one gray, at least 7x7 pixels, covering at most 35% of each side.
  const patched = photometricBatch(x, { ...none, occlude: 1 }, seededRandom(3)).arraySync() as number[][][][];
  const original = x.arraySync() as number[][][][];
  for (let i = 0; i < 16; i++) {
    const changed = patched[i].flatMap((row, y) =>
      row.flatMap((p, px) => (Math.abs(p[0] - original[i][y][px][0]) > 1e-3 ? [[y, px]] : []))
    );
    const ys = changed.map(([y]) => y), xs = changed.map(([, px]) => px);
    const [h, w] = [Math.max(...ys) - Math.min(...ys) + 1, Math.max(...xs) - Math.min(...xs) + 1];
    assert.ok(h >= 7 && w >= 7 && h <= 17 && w <= 17, `image ${i}: a ${h}x${w} patch`);
    assert.ok(changed.length >= 0.95 * h * w, `image ${i}: the patch is filled`);
  }
});

Deno.test("jpegBatch matches a real JPEG encoder (libjpeg through sharp) at the same quality", async () => {
  await initBackend();
  assert.deepEqual(jpegTable(50).slice(0, 3), [16, 11, 10]); // quality 50 is the standard table itself
  assert.deepEqual(jpegTable(100), new Array(64).fill(1));
  // A face-like test card: a smooth gradient, a dark disc with a sharp edge, and fine stripes.
  const pixels = Uint8Array.from({ length: 48 * 48 }, (_, i) => {
    const y = Math.floor(i / 48), x = i % 48;
    const disc = (x - 20) ** 2 + (y - 26) ** 2 < 100 ? -90 : 0;
    return Math.max(0, Math.min(255, 60 + 3 * x + y + disc + (y > 38 ? 40 * (x % 2) : 0)));
  });
  const x = tf.tensor4d(Float32Array.from(pixels, (p) => p / 255), [1, 48, 48, 1]);
  for (const quality of [20, 75]) {
    const encoded = await sharp(pixels, { raw: { width: 48, height: 48, channels: 1 } })
      .jpeg({ quality, chromaSubsampling: "4:4:4" }).toBuffer();
    const decoded = await sharp(encoded).extractChannel(0).raw().toBuffer();
    const ours = jpegBatch(x, [quality]).mul(255).dataSync();
    const error = (a: ArrayLike<number>) =>
      Array.from(decoded).reduce((sum, v, i) => sum + Math.abs(v - a[i]), 0) / 2304;
    // Ours lands within a gray level of libjpeg's on average, far closer than the image before encoding.
    assert.ok(error(ours) < 1, `quality ${quality}: ${error(ours).toFixed(2)} gray levels from libjpeg's decoding`);
    assert.ok(error(pixels) > 2 * error(ours) + 1, `quality ${quality}: encoding changes the image`);
  }
  // Quality 0 leaves an image as it is; the others are whole 8x8 blocks only.
  const pair = tf.concat([x, x]);
  const mixed = jpegBatch(pair, [0, 30]);
  assert.deepEqual(Array.from(mixed.slice([0], [1]).dataSync()), Array.from(x.dataSync()));
  assert.throws(() => jpegBatch(tf.zeros([1, 12, 12, 1]) as tf.Tensor4D, [50]), /not whole 8x8 blocks/);
});

Deno.test("batchNormTraining's hand-written gradient equals autodiff of moments + batchNorm", async () => {
  await initBackend();
  const x = tf.randomNormal([4, 5, 5, 3]), dy = tf.randomNormal([4, 5, 5, 3]);
  const gamma = tf.randomNormal([3]) as tf.Tensor1D, beta = tf.randomNormal([3]) as tf.Tensor1D;
  const reference = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const m = tf.moments(xx, [0, 1, 2]);
    return tf.batchNorm(xx, m.mean, m.variance, b as tf.Tensor1D, g as tf.Tensor1D, 1e-3).mul(dy).sum();
  };
  const fast = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
    const { y, mean, variance } = batchNormTraining(xx, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
    tf.dispose([mean, variance]);
    return y.mul(dy).sum();
  };
  const want = tf.grads(reference)([x, gamma, beta]), got = tf.grads(fast)([x, gamma, beta]);
  want.forEach((w, i) => assert.ok(tf.sub(w, got[i]).abs().max().dataSync()[0] < 1e-4, `gradient ${i}`));
});

Deno.test("betaDraw: Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1)), for a below and above 1", () => {
  const random = seededRandom(9);
  for (const alpha of [0.2, 1, 4]) {
    const draws = Array.from({ length: 20000 }, () => betaDraw(alpha, random));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / draws.length;
    assert.ok(draws.every((d) => d >= 0 && d <= 1));
    assert.ok(Math.abs(mean - 0.5) < 0.01, `alpha ${alpha}: mean ${mean}`);
    const expected = 1 / (4 * (2 * alpha + 1));
    assert.ok(
      Math.abs(variance - expected) < 0.05 * expected,
      `alpha ${alpha}: variance ${variance}, want ${expected}`,
    );
  }
});

Deno.test("mixBatch: mixup and cutmix mix each image and its target in the same shares, repeatably", async () => {
  await initBackend();
  // Image i is flat at level i/8 and its target is class i: a mixed image's mean must be its target's mean level.
  const n = 8, level = (i: number) => i / n;
  const images = tf.tensor4d(Float32Array.from({ length: n * 48 * 48 }, (_, p) => level(Math.floor(p / 2304))), [
    n,
    48,
    48,
    1,
  ]);
  const targets = Float32Array.from({ length: n * n }, (_, k) => k % (n + 1) === 0 ? 1 : 0);
  for (const options of [{ mixup: 0.4, cutmix: 0 }, { mixup: 0, cutmix: 1 }, { mixup: 0.4, cutmix: 1 }]) {
    for (const seed of [1, 2, 3]) {
      const mixed = mixBatch(images, targets, n, options, seededRandom(seed));
      const again = mixBatch(images, targets, n, options, seededRandom(seed));
      assert.deepEqual(again.targets, mixed.targets);
      assert.ok(mixed.lambda >= 0 && mixed.lambda <= 1);
      const pixels = mixed.images.dataSync() as Float32Array;
      for (let i = 0; i < n; i++) {
        const row = mixed.targets.subarray(i * n, (i + 1) * n);
        assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6, "a mixed target sums to 1");
        const want = row.reduce((sum, t, k) => sum + t * level(k), 0);
        const image = pixels.subarray(i * 2304, (i + 1) * 2304);
        const mean = image.reduce((a, b) => a + b, 0) / 2304;
        assert.ok(Math.abs(mean - want) < 1e-4, `${JSON.stringify(options)} seed ${seed}: image ${i} ${mean}, ${want}`);
        const cut = options.mixup === 0;
        if (cut) assert.ok(image.every((v) => row.some((t, k) => t > 0 && Math.abs(v - level(k)) < 1e-6)), "pasted");
      }
    }
  }
  const off = mixBatch(images, targets, n, { mixup: 0, cutmix: 0 }, () => assert.fail("drew a number"));
  assert.ok(off.images === images && off.targets === targets && off.lambda === 1, "both off: the batch as it is");
  const some = mixBatch(images, targets, n, { mixup: 0.4, cutmix: 0 }, seededRandom(4));
  assert.notDeepEqual(some.targets, targets, "a batch is mixed");
});
