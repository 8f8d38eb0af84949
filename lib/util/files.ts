/** Folder listings that follow symbolic links, the way a user expects a folder of photos to be read. */
import { join } from "node:path";

/** A folder entry with links followed: a link to a file is a file; a broken link is neither. */
export interface Entry {
  name: string;
  path: string;
  isFile: boolean;
  isDirectory: boolean;
  /** A link whose target is missing (or a loop). */
  broken: boolean;
}

/** The entries of `dir`, sorted by name, symbolic links followed. */
export function listFolder(dir: string): Entry[] {
  return [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name)).map((entry) => {
    const path = join(dir, entry.name);
    if (!entry.isSymlink) {
      return { name: entry.name, path, isFile: entry.isFile, isDirectory: entry.isDirectory, broken: false };
    }
    try {
      const target = Deno.statSync(path);
      return { name: entry.name, path, isFile: target.isFile, isDirectory: target.isDirectory, broken: false };
    } catch {
      return { name: entry.name, path, isFile: false, isDirectory: false, broken: true };
    }
  });
}

/**
 * Every file under `root` (recursively, links followed, each real folder
 * visited once so link loops end) for which `accept(name)` holds, sorted;
 * broken links are passed to `onBroken`.
 */
export function walkFiles(
  root: string,
  accept: (name: string) => boolean,
  onBroken?: (path: string) => void,
): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (dir: string) => {
    const real = Deno.realPathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
    for (const entry of listFolder(dir)) {
      if (entry.isDirectory) walk(entry.path);
      else if (entry.isFile && accept(entry.name)) out.push(entry.path);
      else if (entry.broken) onBroken?.(entry.path);
    }
  };
  walk(root);
  return out;
}
