/**
 * Loading FER2013: the Kaggle CSV (`emotion,pixels,Usage`, plain or gzipped,
 * streamed) or image folders `<root>/<split>/<class>/*.png|jpg`, into compact
 * typed arrays, with a binary cache so a second load is fast.
 */
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { basename, dirname, extname, join, resolve } from "node:path";
import { parse } from "csv-parse";
import * as tf from "@tensorflow/tfjs";
import { EMOTIONS, NUM_CLASSES, type Split, SPLITS } from "./labels.ts";
import { decodeImage, IMAGE_EXTENSIONS } from "../vision/images.ts";
import { resizeGray, toGray } from "../web/face_pipeline.js";
import { seededRandom, shuffleInPlace } from "../util/random.ts";
import { displayPath, exists, projectPath } from "../util/paths.ts";
import { listFolder, walkFiles } from "../util/files.ts";

/** Side of the square FER2013 images. */
export const IMAGE_SIZE = 48;
/** Pixels per image. */
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/** One split: `n` gray 48x48 images (0..255) and their label ids. */
export interface FaceSet {
  n: number;
  pixels: Uint8Array;
  labels: Uint8Array;
}

/** A row (or file) that could not be used, and why. */
export interface BadRow {
  line: number;
  reason: string;
}

/** A loaded dataset: its three splits and what was skipped. */
export interface FerData {
  source: string;
  splits: Record<Split, FaceSet>;
  skipped: BadRow[];
  /** How PublicTest was obtained when the source had none. */
  validationNote?: string;
  /** Whether the rows came from the parsed-CSV cache (data/cache/) rather than the source. */
  fromCache?: boolean;
}

export interface LoadOptions {
  /** Skip malformed rows (reporting them) instead of failing. */
  skipBadRows?: boolean;
  /** Folder for the parsed cache; `null` disables caching. */
  cacheDir?: string | null;
  /** Seed for the stratified validation split of sources without one. */
  seed?: number;
  /** Called with a progress message now and then. */
  onProgress?: (message: string) => void;
}

/** Where the data is looked for when no path is given, in order (relative to the project root). */
export const DEFAULT_DATA_PATHS = [
  "data/fer2013.csv",
  "data/fer2013.csv.gz",
  "../shared/datasets/fer2013/fer2013.csv.gz",
];

const WHERE_TO_GET = `FER2013 was not found. Get it from Kaggle's "Challenges in Representation Learning: ` +
  `Facial Expression Recognition Challenge" (file fer2013.csv, or icml_face_data.csv renamed), ` +
  `and put it at data/fer2013.csv (or .csv.gz), or pass --data PATH (a CSV or an image folder).`;

/** The data path to use: the flag if given, else the first default that exists. */
export function resolveDataPath(flag?: string): string {
  if (flag) {
    if (!exists(flag)) throw new Error(`--data ${flag}: no such file or folder. ${WHERE_TO_GET}`);
    return flag;
  }
  const found = DEFAULT_DATA_PATHS.map((p) => projectPath(p)).find(exists);
  if (!found) throw new Error(`${WHERE_TO_GET} Looked in: ${DEFAULT_DATA_PATHS.join(", ")}.`);
  return displayPath(found);
}

/** Load a CSV or image folder, using (and filling) the parsed cache. */
export async function loadDataset(path: string, options: LoadOptions = {}): Promise<FerData> {
  const stat = Deno.statSync(path);
  const data = stat.isDirectory ? await loadImageFolders(path, options) : await loadCsvCached(path, options);
  reportOrFailOnBadRows(data, options);
  if (data.splits.PublicTest.n === 0) {
    const { train, validation } = stratifiedSplit(data.splits.Training, 0.1, options.seed ?? 1);
    data.splits.Training = train;
    data.splits.PublicTest = validation;
    data.validationNote = "PublicTest: a stratified 10% of Training (the source has no validation split)";
  }
  return data;
}

function reportOrFailOnBadRows(data: FerData, options: LoadOptions) {
  if (data.skipped.length === 0) return;
  const shown = data.skipped.slice(0, 10).map((b) => `  line ${b.line}: ${b.reason}`).join("\n");
  const more = data.skipped.length > 10 ? `\n  ... and ${data.skipped.length - 10} more` : "";
  if (!options.skipBadRows) {
    throw new Error(
      `${data.source}: ${data.skipped.length} bad row(s):\n${shown}${more}\n` +
        `Fix them, or pass --skip-bad-rows to leave them out.`,
    );
  }
  options.onProgress?.(`${data.source}: skipped ${data.skipped.length} bad row(s):\n${shown}${more}`);
}

// ---------------------------------------------------------------- CSV

/** Parse one `pixels` cell: exactly 2,304 integers 0..255 separated by spaces. */
export function parsePixels(cell: string): Uint8Array | string {
  const parts = cell.trim().split(/\s+/);
  if (parts.length !== PIXELS) return `expected ${PIXELS} pixel values, found ${cell.trim() ? parts.length : 0}`;
  const out = new Uint8Array(PIXELS);
  for (let i = 0; i < PIXELS; i++) {
    const v = Number(parts[i]);
    if (!Number.isInteger(v) || v < 0 || v > 255) return `pixel ${i + 1} is "${parts[i]}", not an integer 0..255`;
    out[i] = v;
  }
  return out;
}

/** Parse one CSV record into label, pixels and split, or the reason it is bad. */
export function parseRecord(
  record: string[],
  columns: { emotion: number; pixels: number; usage: number },
): { label: number; pixels: Uint8Array; split: Split } | string {
  const labelCell = record[columns.emotion]?.trim() ?? "";
  const label = Number(labelCell);
  if (labelCell === "" || !Number.isInteger(label) || label < 0 || label >= NUM_CLASSES) {
    return `emotion "${labelCell}" is not a label id 0..${NUM_CLASSES - 1}`;
  }
  const usage = (record[columns.usage] ?? "").trim();
  if (!(SPLITS as readonly string[]).includes(usage)) {
    return `Usage "${usage}" is not one of ${SPLITS.join(", ")}`;
  }
  const pixels = parsePixels(record[columns.pixels] ?? "");
  if (typeof pixels === "string") return pixels;
  return { label, pixels, split: usage as Split };
}

/** Stream-parse a FER2013 CSV (`.csv` or `.csv.gz`). Bad rows are collected, not thrown. */
export async function loadCsv(path: string, onProgress?: (message: string) => void): Promise<FerData> {
  const rows: Record<Split, { pixels: Uint8Array[]; labels: number[] }> = {
    Training: { pixels: [], labels: [] },
    PublicTest: { pixels: [], labels: [] },
    PrivateTest: { pixels: [], labels: [] },
  };
  const skipped: BadRow[] = [];
  // Errors of the file and gzip streams end the parse with one line naming the file (piping alone drops them).
  const parser = parse({ relax_column_count: true, info: true, skip_empty_lines: true });
  const fail = (what: string) => (err: Error) => parser.destroy(new Error(`${path}: ${what} (${err.message})`));
  const source = createReadStream(path).on("error", fail("cannot read the file"));
  if (path.endsWith(".gz")) {
    const gunzip = createGunzip().on(
      "error",
      fail("not a complete gzip file; the download may be incomplete or the file is not gzip"),
    );
    source.pipe(gunzip).pipe(parser);
  } else source.pipe(parser);
  let columns: { emotion: number; pixels: number; usage: number } | undefined;
  let count = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (!columns) {
        const header = record.map((h) => h.trim().toLowerCase());
        columns = {
          emotion: header.indexOf("emotion"),
          pixels: header.indexOf("pixels"),
          usage: header.indexOf("usage"),
        };
        if (Object.values(columns).some((i) => i < 0)) {
          throw new Error(`${path}: line 1: expected a header with emotion,pixels,Usage, found "${record.join(",")}"`);
        }
        continue;
      }
      const parsed = parseRecord(record, columns);
      if (typeof parsed === "string") {
        skipped.push({ line: info.lines, reason: parsed });
      } else {
        rows[parsed.split].pixels.push(parsed.pixels);
        rows[parsed.split].labels.push(parsed.label);
      }
      if (++count % 5000 === 0) onProgress?.(`${basename(path)}: ${count} rows parsed`);
    }
  } catch (err) {
    const message = (err as Error).message;
    throw new Error(message.startsWith(path) ? message : `${path}: cannot read CSV (${message})`);
  }
  if (!columns) throw new Error(`${path}: the file is empty`);
  const splits = Object.fromEntries(SPLITS.map((s) => [s, packRows(rows[s].pixels, rows[s].labels)])) as Record<
    Split,
    FaceSet
  >;
  return { source: path, splits, skipped };
}

function packRows(pixels: Uint8Array[], labels: number[]): FaceSet {
  const out = new Uint8Array(pixels.length * PIXELS);
  pixels.forEach((p, i) => out.set(p, i * PIXELS));
  return { n: labels.length, pixels: out, labels: Uint8Array.from(labels) };
}

// ---------------------------------------------------------------- cache

const CACHE_MAGIC = "FERCACHE1";

/** Cache file for a source: keyed by its absolute path, size and modification time. */
export function cachePath(source: string, cacheDir: string): string {
  const stat = Deno.statSync(source);
  const abs = resolve(source);
  let hash = 0;
  for (const ch of abs) hash = (Math.imul(hash, 31) + ch.charCodeAt(0)) >>> 0;
  const mtime = stat.mtime?.getTime() ?? 0;
  return join(cacheDir, `${basename(source)}.${hash.toString(16)}.${stat.size}.${mtime}.bin`);
}

async function loadCsvCached(path: string, options: LoadOptions): Promise<FerData> {
  const cacheDir = options.cacheDir === undefined ? projectPath("data", "cache") : options.cacheDir;
  const cacheFile = cacheDir ? cachePath(path, cacheDir) : undefined;
  if (cacheFile && exists(cacheFile)) {
    try {
      return readCache(cacheFile, path);
    } catch (err) {
      options.onProgress?.(`ignoring unreadable cache ${cacheFile}: ${(err as Error).message}`);
    }
  }
  options.onProgress?.(`parsing ${path} (first load; later loads use the cache)`);
  const data = await loadCsv(path, options.onProgress);
  if (cacheFile) writeCache(cacheFile, data);
  return data;
}

function writeCache(file: string, data: FerData) {
  const header = new TextEncoder().encode(JSON.stringify({
    magic: CACHE_MAGIC,
    counts: SPLITS.map((s) => data.splits[s].n),
    skipped: data.skipped,
  }));
  const parts: Uint8Array[] = [new Uint8Array(new Uint32Array([header.length]).buffer), header];
  for (const s of SPLITS) parts.push(data.splits[s].labels, data.splits[s].pixels);
  Deno.mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${Deno.pid}`;
  const f = Deno.openSync(tmp, { write: true, create: true, truncate: true });
  for (const part of parts) {
    let written = 0;
    while (written < part.length) written += f.writeSync(part.subarray(written));
  }
  f.close();
  Deno.renameSync(tmp, file);
}

function readCache(file: string, source: string): FerData {
  const bytes = Deno.readFileSync(file);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + headerLength)));
  if (header.magic !== CACHE_MAGIC) throw new Error("not a cache file");
  let offset = 4 + headerLength;
  const take = (length: number) => {
    if (offset + length > bytes.length) throw new Error("truncated cache file");
    const out = bytes.slice(offset, offset + length);
    offset += length;
    return out;
  };
  const splits = {} as Record<Split, FaceSet>;
  SPLITS.forEach((s, i) => {
    const n = header.counts[i];
    const labels = take(n);
    splits[s] = { n, labels, pixels: take(n * PIXELS) };
  });
  return { source, splits, skipped: header.skipped, fromCache: true };
}

// ---------------------------------------------------------------- image folders

const FOLDER_SPLITS: Record<string, Split> = {
  training: "Training",
  train: "Training",
  publictest: "PublicTest",
  validation: "PublicTest",
  val: "PublicTest",
  privatetest: "PrivateTest",
  test: "PrivateTest",
};

const CLASS_ALIASES: Record<string, number> = {
  ...Object.fromEntries(EMOTIONS.map((e, i) => [e, i])),
  anger: 0,
  disgusted: 1,
  fearful: 2,
  happiness: 3,
  sadness: 4,
  surprised: 5,
};

/**
 * Load `<root>/<split>/<class>/*.png|jpg` (splits train/val/test or the
 * FER2013 names; classes the emotion names). Any image size or colour is
 * converted to 48x48 gray. Unreadable images are reported as bad rows.
 */
export async function loadImageFolders(root: string, options: LoadOptions = {}): Promise<FerData> {
  const sets: Record<Split, { pixels: Uint8Array[]; labels: number[] }> = {
    Training: { pixels: [], labels: [] },
    PublicTest: { pixels: [], labels: [] },
    PrivateTest: { pixels: [], labels: [] },
  };
  const skipped: BadRow[] = [];
  let files = 0;
  for (const splitDir of listFolder(root)) {
    const split = FOLDER_SPLITS[splitDir.name.toLowerCase()];
    if (!splitDir.isDirectory || !split) continue;
    for (const classDir of listFolder(join(root, splitDir.name))) {
      if (!classDir.isDirectory) continue;
      const label = CLASS_ALIASES[classDir.name.toLowerCase()];
      if (label === undefined) {
        throw new Error(
          `${join(root, splitDir.name, classDir.name)}: unknown class folder; expected one of ${EMOTIONS.join(", ")}`,
        );
      }
      const isImage = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
      const classFolder = join(root, splitDir.name, classDir.name);
      const broken = (path: string) => skipped.push({ line: ++files, reason: `${path}: a link to nothing` });
      for (const path of walkFiles(classFolder, isImage, broken)) {
        files++;
        try {
          const gray = resizeGray(toGray(await decodeImage(await Deno.readFile(path), path)), IMAGE_SIZE, IMAGE_SIZE);
          sets[split].pixels.push(gray.data);
          sets[split].labels.push(label);
        } catch (err) {
          skipped.push({ line: files, reason: (err as Error).message });
        }
        if (files % 2000 === 0) options.onProgress?.(`${root}: ${files} images read`);
      }
    }
  }
  if (sets.Training.labels.length === 0) {
    throw new Error(
      `${root}: no training images found; expected ${root}/train/<emotion>/*.png|jpg (or Training/, with val/ and test/ beside it)`,
    );
  }
  const splits = Object.fromEntries(SPLITS.map((s) => [s, packRows(sets[s].pixels, sets[s].labels)])) as Record<
    Split,
    FaceSet
  >;
  return { source: root, splits, skipped };
}

// ---------------------------------------------------------------- splits and tensors

/** Images `indices` of a set, as a new set. */
export function selectRows(set: FaceSet, indices: ArrayLike<number>): FaceSet {
  const pixels = new Uint8Array(indices.length * PIXELS);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i];
    pixels.set(set.pixels.subarray(r * PIXELS, (r + 1) * PIXELS), i * PIXELS);
    labels[i] = set.labels[r];
  }
  return { n: indices.length, pixels, labels };
}

/** Row indices of each class, in order. */
function indicesByClass(labels: Uint8Array): number[][] {
  const byClass: number[][] = Array.from({ length: NUM_CLASSES }, () => []);
  labels.forEach((label, i) => byClass[label].push(i));
  return byClass;
}

/**
 * Pick `n` rows keeping class proportions (largest-remainder rounding), seeded.
 * Returns sorted row indices.
 */
export function stratifiedSample(labels: Uint8Array, n: number, seed: number): number[] {
  if (n >= labels.length) return Array.from(labels, (_, i) => i);
  const random = seededRandom(seed);
  const byClass = indicesByClass(labels);
  const exact = byClass.map((rows) => (rows.length * n) / labels.length);
  const counts = exact.map(Math.floor);
  const order = exact.map((e, c) => [e - counts[c], c]).sort((a, b) => b[0] - a[0]);
  for (let k = 0; counts.reduce((a, b) => a + b, 0) < n; k++) counts[order[k][1]]++;
  const picked: number[] = [];
  byClass.forEach((rows, c) => {
    const copy = rows.slice();
    shuffleInPlace(copy, random);
    picked.push(...copy.slice(0, counts[c]));
  });
  return picked.sort((a, b) => a - b);
}

/** Split a set into train and a stratified validation `fraction`. */
export function stratifiedSplit(set: FaceSet, fraction: number, seed: number): { train: FaceSet; validation: FaceSet } {
  const validationRows = stratifiedSample(set.labels, Math.round(set.n * fraction), seed);
  const isValidation = new Uint8Array(set.n);
  validationRows.forEach((r) => (isValidation[r] = 1));
  const trainRows = Array.from({ length: set.n }, (_, i) => i).filter((i) => !isValidation[i]);
  return { train: selectRows(set, trainRows), validation: selectRows(set, validationRows) };
}

/** The first `k` rows of each class (fewer where a class has fewer). */
export function firstRowsPerClass(labels: Uint8Array, k: number): number[][] {
  return indicesByClass(labels).map((rows) => rows.slice(0, k));
}

/** The 48x48 pixels of one image of a set (a view, not a copy). */
export function facePixels(set: FaceSet, row: number): Uint8Array {
  return set.pixels.subarray(row * PIXELS, (row + 1) * PIXELS);
}

/** Per-class counts of a label array. */
export function classCounts(labels: Uint8Array): number[] {
  const counts = new Array(NUM_CLASSES).fill(0);
  labels.forEach((l) => counts[l]++);
  return counts;
}

/** How pixels become model inputs; saved in the model's metadata. */
export const NORMALIZATION = { scale: 1 / 255, offset: 0, description: "x / 255" } as const;

/** Rows `start..end` of a set as normalized floats, NHWC with one channel. */
export function batchPixels(set: FaceSet, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * PIXELS);
  for (let i = 0; i < rows.length; i++) {
    const src = set.pixels.subarray(rows[i] * PIXELS, (rows[i] + 1) * PIXELS);
    for (let p = 0; p < PIXELS; p++) out[i * PIXELS + p] = src[p] * NORMALIZATION.scale + NORMALIZATION.offset;
  }
  return out;
}

/** Rows of a set as a model input: a normalized [rows, 48, 48, 1] tensor. */
export function batchTensor(set: FaceSet, rows: ArrayLike<number>): tf.Tensor4D {
  return tf.tensor4d(batchPixels(set, rows), [rows.length, IMAGE_SIZE, IMAGE_SIZE, 1]);
}

/** Row numbers 0..n-1 in order, cut into consecutive batches of at most `batchSize`. */
export function* inOrderBatches(n: number, batchSize: number): Generator<number[]> {
  for (let start = 0; start < n; start += batchSize) {
    yield Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
  }
}
