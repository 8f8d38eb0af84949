/**
 * Image folders `<root>/<split>/<class>/*` (any format sharp reads, links
 * followed) into 48x48 gray typed arrays.
 */
import { join } from "node:path";
import { EMOTIONS, type Split, SPLITS } from "./labels.ts";
import type { BadRow, FaceSet, FerData, LoadOptions } from "./dataset.ts";
import { IMAGE_SIZE, packRows } from "./dataset.ts";
import { isImageFile, readImageFile } from "./images.ts";
import { resizeGray, toGray } from "../web/face_pipeline.js";
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
      const classFolder = join(root, splitDir.name, classDir.name);
      for (const path of walkFiles(classFolder, isImageFile)) {
        files++;
        try {
          const gray = resizeGray(toGray((await readImageFile(path)).image), IMAGE_SIZE, IMAGE_SIZE);
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
