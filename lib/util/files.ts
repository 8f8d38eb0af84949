/**
 * Files written whole or not at all (a crash leaves the old or the new, never
 * a torn one), JSON read with the file named in errors, and folder listings
 * that follow symbolic links, the way a user expects a folder of photos to be
 * read.
 */
import { basename, dirname, join, resolve } from "node:path";
import { exists } from "./paths.ts";

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
 * Every entry under `root` whose name `accept`s, except folders (recursively,
 * links followed, each real folder visited once so link loops end), sorted:
 * files, and also broken links and special files (FIFOs, devices), which the
 * caller reports when it cannot read them.
 */
export function walkFiles(root: string, accept: (name: string) => boolean): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (dir: string) => {
    const real = Deno.realPathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
    for (const entry of listFolder(dir)) {
      if (entry.isDirectory) walk(entry.path);
      else if (accept(entry.name)) out.push(entry.path);
    }
  };
  walk(root);
  return out;
}

/**
 * The file information of `path` if it is a regular file (links followed);
 * otherwise an error of one line naming it: missing, a link to nothing, a
 * loop of links, a folder (unless `folders`), or a FIFO, device or socket,
 * which would hang or never end if read. Checked before anything opens it.
 */
export function regularFile(path: string, folders = false): Deno.FileInfo {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    const loop = (error as { code?: string }).code === "ELOOP" || /loop/i.test((error as Error).message);
    throw new Error(`${path}: ${loop ? "a loop of symbolic links" : "no such file (or a link to nothing)"}`);
  }
  if (info.isDirectory && folders) return info;
  if (info.isDirectory) throw new Error(`${path}: a folder, not a file`);
  if (!info.isFile) throw new Error(`${path}: not a regular file (a FIFO, device or socket); not read`);
  return info;
}

/**
 * Whether `output` names the same file as one of `inputs`, links followed
 * (also where `output` does not exist yet but its folder is a link).
 */
export function isSameFile(output: string, inputs: string[]): boolean {
  const target = resolvedPath(output);
  return inputs.some((input) => resolvedPath(input) === target);
}

/** `path` with every link resolved: the real path of it, or of its folder when it does not exist. */
function resolvedPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    try {
      return join(Deno.realPathSync(dirname(resolve(path))), basename(path));
    } catch {
      return resolve(path);
    }
  }
}

/** Parse a JSON file; a missing, empty or damaged file is named in the error. */
export function readJson<T>(path: string): T {
  let text: string;
  if (exists(path)) regularFile(path); // a FIFO or a device would hang or never end
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    throw new Error(`${path} is missing`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new Error(`${path} is damaged: ${text.trim() ? (error as Error).message : "it is empty"}`);
  }
}

/**
 * Write `files` (name -> bytes or JSON value) as folder `dir`, replacing it
 * so that a crash at any point leaves a complete copy that `recoverFolder`
 * puts back: the files go to `dir.tmp-PID`; renaming that to `dir.new`
 * marks it complete; then `dir` becomes `dir.old`, `dir.new` becomes `dir`,
 * and `dir.old` is removed.
 */
export function writeFolderAtomic(dir: string, files: Record<string, Uint8Array | unknown>): void {
  recoverFolder(dir); // settle what an earlier crash left (this also clears old temporary folders)
  const tmp = `${dir}.tmp-${Deno.pid}`;
  writeFiles(tmp, files);
  commitFolder(tmp, dir);
}

/** Write `files` (name -> bytes, or a value written as JSON) into folder `dir`, creating it. */
export function writeFiles(dir: string, files: Record<string, Uint8Array | unknown>): void {
  Deno.mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const bytes = content instanceof Uint8Array
      ? content
      : new TextEncoder().encode(JSON.stringify(content, null, 2) + "\n");
    Deno.writeFileSync(join(dir, name), bytes);
  }
}

/**
 * Put the complete folder `staged` (a sibling of `dir`, e.g. `dir.tmp-PID`)
 * in place of `dir` in the steps that `recoverFolder` settles after a crash:
 * `staged` -> `dir.new` (complete), `dir` -> `dir.old`, `dir.new` -> `dir`,
 * then `dir.old` removed.
 */
export function commitFolder(staged: string, dir: string): void {
  Deno.renameSync(staged, `${dir}.new`);
  if (exists(dir)) Deno.renameSync(dir, `${dir}.old`);
  Deno.renameSync(`${dir}.new`, dir);
  if (exists(`${dir}.old`)) Deno.removeSync(`${dir}.old`, { recursive: true });
}

/**
 * Settle what a crash inside `writeFolderAtomic` left beside `dir`: a
 * complete `dir.new` replaces `dir`; a missing `dir` comes back from
 * `dir.old`; unfinished `dir.tmp-*` folders are removed. Returns what it
 * did, for the log (empty when nothing).
 */
export function recoverFolder(dir: string): string[] {
  const parent = dirname(dir), base = basename(dir);
  if (!exists(parent)) return [];
  const siblings = [...Deno.readDirSync(parent)].map((e) => e.name).filter((n) => n.startsWith(`${base}.`));
  const done: string[] = [];
  const take = (name: string) => {
    if (exists(dir)) Deno.removeSync(dir, { recursive: true });
    Deno.renameSync(join(parent, name), dir);
    done.push(`restored ${dir} from ${name}`);
  };
  if (siblings.includes(`${base}.new`)) take(`${base}.new`);
  else if (!exists(dir) && siblings.includes(`${base}.old`)) take(`${base}.old`);
  for (const name of siblings) {
    const path = join(parent, name);
    if (!exists(path) || !/^\.(old|new|tmp-\d+)$/.test(name.slice(base.length))) continue;
    Deno.removeSync(path, { recursive: true });
    done.push(`removed ${path}`);
  }
  return done;
}

/** Write a file (text or bytes) whole or not at all: to `path.tmp-PID`, then renamed over `path`. */
export function writeFileAtomic(path: string, content: string | Uint8Array): void {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    if (typeof content === "string") Deno.writeTextFileSync(tmp, content);
    else Deno.writeFileSync(tmp, content);
    Deno.renameSync(tmp, path);
  } catch (error) {
    if (exists(tmp)) Deno.removeSync(tmp, { recursive: true });
    const reason = exists(path) && Deno.statSync(path).isDirectory ? "it is a folder" : (error as Error).message;
    throw new Error(`${path}: cannot write the file (${reason})`);
  }
}
