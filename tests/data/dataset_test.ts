import { assert } from "../assert.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import sharp from "sharp";
import { batchPixels, classCounts, inOrderBatches, stratifiedSample, stratifiedSplit } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { cachePath, parsePixels, parseRecord } from "../../lib/data/csv.ts";
import { trainModel } from "../../lib/train/train.ts";
import { DEFAULT_CONFIG } from "../../lib/train/config.ts";

const pixels = (v: number) => Array(2304).fill(v).join(" ");

/** A small FER2013-style CSV: `rows` of [label, pixel value, usage], plus raw extra lines. */
function csvText(rows: [number, number, string][], extra: string[] = []): string {
  return ["emotion,pixels,Usage", ...rows.map(([l, v, u]) => `${l},${pixels(v)},${u}`), ...extra].join("\n") + "\n";
}

function sampleRows(): [number, number, string][] {
  const rows: [number, number, string][] = [];
  for (let i = 0; i < 70; i++) rows.push([i % 7, i, "Training"]);
  for (let i = 0; i < 14; i++) rows.push([i % 7, 100 + i, "PublicTest"]);
  for (let i = 0; i < 7; i++) rows.push([i, 200 + i, "PrivateTest"]);
  return rows;
}

Deno.test("parsePixels accepts 2304 values and explains what is wrong otherwise", () => {
  assert.equal((parsePixels(pixels(7)) as Uint8Array)[2303], 7);
  assert.match(parsePixels("1 2 3") as string, /expected 2304 pixel values, found 3/);
  assert.match(parsePixels(pixels(1).replace(/^1/, "x")) as string, /pixel 1 is "x"/);
  assert.match(parsePixels(pixels(300)) as string, /not an integer 0\.\.255/);
});

Deno.test("loadDataset reads a gzipped CSV into splits, and the second load comes from the cache", async () => {
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "fer.csv.gz");
  Deno.writeFileSync(file, gzipSync(new TextEncoder().encode(csvText(sampleRows()))));
  const cacheDir = join(dir, "cache");
  const first = await loadDataset(file, { cacheDir });
  assert.equal(first.fromCache, undefined);
  assert.deepEqual([first.splits.Training.n, first.splits.PublicTest.n, first.splits.PrivateTest.n], [70, 14, 7]);
  assert.deepEqual(classCounts(first.splits.Training.labels), [10, 10, 10, 10, 10, 10, 10]);
  assert.equal(first.splits.Training.pixels[5 * 2304 + 100], 5);
  assert.ok(Deno.statSync(cachePath(file, cacheDir)).isFile);
  const second = await loadDataset(file, { cacheDir });
  assert.equal(second.fromCache, true, "the second load should come from the cache");
  assert.deepEqual(second.splits.PrivateTest.pixels, first.splits.PrivateTest.pixels);
  assert.deepEqual(second.splits.Training.labels, first.splits.Training.labels);
});

Deno.test("bad rows are reported with line numbers; --skip-bad-rows leaves them out", async () => {
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "bad.csv");
  const extra = [
    `9,${pixels(1)},Training`, // line 93: label out of range
    `1,1 2 3,Training`, // line 94: wrong pixel count
    `2,${pixels(1)},Validation`, // line 95: unknown usage
    `3,${pixels(1).replace(/1$/, "a")},PublicTest`, // line 96: non-numeric pixel
  ];
  Deno.writeTextFileSync(file, csvText(sampleRows(), extra));
  const error = await loadDataset(file, { cacheDir: null }).catch((e) => e as Error);
  assert.ok(error instanceof Error);
  assert.match(error.message, /bad\.csv: 4 bad row\(s\)/);
  assert.match(error.message, /line 93: emotion "9"/);
  assert.match(error.message, /line 94: expected 2304 pixel values, found 3/);
  assert.match(error.message, /line 95: Usage "Validation"/);
  assert.match(error.message, /line 96: pixel 2304 is "a"/);
  assert.match(error.message, /--skip-bad-rows/);
  const messages: string[] = [];
  const data = await loadDataset(file, { cacheDir: null, skipBadRows: true, onProgress: (m) => messages.push(m) });
  assert.equal(data.skipped.length, 4);
  assert.equal(data.splits.Training.n, 70);
  assert.ok(messages.some((m) => m.includes("skipped 4 bad row(s)")));
});

Deno.test("a CSV without the expected header, and a missing data file, give clear errors", async () => {
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "wrong.csv");
  Deno.writeTextFileSync(file, "a,b,c\n1,2,3\n");
  await assert.rejects(
    () => loadDataset(file, { cacheDir: null }),
    /line 1: expected a header with emotion,pixels,Usage/,
  );
  assert.throws(() => resolveDataPath(join(dir, "nope.csv")), /no such file.*Kaggle/s);
});

Deno.test("a dataset without PublicTest gets a stratified validation split", async () => {
  const dir = Deno.makeTempDirSync();
  const file = join(dir, "train_only.csv");
  Deno.writeTextFileSync(file, csvText(sampleRows().filter(([, , u]) => u === "Training")));
  const data = await loadDataset(file, { cacheDir: null });
  assert.equal(data.splits.PublicTest.n, 7);
  assert.equal(data.splits.Training.n, 63);
  assert.deepEqual(classCounts(data.splits.PublicTest.labels), [1, 1, 1, 1, 1, 1, 1]);
  assert.match(data.validationNote!, /stratified 10%/);
});

Deno.test("image folders: any size or colour becomes 48x48 gray; unreadable files are reported", async () => {
  const root = Deno.makeTempDirSync();
  const write = (split: string, cls: string, name: string, bytes: Uint8Array) => {
    Deno.mkdirSync(join(root, split, cls), { recursive: true });
    Deno.writeFileSync(join(root, split, cls, name), bytes);
  };
  const flat = (width: number, height: number, value: number) =>
    sharp({ create: { width, height, channels: 3, background: { r: value, g: value, b: value } } });
  const png = new Uint8Array(await flat(96, 96, 200).png().toBuffer());
  write("train", "happy", "a.png", png);
  write("train", "sad", "b.jpg", new Uint8Array(await flat(60, 40, 90).jpeg({ quality: 95 }).toBuffer()));
  write("train", "sad", "broken.jpg", new Uint8Array([0xff, 0xd8, 0xff, 0, 1, 2]));
  write("test", "angry", "c.png", png);
  // A link to an image counts as the image; a link to nothing is reported.
  write("test", "angry", "real.tiff", new Uint8Array(await flat(30, 30, 50).tiff().toBuffer()));
  Deno.mkdirSync(join(root, "elsewhere"));
  Deno.renameSync(join(root, "test", "angry", "real.tiff"), join(root, "elsewhere", "real.tiff"));
  Deno.symlinkSync(join(root, "elsewhere", "real.tiff"), join(root, "test", "angry", "linked.tiff"));
  Deno.symlinkSync(join(root, "nowhere.png"), join(root, "test", "angry", "dangling.png"));
  const data = await loadDataset(root, { skipBadRows: true });
  assert.equal(data.splits.Training.n + data.splits.PublicTest.n, 2);
  assert.equal(data.splits.PrivateTest.n, 2);
  assert.deepEqual(Array.from(data.splits.PrivateTest.labels), [0, 0]);
  assert.equal(data.splits.PrivateTest.pixels.length, 2 * 2304);
  assert.ok(Math.abs(data.splits.PrivateTest.pixels[1000] - 200) <= 1);
  assert.ok(Math.abs(data.splits.PrivateTest.pixels[2304 + 1000] - 50) <= 1, "the linked TIFF");
  const reasons = data.skipped.map((b) => b.reason);
  assert.equal(reasons.length, 2);
  assert.ok(reasons.some((r) => /broken\.jpg: cannot decode image/.test(r)), reasons.join("; "));
  assert.ok(reasons.some((r) => /dangling\.png: no such file \(or a link to nothing\)/.test(r)), reasons.join("; "));
  await assert.rejects(() => loadDataset(root), /2 bad row/);
  assert.deepEqual(data.labels, [...EMOTIONS], "emotion folders keep FER2013's classes and order");
  write("train", "bored", "d.png", png);
  const other = await loadDataset(root, { skipBadRows: true });
  assert.deepEqual(other.labels, ["angry", "bored", "happy", "sad"], "a class of its own: the folders' names");
});

Deno.test("stratifiedSample keeps class proportions and is seeded", () => {
  const labels = Uint8Array.from({ length: 1000 }, (_, i) => (i < 500 ? 3 : i < 800 ? 6 : i < 990 ? 0 : 1));
  const a = stratifiedSample(labels, 100, 7);
  assert.equal(a.length, 100);
  assert.deepEqual(classCounts(Uint8Array.from(a, (i) => labels[i])), [19, 1, 0, 50, 0, 0, 30]);
  assert.deepEqual(stratifiedSample(labels, 100, 7), a);
  assert.notDeepEqual(stratifiedSample(labels, 100, 8), a);
  const split = stratifiedSplit({ n: 1000, labels, pixels: new Uint8Array(1000 * 2304) }, 0.1, 1);
  assert.equal(split.train.n + split.validation.n, 1000);
});

Deno.test("batchPixels scales bytes to [0, 1]", () => {
  const set = { n: 2, labels: new Uint8Array(2), pixels: new Uint8Array(2 * 2304).fill(255) };
  set.pixels[2304] = 51;
  const x = batchPixels(set, [1, 0]);
  assert.equal(x[0], Math.fround(0.2));
  assert.equal(x[2304], 1);
});

Deno.test("inOrderBatches covers every row once, in order, the last batch short", () => {
  assert.deepEqual([...inOrderBatches(5, 2)], [[0, 1], [2, 3], [4]]);
  assert.deepEqual([...inOrderBatches(0, 2)], []);
});

Deno.test("a truncated or non-gzip .csv.gz gets one line naming the file, and a header-only CSV trains on nothing: refused", async () => {
  const dir = Deno.makeTempDirSync();
  const whole = gzipSync(new TextEncoder().encode(csvText(sampleRows())));
  const cut = join(dir, "cut.csv.gz"), plain = join(dir, "plain.csv.gz");
  Deno.writeFileSync(cut, whole.slice(0, Math.floor(whole.length / 2)));
  Deno.writeTextFileSync(plain, csvText(sampleRows()));
  for (const file of [cut, plain]) {
    await assert.rejects(
      () => loadDataset(file, { cacheDir: null }),
      (err: Error) => err.message.startsWith(`${file}: not a complete gzip file`) && !err.message.includes("\n"),
    );
  }
  const headerOnly = join(dir, "header.csv");
  Deno.writeTextFileSync(headerOnly, "emotion,pixels,Usage\n");
  const data = await loadDataset(headerOnly, { cacheDir: null });
  await assert.rejects(
    () => trainModel({ ...DEFAULT_CONFIG, out: join(dir, "run") }, false, { data, log: () => {} }),
    /has no Training images: nothing to train on/,
  );
});

Deno.test("CSV cells must be plain digits: a hex or exponent pixel and a label written 3.0 are bad rows", () => {
  const columns = { emotion: 0, pixels: 1, usage: 2 };
  assert.match(parsePixels(pixels(1).replace(/^1/, "0x10")) as string, /pixel 1 is "0x10", not an integer/);
  assert.match(parsePixels(pixels(1).replace(/ 1$/, " 1e2")) as string, /pixel 2304 is "1e2"/);
  assert.match(parseRecord(["3.0", pixels(1), "Training"], columns) as string, /emotion "3\.0" is not a label id/);
  assert.match(parseRecord(["-1", pixels(1), "Training"], columns) as string, /emotion "-1"/);
  assert.equal((parseRecord(["3", pixels(1), "Training"], columns) as { label: number }).label, 3);
});

Deno.test("a CSV without a header is named in one short line, not with the whole first row", async () => {
  const file = join(Deno.makeTempDirSync(), "noheader.csv");
  Deno.writeTextFileSync(file, `0,${pixels(5)},Training\n`);
  const error = await loadDataset(file, { cacheDir: null }).then(() => undefined, (e: Error) => e);
  assert.match(
    error!.message,
    /line 1: expected a header with emotion,pixels,Usage, found "0,5 5 5.*\(\d+ characters\)"/,
  );
  assert.ok(error!.message.length < 300, `${error!.message.length} characters`);
});

Deno.test("a FIFO or a device as --data is refused before it is opened; FER+ labels without the votes before parsing", async () => {
  const dir = Deno.makeTempDirSync();
  const fifo = join(dir, "fer2013.csv");
  await new Deno.Command("mkfifo", { args: [fifo] }).output();
  for (const path of [fifo, "/dev/zero"]) {
    await assert.rejects(
      () => loadDataset(path),
      new RegExp(`${path}: not a regular file \\(a FIFO, device or socket\\)`),
    );
  }
  const csv = join(dir, "faces.csv");
  Deno.writeTextFileSync(csv, "emotion,pixels,Usage\n");
  await assert.rejects(
    () => loadDataset(csv, { labels: "ferplus" }),
    /--labels ferplus needs FER\+'s votes beside the CSV: .*fer2013new\.csv: no such file/,
  );
  const loop = join(dir, "loop.csv");
  Deno.symlinkSync(loop, loop);
  await assert.rejects(() => loadDataset(loop), /loop\.csv: a loop of symbolic links/);
});
