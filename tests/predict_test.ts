import { assert } from "./assert.ts";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { initBackend, tf } from "../lib/backend.ts";
import { buildModel } from "../lib/models.ts";
import { loadModel, makeMetadata, saveModel } from "../lib/model_io.ts";
import { batchTensor, facePixels, loadDataset, resolveDataPath } from "../lib/data.ts";
import { applyOrientation, decodeImage, encodeRgbaPng, exifOrientation, sceneWithFace } from "../lib/images.ts";
import { collectImages, predictFile, predictFiles } from "../lib/predict.ts";
import { EMOTIONS } from "../lib/labels.ts";
import { fileURLToPath } from "node:url";
import encodeWebp, { init as initWebpEncoder } from "@jsquash/webp/encode.js";

/** A saved (untrained) compact model in a temporary folder. */
async function tempModel() {
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "model");
  const model = buildModel("compact");
  await saveModel(dir, model, makeMetadata(model, "compact", {}));
  return loadModel(dir);
}

function grayPng(width: number, height: number, pixel: (x: number, y: number) => number): Uint8Array {
  const png = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x);
      png.data[i] = png.data[i + 1] = png.data[i + 2] = pixel(x, y);
      png.data[i + 3] = 255;
    }
  }
  return new Uint8Array(PNG.sync.write(png));
}

/** A JPEG with an EXIF APP1 segment holding `orientation`. */
function jpegWithOrientation(width: number, height: number, orientation: number): Uint8Array {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([i % width < 4 ? 250 : 10, 10, 10, 255], 4 * i); // bright left edge
  const plain = new Uint8Array(jpeg.encode({ width, height, data }, 95).data);
  const tiff = [0x4d, 0x4d, 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0, 0, 0, 0, 0];
  const body = [..."Exif"].map((c) => c.charCodeAt(0)).concat([0, 0], tiff);
  const app1 = [0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 255, ...body];
  return new Uint8Array([...plain.subarray(0, 2), ...app1, ...plain.subarray(2)]);
}

Deno.test({
  name: "predict: a FER2013 face pasted into a larger scene is found (IoU >= 0.5) and the line has the schema",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const data = await loadDataset(resolveDataPath());
    const face = { width: 48, height: 48, data: facePixels(data.splits.PrivateTest, 0) };
    const scene = sceneWithFace(face, 160, [230, 140]);
    const path = join(Deno.makeTempDirSync(), "scene.png");
    Deno.writeFileSync(path, encodeRgbaPng(scene.image));
    const { image: _, ...line } = await predictFile(loaded, path);
    assert.deepEqual(Object.keys(line).sort(), ["error", "faces", "height", "path", "width"]);
    assert.equal(line.error, null);
    assert.deepEqual([line.width, line.height], [640, 480]);
    assert.ok(line.faces.length >= 1, "a face is found");
    const [x, y, w, h] = line.faces[0].box;
    const [x0, y0, side] = scene.box;
    const ix = Math.max(0, Math.min(x + w, x0 + side) - Math.max(x, x0));
    const iy = Math.max(0, Math.min(y + h, y0 + side) - Math.max(y, y0));
    const iou = (ix * iy) / (w * h + side * side - ix * iy);
    assert.ok(iou >= 0.5, `IoU ${iou.toFixed(2)} of ${line.faces[0].box}`);
    const f = line.faces[0];
    assert.ok(EMOTIONS.includes(f.emotion as typeof EMOTIONS[number]));
    assert.deepEqual(Object.keys(f.probabilities), [...EMOTIONS]);
    const total = Object.values(f.probabilities).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - 1) < 1e-3);
    assert.ok(f.score > 0 && f.score <= 1);
  },
});

Deno.test({
  name: "predict --no-detect on a 48x48 face crop gives the model's own output",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const data = await loadDataset(resolveDataPath());
    const set = data.splits.PrivateTest;
    const pixels = facePixels(set, 5);
    const path = join(Deno.makeTempDirSync(), "crop.png");
    Deno.writeFileSync(path, grayPng(48, 48, (x, y) => pixels[y * 48 + x]));
    const { faces } = await predictFile(loaded, path, { noDetect: true });
    assert.equal(faces.length, 1);
    assert.deepEqual(faces[0].box, [0, 0, 48, 48]);
    const direct = tf.tidy(() => (loaded.model.predict(batchTensor(set, [5])) as tf.Tensor).dataSync());
    EMOTIONS.forEach((e, c) => assert.ok(Math.abs(faces[0].probabilities[e] - direct[c]) < 1e-4, e));
  },
});

Deno.test({
  name: "predict: bad inputs each get an error naming the file, and the batch goes on",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    const good = grayPng(48, 48, (x, y) => (x * y) % 256);
    const huge = good.slice();
    new DataView(huge.buffer).setUint32(16, 10000); // IHDR width
    new DataView(huge.buffer).setUint32(20, 10000); // IHDR height
    const files: Record<string, Uint8Array> = {
      "empty.png": new Uint8Array(),
      "truncated.png": good.subarray(0, 60),
      "text.jpg": new TextEncoder().encode("this is not an image"),
      "image.webp": new Uint8Array(
        [..."RIFF"].map((c) => c.charCodeAt(0)).concat([0, 0, 0, 0], [..."WEBP"].map((c) => c.charCodeAt(0))),
      ),
      "huge.png": huge,
      "good.png": good,
    };
    for (const [name, bytes] of Object.entries(files)) Deno.writeFileSync(join(dir, name), bytes);
    const paths = collectImages([dir, join(dir, "missing.png")]);
    assert.equal(paths.length, 7); // the six files in the folder, plus the missing one named on the command line
    const lines = [];
    for (const p of paths) lines.push(await predictFile(loaded, p, { noDetect: true }));
    const byName = Object.fromEntries(lines.map((l) => [l.path.split("/").pop()!, l]));
    assert.match(byName["empty.png"].error!, /empty\.png: empty file/);
    assert.match(byName["truncated.png"].error!, /truncated\.png: cannot decode png/);
    assert.match(byName["text.jpg"].error!, /text\.jpg: not a PNG, JPEG or WebP image/);
    assert.match(byName["image.webp"].error!, /image\.webp: cannot decode webp image/);
    assert.match(byName["huge.png"].error!, /huge\.png: image too large \(10000x10000, 100\.0 megapixels/);
    assert.match(byName["missing.png"].error!, /missing\.png/);
    assert.equal(byName["good.png"].error, null);
    assert.equal(byName["good.png"].faces.length, 1);
  },
});

Deno.test("a 16-bit gray PNG decodes to 8-bit RGBA", async () => {
  const png16 = new PNG({ width: 4, height: 2, bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  png16.data = Buffer.from(new Uint16Array(8).fill(0x8000).buffer);
  const decoded = await decodeImage(
    new Uint8Array(PNG.sync.write(png16, { bitDepth: 16, colorType: 0, inputColorType: 0, inputHasAlpha: false })),
    "g16.png",
  );
  assert.deepEqual([decoded.width, decoded.height, decoded.data.length], [4, 2, 32]);
});

Deno.test("EXIF orientation is read and applied (a 6 turns a landscape photo upright)", async () => {
  const bytes = jpegWithOrientation(32, 16, 6);
  assert.equal(exifOrientation(bytes), 6);
  const image = await decodeImage(bytes, "rotated.jpg");
  assert.deepEqual([image.width, image.height], [16, 32]);
  // The bright left edge of the stored image becomes the top edge once turned clockwise.
  assert.ok(image.data[4 * 8] > 200 && image.data[4 * (31 * 16 + 8)] < 60);
  const square = { width: 2, height: 2, data: Uint8Array.from([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]) };
  assert.deepEqual(Array.from(applyOrientation(square, 3).data.filter((_, i) => i % 4 === 0)), [4, 3, 2, 1]);
});

Deno.test({
  name: "the predict command prints one JSON line per image and fails only when every input failed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    Deno.writeFileSync(join(dir, "a.png"), grayPng(48, 48, () => 100));
    Deno.writeFileSync(join(dir, "b.jpg"), new Uint8Array());
    const annotate = join(dir, "annotated");
    const run = (...paths: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "lib/predict.ts", "--model", loaded.dir, "--no-detect", "--annotate", annotate, ...paths],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const mixed = await run(dir);
    assert.equal(mixed.code, 0, new TextDecoder().decode(mixed.stderr));
    const lines = new TextDecoder().decode(mixed.stdout).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.equal(lines.filter((l) => l.error).length, 1);
    assert.ok(Deno.statSync(join(annotate, "a.annotated.png")).size > 0);
    const allBad = await run(join(dir, "b.jpg"));
    assert.equal(allBad.code, 1);
  },
});

Deno.test("a WebP photo decodes (libwebp in WASM)", async () => {
  const dir = fileURLToPath(import.meta.resolve("@jsquash/webp/encode.js")).replace(/encode\.js$/, "codec/enc/");
  await initWebpEncoder(await WebAssembly.compile(Deno.readFileSync(dir + "webp_enc.wasm")));
  const pixels = new Uint8ClampedArray(20 * 10 * 4).fill(180);
  const image = await decodeImage(
    new Uint8Array(await encodeWebp({ data: pixels, width: 20, height: 10 } as ImageData)),
    "a.webp",
  );
  assert.deepEqual([image.width, image.height], [20, 10]);
  assert.ok(Math.abs(image.data[0] - 180) <= 3);
});

Deno.test("a CMYK JPEG and a palette PNG decode to the right colours", async () => {
  for (const name of ["cmyk.jpg", "palette.png"]) {
    const path = new URL(`./fixtures/${name}`, import.meta.url);
    const image = await decodeImage(Deno.readFileSync(path), name);
    assert.deepEqual([image.width, image.height], [32, 24]);
    const pixel = (x: number) => Array.from(image.data.subarray(4 * x, 4 * x + 3));
    [[0, [200, 60, 120]], [31, [30, 60, 120]]].forEach(([x, want]) =>
      pixel(x as number).forEach((v, c) =>
        assert.ok(Math.abs(v - (want as number[])[c]) <= 6, `${name} (${x}): ${pixel(x as number)}`)
      )
    );
  }
});

Deno.test({
  name: "predicting files together (one classification batch) gives the same lines as one by one",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    const paths = ["a.png", "bad.png", "b.png"].map((n) => join(dir, n));
    Deno.writeFileSync(paths[0], grayPng(48, 48, (x, y) => (x * 5 + y) % 256));
    Deno.writeFileSync(paths[1], new Uint8Array([1, 2, 3]));
    Deno.writeFileSync(paths[2], grayPng(48, 48, (x) => x * 4));
    const strip = ({ image: _, ...line }: Awaited<ReturnType<typeof predictFile>>) => line;
    const together = (await predictFiles(loaded, paths, { noDetect: true })).map(strip);
    const alone = [];
    for (const p of paths) alone.push(strip(await predictFile(loaded, p, { noDetect: true })));
    assert.deepEqual(together, alone);
    assert.ok(together[1].error && !together[0].error && together[2].faces.length === 1);
  },
});
