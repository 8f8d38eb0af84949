/**
 * FER2013 as the pipeline holds it: the image sets (compact typed arrays),
 * stratified subsets and splits, and normalized batches. Loading is load.ts
 * (the CSV in csv.ts, image folders in folders.ts).
 */
import * as tf from "@tensorflow/tfjs";
import type { Split } from "./labels.ts";
import { seededRandom, shuffleInPlace } from "../util/random.ts";
import { modelInput } from "../core/face_pipeline.js";

/** Side of the square FER2013 images. */
export const IMAGE_SIZE = 48;
/** Pixels per image. */
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/** One split: `n` gray 48x48 images (0..255) and their label ids (indices into the dataset's `labels`). */
export interface FaceSet {
  n: number;
  pixels: Uint8Array;
  labels: Uint8Array;
  /**
   * Soft labels, n x classes (FER+ votes), trained on in place of the one-hot
   * label: as targets, or with `sampleTargets` as the distribution each
   * step draws an image's label from.
   */
  targets?: Float32Array;
  sampleTargets?: boolean;
  /**
   * A teacher model's probabilities for each image, n x classes (training with --teacher: distillation);
   * with `teacherViews`, views x n x classes: its probabilities on each view of every image.
   */
  teacher?: Float32Array;
  /** With --teacher-views: the transform of each view the teacher saw, views x n x 8 (`transformBatch`). */
  teacherViews?: Float32Array;
}

/** A row (or file) that could not be used, and why. */
export interface BadRow {
  line: number;
  reason: string;
}

/** A loaded dataset: its class list, its three splits and what was skipped. */
export interface FerData {
  source: string;
  /** The class names, in label-id order. */
  labels: readonly string[];
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
  /** Whose labels: FER2013's own (default), the FER+ votes beside the CSV (8 classes), or FER2013's softened by them. */
  labels?: LabelSet;
  /** With FER+ labels: how the votes become training targets (ferplus.ts; default majority). */
  labelMode?: "majority" | "probability" | "crossentropy";
}

/** The label sets a FER2013 CSV can be trained with. */
export const LABEL_SETS = ["fer2013", "ferplus", "fer2013-votes"] as const;
export type LabelSet = typeof LABEL_SETS[number];

/** Rows of pixels and labels as one packed set. */
export function packRows(pixels: Uint8Array[], labels: number[]): FaceSet {
  const out = new Uint8Array(pixels.length * PIXELS);
  pixels.forEach((p, i) => out.set(p, i * PIXELS));
  return { n: labels.length, pixels: out, labels: Uint8Array.from(labels) };
}

// ---------------------------------------------------------------- splits and tensors

/**
 * Where image `row`'s view `view` sits among a set's teacher views: they are
 * stored view-major, every image's view 0, then every image's view 1, ...
 */
export function viewRow(set: Pick<FaceSet, "n">, row: number, view: number): number {
  return view * set.n + row;
}

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

/** The number of classes label ids up to the largest in `labels` make. */
function classesIn(labels: Uint8Array): number {
  return labels.reduce((max, label) => Math.max(max, label + 1), 0);
}

/** Row indices of each class, in order. */
function indicesByClass(labels: Uint8Array): number[][] {
  const byClass: number[][] = Array.from({ length: classesIn(labels) }, () => []);
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

/** Per-class counts of a label array, for `classes` classes (default: up to its largest label). */
export function classCounts(labels: Uint8Array, classes = classesIn(labels)): number[] {
  const counts = new Array(classes).fill(0);
  labels.forEach((l) => counts[l]++);
  return counts;
}

/** How pixels become model inputs; saved in the model's metadata. */
export const NORMALIZATION = { scale: 1 / 255, offset: 0, description: "x / 255" } as const;

/** Rows of a set as normalized floats, NHWC with one channel (face_pipeline.js's `modelInput`, as for photos). */
export function batchPixels(set: FaceSet, rows: ArrayLike<number>): Float32Array {
  return modelInput(Array.from(rows, (row) => ({ data: facePixels(set, row) })), NORMALIZATION);
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

/**
 * A set labelled with `from`'s class names, relabelled to `to`'s: an image
 * whose class `to` lacks is left out, and each such class is named with its
 * image count (a 7-class model scored on FER+'s eight, say).
 */
export function relabel(
  set: FaceSet,
  from: readonly string[],
  to: readonly string[],
): { set: FaceSet; omitted: { name: string; images: number }[] } {
  const map = from.map((name) => to.indexOf(name));
  const rows = Array.from({ length: set.n }, (_, i) => i).filter((i) => map[set.labels[i]] >= 0);
  const kept = selectRows(set, rows);
  kept.labels = kept.labels.map((label) => map[label]);
  const counts = classCounts(set.labels, from.length);
  const omitted = from.flatMap((name, c) => (map[c] < 0 && counts[c] ? [{ name, images: counts[c] }] : []));
  return { set: kept, omitted };
}
