/** Paths relative to the project root, so code works from any working folder (notebooks run in notebooks/). */
import { fileURLToPath } from "node:url";
import { isAbsolute, join, relative } from "node:path";
import { DETECTORS } from "../core/face_pipeline.js";

export const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A path under the project root. */
export function projectPath(...parts: string[]): string {
  return join(PROJECT_ROOT, ...parts);
}

/**
 * `path` for messages and records, not for opening: a path in the project or
 * beside it (the shared data in `../shared`) relative to the project root, so
 * that what is printed and committed holds no machine's absolute path;
 * elsewhere as `workingPath` gives it.
 */
export function displayPath(path: string): string {
  if (!isAbsolute(path)) return path;
  const fromRoot = relative(PROJECT_ROOT, path);
  return fromRoot.startsWith(join("..", "..")) ? workingPath(path) : fromRoot || ".";
}

/** An absolute `path` as one to open from the working folder: relative to it when that is shorter. */
export function workingPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return !isAbsolute(path) || rel.length >= path.length ? path : rel;
}

/** Whether a file or folder exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The file an npm package's import-map name resolves to (its files are all local: nothing is downloaded). */
export function packageFile(specifier: string): string {
  return fileURLToPath(import.meta.resolve(specifier));
}

/** The detectors' names (DETECTORS: near and far); the page's and the flags' choices are DETECTOR_CHOICES. */
export type DetectorKind = keyof typeof DETECTORS;

/**
 * A BlazeFace graph model's files (MediaPipe's face detectors; DETECTORS in
 * face_pipeline.js), committed in lib/core/detector/ (see its README).
 */
export function detectorFiles(kind: DetectorKind): { model: string; weights: string } {
  const model = fileURLToPath(new URL(`../core/detector/${DETECTORS[kind].file}`, import.meta.url));
  return { model, weights: model.replace(/\.json$/, ".bin") };
}
