import { assert } from "../assert.ts";
import { join } from "node:path";
import sharp from "sharp";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { loadModel, makeMetadata, saveModel } from "../../lib/model/model_io.ts";
import { batchTensor, facePixels } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { decodeImage, encodeRgbaPng, readImageFile } from "../../lib/data/images.ts";
import { sceneWithFace } from "../../lib/vision/synthetic.ts";
import { collectImages, MAX_WORKING_SIDE, predictFile, predictFiles } from "../../lib/vision/predict.ts";
import { main as predictMain } from "../../lib/cli/predict.ts";
import { PROJECT_ROOT, projectPath } from "../../lib/util/paths.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";

/** A saved (untrained) compact model in a temporary folder. */
async function tempModel() {
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "model");
  const model = buildModel("compact");
  await saveModel(dir, model, makeMetadata(model, "compact", {}));
  return loadModel(dir);
}

/** CRC-32 as PNG chunks use it. */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A gray image as PNG bytes, each pixel from `pixel(x, y)`. */
async function grayPng(width: number, height: number, pixel: (x: number, y: number) => number): Promise<Uint8Array> {
  const data = Uint8Array.from({ length: width * height }, (_, i) => pixel(i % width, Math.floor(i / width)));
  return new Uint8Array(await sharp(data, { raw: { width, height, channels: 1 } }).png().toBuffer());
}

/** A JPEG with EXIF orientation `orientation` whose stored image has a bright left edge. */
async function jpegWithOrientation(width: number, height: number, orientation: number): Promise<Uint8Array> {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([i % width < 4 ? 250 : 10, 10, 10], 3 * i);
  const stored = sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95 });
  return new Uint8Array(await stored.withMetadata({ orientation }).toBuffer());
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
    Deno.writeFileSync(path, await encodeRgbaPng(scene.image));
    const { image: _, scale: __, ...line } = await predictFile(loaded, path);
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
    Deno.writeFileSync(path, await grayPng(48, 48, (x, y) => pixels[y * 48 + x]));
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
    const good = await grayPng(48, 48, (x, y) => (x * y) % 256);
    // PNG headers that claim far more pixels than the file holds: over the limit, and under it with 10 bytes of data.
    const claiming = (side: number, dataBytes = good.length - 33) => {
      const bytes = good.slice(0, 33 + dataBytes);
      const view = new DataView(bytes.buffer);
      view.setUint32(16, side); // IHDR width
      view.setUint32(20, side); // IHDR height
      view.setUint32(29, crc32(bytes.subarray(12, 29))); // the IHDR chunk's checksum, so only the size is wrong
      return bytes;
    };
    const files: Record<string, Uint8Array> = {
      "empty.png": new Uint8Array(),
      "truncated.png": good.subarray(0, 60),
      "text.jpg": new TextEncoder().encode("this is not an image"),
      "image.webp": new Uint8Array(
        [..."RIFF"].map((c) => c.charCodeAt(0)).concat([0, 0, 0, 0], [..."WEBP"].map((c) => c.charCodeAt(0))),
      ),
      "huge.png": claiming(10000),
      "hollow.png": claiming(6000, 10),
      "good.png": good,
    };
    for (const [name, bytes] of Object.entries(files)) Deno.writeFileSync(join(dir, name), bytes);
    const paths = collectImages([dir, join(dir, "missing.png")]);
    assert.equal(paths.length, 8); // the seven files in the folder, plus the missing one named on the command line
    const lines = [];
    for (const p of paths) lines.push(await predictFile(loaded, p, { noDetect: true }));
    const byName = Object.fromEntries(lines.map((l) => [l.path.split("/").pop()!, l]));
    assert.match(byName["empty.png"].error!, /empty\.png: empty file/);
    assert.match(byName["truncated.png"].error!, /truncated\.png: cannot decode image/);
    assert.match(byName["text.jpg"].error!, /text\.jpg: not an image file/);
    assert.match(byName["image.webp"].error!, /image\.webp: (cannot decode image|not an image file)/);
    assert.match(byName["huge.png"].error!, /huge\.png: image too large \(over 40 megapixels\)/);
    assert.match(byName["hollow.png"].error!, /hollow\.png: cannot decode image/);
    assert.match(byName["missing.png"].error!, /missing\.png/);
    assert.equal(byName["good.png"].error, null);
    assert.equal(byName["good.png"].faces.length, 1);
  },
});

Deno.test("a 16-bit gray PNG decodes to 8-bit RGBA", async () => {
  const raw = new Uint16Array(8).fill(0x8000);
  const png16 = await sharp(new Uint8Array(raw.buffer), { raw: { width: 4, height: 2, channels: 1 } as never })
    .toColourspace("grey16").png().toBuffer();
  const decoded = await decodeImage(new Uint8Array(png16), "g16.png");
  assert.deepEqual([decoded.width, decoded.height, decoded.data.length], [4, 2, 32]);
});

Deno.test("EXIF orientation is applied (a 6 turns a landscape photo upright)", async () => {
  const image = await decodeImage(await jpegWithOrientation(32, 16, 6), "rotated.jpg");
  assert.deepEqual([image.width, image.height], [16, 32]);
  // The bright left edge of the stored image becomes the top edge once turned clockwise.
  assert.ok(image.data[4 * 8] > 200 && image.data[4 * (31 * 16 + 8)] < 60);
});

Deno.test({
  name: "WebP, AVIF, TIFF and GIF photos decode, AVIF and TIFF are predicted; symlinked photos are found, loops end",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync();
    const base = () =>
      sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 180, g: 180, b: 180 } } });
    const encoded: Record<string, Uint8Array> = {
      "a.webp": new Uint8Array(await base().webp({ lossless: true }).toBuffer()),
      "a.avif": new Uint8Array(await base().avif({ lossless: true }).toBuffer()),
      "a.tiff": new Uint8Array(await base().tiff().toBuffer()),
      "a.gif": new Uint8Array(await base().gif().toBuffer()),
    };
    for (const [name, bytes] of Object.entries(encoded)) {
      const image = await decodeImage(bytes, name);
      assert.deepEqual([image.width, image.height], [20, 10], name);
      assert.ok(Math.abs(image.data[0] - 180) <= 3, `${name}: ${image.data[0]}`);
      Deno.writeFileSync(join(dir, name), bytes);
    }
    const loaded = await tempModel();
    const lines = await predictFiles(loaded, ["a.avif", "a.tiff"].map((n) => join(dir, n)), { noDetect: true });
    assert.deepEqual(
      lines.map((l) => [l.error, l.faces.length]),
      [[null, 1], [null, 1]],
      "AVIF and TIFF photos predicted",
    );
    const linked = join(Deno.makeTempDirSync(), "photos");
    Deno.mkdirSync(linked);
    Deno.symlinkSync(join(dir, "a.avif"), join(linked, "photo.avif"));
    Deno.symlinkSync(linked, join(linked, "loop"));
    assert.deepEqual(collectImages([linked]), [join(linked, "photo.avif")]);
    // Photos that are links in a loop each get a line saying so.
    Deno.symlinkSync(join(linked, "y.jpg"), join(linked, "x.jpg"));
    Deno.symlinkSync(join(linked, "x.jpg"), join(linked, "y.jpg"));
    const looped = await predictFiles(loaded, collectImages([linked]), { noDetect: true });
    loaded.model.dispose();
    assert.deepEqual(looped.map((l) => l.path), ["photo.avif", "x.jpg", "y.jpg"].map((n) => join(linked, n)));
    for (const line of looped.slice(1)) assert.match(line.error!, /: a loop of symbolic links$/);
  },
});

Deno.test({
  name: "the predict command prints one JSON line per image and fails only when every input failed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    Deno.writeFileSync(join(dir, "a.png"), await grayPng(48, 48, () => 100));
    Deno.writeFileSync(join(dir, "b.jpg"), new Uint8Array());
    const annotate = join(dir, "annotated");
    const run = (...paths: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "lib/cli/predict.ts",
          "--model",
          loaded.dir,
          "--no-detect",
          "--annotate",
          annotate,
          ...paths,
        ],
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

Deno.test("a CMYK JPEG and a palette PNG decode to the right colours", async () => {
  // libvips converts CMYK through a colour profile, Pillow (which made the fixture from RGB) by formula:
  // the hues agree, the exact values less.
  for (const [name, tolerance] of [["cmyk.jpg", 30], ["palette.png", 6]] as const) {
    const path = new URL(`./fixtures/${name}`, import.meta.url);
    const image = await decodeImage(Deno.readFileSync(path), name);
    assert.deepEqual([image.width, image.height], [32, 24]);
    const pixel = (x: number) => Array.from(image.data.subarray(4 * x, 4 * x + 3));
    [[0, [200, 60, 120]], [31, [30, 60, 120]]].forEach(([x, want]) =>
      pixel(x as number).forEach((v, c) =>
        assert.ok(Math.abs(v - (want as number[])[c]) <= tolerance, `${name} (${x}): ${pixel(x as number)}`)
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
    Deno.writeFileSync(paths[0], await grayPng(48, 48, (x, y) => (x * 5 + y) % 256));
    Deno.writeFileSync(paths[1], new Uint8Array([1, 2, 3]));
    Deno.writeFileSync(paths[2], await grayPng(48, 48, (x) => x * 4));
    const strip = ({ image: _, scale: __, ...line }: Awaited<ReturnType<typeof predictFile>>) => line;
    const together = (await predictFiles(loaded, paths, { noDetect: true })).map(strip);
    const alone = [];
    for (const p of paths) alone.push(strip(await predictFile(loaded, p, { noDetect: true })));
    assert.deepEqual(together, alone);
    assert.ok(together[1].error && !together[0].error && together[2].faces.length === 1);
  },
});

Deno.test({
  name: "predict: every input gets a line: a FIFO, a device, a broken link and a FIFO in a folder, an empty folder",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    assert.ok((await new Deno.Command("mkfifo", { args: [join(dir, "pipe.jpg")] }).output()).success);
    Deno.symlinkSync(join(dir, "nothing.png"), join(dir, "broken.png"));
    Deno.writeFileSync(join(dir, "face.png"), await grayPng(48, 48, (x, y) => (x * y) % 256));
    Deno.mkdirSync(join(dir, "empty"));
    const paths = collectImages([dir, "/dev/zero", join(dir, "empty")]);
    assert.deepEqual(paths, [
      join(dir, "broken.png"),
      join(dir, "face.png"),
      join(dir, "pipe.jpg"),
      "/dev/zero",
      join(dir, "empty"),
    ]);
    const errors = (await predictFiles(loaded, paths, { noDetect: true })).map((line) => line.error);
    assert.match(errors[0]!, /broken\.png: no such file \(or a link to nothing\)/);
    assert.equal(errors[1], null);
    assert.match(errors[2]!, /pipe\.jpg: not a regular file \(a FIFO, device or socket\); not read/);
    assert.match(errors[3]!, /^\/dev\/zero: not a regular file/);
    assert.match(errors[4]!, /empty: a folder without image files/);
    loaded.model.dispose();
  },
});

Deno.test({
  name: "predict: a large photo is decoded to at most 2048 px, with its size and boxes in the file's pixels",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const path = join(Deno.makeTempDirSync(), "large.jpg");
    const raw = { width: 3000, height: 2500, channels: 3 as const };
    Deno.writeFileSync(path, await sharp(new Uint8Array(3000 * 2500 * 3).fill(90), { raw }).jpeg().toBuffer());
    const file = await readImageFile(path, MAX_WORKING_SIDE);
    assert.deepEqual([file.image.width, file.image.height, file.width, file.height], [2048, 1707, 3000, 2500]);
    const [line] = await predictFiles(loaded, [path], { noDetect: true });
    assert.deepEqual([line.width, line.height, line.faces[0].box], [3000, 2500, [0, 0, 3000, 2500]]);
    loaded.model.dispose();
  },
});

Deno.test({
  name: "predict --annotate: photos of the same name in different folders get pictures of their own",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync(), out = join(dir, "annotated");
    const png = await grayPng(64, 64, (x) => x * 4);
    for (const name of ["a/x.png", "b/x.png", "x.png"]) {
      Deno.mkdirSync(join(dir, name, ".."), { recursive: true });
      Deno.writeFileSync(join(dir, name), png);
    }
    const inputs = ["a/x.png", "b/x.png", "x.png"].map((n) => join(dir, n));
    const log = console.log;
    const lines: string[] = [];
    console.log = (line: string) => lines.push(line);
    try {
      assert.equal(await predictMain(["--model", loaded.dir, "--no-detect", "--annotate", out, ...inputs]), 0);
    } finally {
      console.log = log;
    }
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "x-2.annotated.png",
      "x-3.annotated.png",
      "x.annotated.png",
    ]);
    assert.deepEqual(lines.map((l) => JSON.parse(l).annotated), [
      join(out, "x.annotated.png"),
      join(out, "x-2.annotated.png"),
      join(out, "x-3.annotated.png"),
    ]);
    loaded.model.dispose();
  },
});

Deno.test({
  name: "predict --annotate into the photos' own folder never overwrites a photo; an unwritable picture is named",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    const png = await grayPng(64, 64, (x) => x * 4);
    for (const name of ["x.png", "x.annotated.png"]) Deno.writeFileSync(join(dir, name), png);
    Deno.mkdirSync(join(dir, "y.annotated.png")); // where y's picture would go: a folder
    Deno.writeFileSync(join(dir, "y.png"), png);
    const log = console.log;
    const lines: string[] = [];
    console.log = (line: string) => lines.push(line);
    try {
      assert.equal(await predictMain(["--model", loaded.dir, "--no-detect", "--annotate", dir, dir]), 0);
    } finally {
      console.log = log;
    }
    const byPath = Object.fromEntries(lines.map((l) => JSON.parse(l)).map((l) => [l.path, l]));
    assert.deepEqual(Deno.readFileSync(join(dir, "x.annotated.png")), png, "the input is untouched");
    assert.equal(byPath[join(dir, "x.png")].annotated, join(dir, "x-2.annotated.png"));
    assert.match(
      byPath[join(dir, "y.png")].error,
      /--annotate .*y\.annotated\.png: cannot write the file \(it is a folder\)/,
    );
    loaded.model.dispose();
  },
});

Deno.test({
  name: "predict on a photo over 2,048 px: the eyes, like the box, are in the file's pixels",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const path = join(Deno.makeTempDirSync(), "big.jpg");
    const photo = projectPath("..", "shared", "media", "single_face.jpg");
    Deno.writeFileSync(path, await sharp(photo).resize({ width: 4000 }).jpeg().toBuffer());
    const [line] = await predictFiles(loaded, [path]);
    const [x, y, w, h] = line.faces[0].box;
    assert.ok(w > 1000, `the box is in the file's pixels (${w} wide)`);
    for (const [ex, ey] of line.faces[0].eyes!) {
      assert.ok(ex > x && ex < x + w && ey > y && ey < y + h, `eye ${ex},${ey} inside the box ${line.faces[0].box}`);
    }
    loaded.model.dispose();
  },
});

Deno.test({
  name: "deno task predict with its defaults finds the five faces of the group photo",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        projectPath("lib", "cli", "predict.ts"),
        projectPath("..", "shared", "media", "multi_face.jpg"),
      ],
      cwd: PROJECT_ROOT,
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const line = JSON.parse(new TextDecoder().decode(stdout));
    assert.equal(line.faces.length, 5, JSON.stringify(line.faces.map((f: { box: number[] }) => f.box)));
  },
});

Deno.test({
  name: "deno task predict resolves paths against the folder it was typed in (INIT_CWD), not the project root",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loaded = await tempModel();
    const dir = Deno.makeTempDirSync();
    Deno.mkdirSync(join(dir, "sub"));
    Deno.writeFileSync(join(dir, "x.png"), await grayPng(48, 48, (x) => x));
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", projectPath("lib", "cli", "predict.ts"), "--model", loaded.dir, "--no-detect", "../x.png"],
      cwd: PROJECT_ROOT,
      env: { INIT_CWD: join(dir, "sub") },
    }).output();
    const line = JSON.parse(new TextDecoder().decode(stdout));
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual([line.path, line.error, line.width], ["../x.png", null, 48]);
    loaded.model.dispose();
  },
});
