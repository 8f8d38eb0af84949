/**
 * The Kaggle CSV (`emotion,pixels,Usage`, plain or gzipped, streamed) into
 * compact typed arrays, and its binary cache (data/cache/) so a second load
 * is fast.
 */
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { basename, dirname, join, resolve } from "node:path";
import { parse } from "csv-parse";
import { EMOTIONS, NUM_CLASSES, type Split, SPLITS } from "./labels.ts";
import type { BadRow, FaceSet, FerData, LoadOptions } from "./dataset.ts";
import { packRows, PIXELS } from "./dataset.ts";
import { exists, projectPath } from "../util/paths.ts";

/** Parse one `pixels` cell: exactly 2,304 integers 0..255 separated by spaces. */
export function parsePixels(cell: string): Uint8Array | string {
  const parts = cell.trim().split(/\s+/);
  if (parts.length !== PIXELS) return `expected ${PIXELS} pixel values, found ${cell.trim() ? parts.length : 0}`;
  const out = new Uint8Array(PIXELS);
  const digitsOnly = !/[^0-9\s]/.test(cell); // one test per cell: Number() would also take "0x10", "1e2", "3.0"
  for (let i = 0; i < PIXELS; i++) {
    const v = digitsOnly ? Number(parts[i]) : /^\d+$/.test(parts[i]) ? Number(parts[i]) : NaN;
    if (!(v <= 255)) return `pixel ${i + 1} is "${parts[i]}", not an integer 0..255`;
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
  if (!/^\d+$/.test(labelCell) || label >= NUM_CLASSES) {
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
          const found = record.join(",");
          const shown = found.length > 80 ? `${found.slice(0, 80)}... (${found.length} characters)` : found;
          throw new Error(`${path}: line 1: expected a header with emotion,pixels,Usage, found "${shown}"`);
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
  return { source: path, labels: EMOTIONS, splits, skipped };
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

export async function loadCsvCached(path: string, options: LoadOptions): Promise<FerData> {
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
  return { source, labels: EMOTIONS, splits, skipped: header.skipped, fromCache: true };
}
