/**
 * Image folders into 48x48 gray sets (any format sharp reads, links
 * followed): a dataset `<root>/<split>/<class>/*`, whose class folders make
 * its class list, or a face folder `<root>/<class>/*`, read against a
 * model's classes for evaluation (CK+48, say).
 */
import { className, EMOTIONS, type Split, SPLITS } from "./labels.ts";
import type { BadRow, FaceSet, FerData, LoadOptions } from "./dataset.ts";
import { IMAGE_SIZE, packRows } from "./dataset.ts";
import { isImageFile, readImageFile } from "./images.ts";
import { resizeGray, toGray } from "../core/face_pipeline.js";
import { listFolder, walkFiles } from "../util/files.ts";

const FOLDER_SPLITS: Record<string, Split> = {
  training: "Training",
  train: "Training",
  publictest: "PublicTest",
  validation: "PublicTest",
  val: "PublicTest",
  privatetest: "PrivateTest",
  test: "PrivateTest",
};

/** Whether `root` is a dataset with split folders (train/, val/, test/ or the FER2013 names) rather than a face folder. */
export function hasSplitFolders(root: string): boolean {
  return listFolder(root).some((entry) => entry.isDirectory && FOLDER_SPLITS[entry.name.toLowerCase()]);
}

/** A dataset's class list from its class folders' names: FER2013's seven when every name is one of them, else the names sorted. */
export function folderClasses(names: string[]): string[] {
  const classes = [...new Set(names.map(className))];
  if (classes.every((c) => (EMOTIONS as readonly string[]).includes(c))) return [...EMOTIONS];
  return classes.sort();
}

/** Reads one image file as a 48x48 gray face. */
/** A file's face as the model's gray input; undefined when the image holds no face (a detector found none). */
export type FaceReader = (path: string) => Promise<Uint8Array | undefined>;

/** The whole image as the face: decoded, gray, resized to 48x48. */
export const wholeImage: FaceReader = async (path) =>
  resizeGray(toGray((await readImageFile(path)).image), IMAGE_SIZE, IMAGE_SIZE).data;

/** Images and labels read so far, and the files that could not be read. */
interface Reading {
  pixels: Uint8Array[];
  labels: number[];
  skipped: BadRow[];
  /** Images read in which no face was found, with their folder's class. */
  faceless: { path: string; label: number }[];
  files: number;
}

/** Read every image under `folder` as class `label` (bad files are recorded, the rest go on). */
async function readClassFolder(
  folder: string,
  label: number,
  into: Reading,
  readFace: FaceReader,
  onProgress?: (message: string) => void,
): Promise<number> {
  let read = 0;
  for (const path of walkFiles(folder, isImageFile)) {
    into.files++;
    try {
      const face = await readFace(path);
      if (!face) {
        into.faceless.push({ path, label });
        continue;
      }
      into.pixels.push(face);
      into.labels.push(label);
      read++;
    } catch (err) {
      into.skipped.push({ line: into.files, reason: (err as Error).message });
    }
    if (into.files % 2000 === 0) onProgress?.(`${folder}: ${into.files} images read`);
  }
  return read;
}

/**
 * Load `<root>/<split>/<class>/*.png|jpg` (splits train/val/test or the
 * FER2013 names). The class folders name the classes (FER2013's seven, in
 * their order, when they are all among them; aliases such as `sadness`
 * count). Any image size or colour is converted to 48x48 gray. Unreadable
 * images are reported as bad rows.
 */
export async function loadImageFolders(root: string, options: LoadOptions = {}): Promise<FerData> {
  const classFolders = listFolder(root)
    .filter((entry) => entry.isDirectory && FOLDER_SPLITS[entry.name.toLowerCase()])
    .flatMap((splitDir) =>
      listFolder(splitDir.path).filter((entry) => entry.isDirectory).map((classDir) => ({
        split: FOLDER_SPLITS[splitDir.name.toLowerCase()],
        name: classDir.name,
        path: classDir.path,
      }))
    );
  const labels = folderClasses(classFolders.map((f) => f.name));
  const readings = Object.fromEntries(
    SPLITS.map((s) => [s, { pixels: [], labels: [], skipped: [], faceless: [], files: 0 }]),
  ) as unknown as Record<Split, Reading>;
  const skipped: BadRow[] = [];
  for (const folder of classFolders) {
    const reading = readings[folder.split];
    await readClassFolder(folder.path, labels.indexOf(className(folder.name)), reading, wholeImage, options.onProgress);
    skipped.push(...reading.skipped.splice(0));
  }
  if (readings.Training.labels.length === 0) {
    throw new Error(
      `${root}: no training images found; expected ${root}/train/<class>/*.png|jpg (or Training/, with val/ and test/ beside it)`,
    );
  }
  const splits = Object.fromEntries(
    SPLITS.map((s) => [s, packRows(readings[s].pixels, readings[s].labels)]),
  ) as Record<Split, FaceSet>;
  return { source: root, labels, splits, skipped };
}

/** A face folder read for a model: its images, and the class folders the model has no class for. */
export interface FaceFolder {
  source: string;
  set: FaceSet;
  /** Class folders left out (the model lacks their class, or `leaveOut` names it), with their image counts. */
  omitted: { name: string; images: number; why?: string }[];
  skipped: BadRow[];
  /** Images in which `readFace` found no face, with their class: an evaluation counts them as wrong. */
  faceless: { path: string; label: number }[];
}

/**
 * Load a face folder `<root>/<class>/*` against a model's `labels`: each
 * class folder (aliases such as `anger`, `sadness`, `happiness` count) whose
 * class the model has becomes that label; the others, and the classes
 * `leaveOut` names, are left out and named. `readFace` turns a file into a
 * face (default: the whole image).
 */
export async function loadFaceFolder(
  root: string,
  labels: readonly string[],
  readFace: FaceReader = wholeImage,
  onProgress?: (message: string) => void,
  leaveOut: readonly string[] = [],
): Promise<FaceFolder> {
  const reading: Reading = { pixels: [], labels: [], skipped: [], faceless: [], files: 0 };
  const omitted: FaceFolder["omitted"] = [];
  const folders = listFolder(root).filter((entry) => entry.isDirectory);
  for (const name of leaveOut) {
    if (!folders.some((f) => className(f.name) === className(name))) {
      throw new Error(
        `--leave-out: ${root} has no class folder "${name}" (it has ${folders.map((f) => f.name).join(", ")})`,
      );
    }
  }
  for (const folder of folders) {
    const label = labels.indexOf(className(folder.name));
    const images = () => walkFiles(folder.path, isImageFile).length;
    if (leaveOut.some((name) => className(name) === className(folder.name))) {
      omitted.push({ name: folder.name, images: images(), why: "left out on request" });
    } else if (label < 0) omitted.push({ name: folder.name, images: images(), why: "the model has no such class" });
    else await readClassFolder(folder.path, label, reading, readFace, onProgress);
  }
  if (reading.labels.length === 0 && reading.faceless.length === 0) {
    throw new Error(
      `${root}: no images of the model's classes (${labels.join(", ")}); expected ${root}/<class>/*.png|jpg`,
    );
  }
  const set = packRows(reading.pixels, reading.labels);
  return { source: root, set, omitted, skipped: reading.skipped, faceless: reading.faceless };
}
