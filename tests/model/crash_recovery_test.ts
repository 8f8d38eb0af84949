/**
 * Every crash point of a checkpoint write, made by leaving the folders as
 * that crash would (not by timing a kill), and what recovery makes of it.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { loadModel, saveModel } from "../../lib/model/model_io.ts";
import { readJson, recoverFolder, writeFileAtomic, writeFolderAtomic } from "../../lib/util/files.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { buildModel } from "../../lib/model/architectures.ts";
import { parseTrainArgs } from "../../lib/train/config.ts";

/** A folder holding one file `v` with `content`. */
function folder(path: string, content: string) {
  Deno.mkdirSync(path, { recursive: true });
  Deno.writeTextFileSync(join(path, "v"), content);
}

/** What `recoverFolder` leaves: the folder's content, and every name beside it. */
function recover(setup: (dir: string) => void): { content: string | null; names: string[] } {
  const parent = Deno.makeTempDirSync(), dir = join(parent, "last");
  setup(dir);
  recoverFolder(dir);
  let content: string | null = null;
  try {
    content = Deno.readTextFileSync(join(dir, "v"));
  } catch { /* no folder */ }
  return { content, names: [...Deno.readDirSync(parent)].map((e) => e.name).sort() };
}

const CASES: [string, (dir: string) => void, string][] = [
  ["while writing the new copy: the unfinished copy is dropped", (d) => {
    folder(d, "old");
    folder(`${d}.tmp-41`, "half");
  }, "old"],
  ["after the new copy was marked complete", (d) => {
    folder(d, "old");
    folder(`${d}.new`, "new");
  }, "new"],
  ["between moving the old copy aside and the new one in", (d) => {
    folder(`${d}.old`, "old");
    folder(`${d}.new`, "new");
  }, "new"],
  ["before removing the old copy", (d) => {
    folder(d, "new");
    folder(`${d}.old`, "old");
  }, "new"],
  ["with only the old copy left", (d) => folder(`${d}.old`, "old"), "old"],
];

for (const [name, setup, want] of CASES) {
  Deno.test(`a crash ${name}: recovery leaves one complete folder`, () => {
    const { content, names } = recover(setup);
    assert.equal(content, want);
    assert.deepEqual(names, ["last"]);
  });
}

Deno.test("writeFolderAtomic over a crash's leftovers settles them and leaves only the new folder", () => {
  const parent = Deno.makeTempDirSync(), dir = join(parent, "best");
  folder(`${dir}.old`, "old");
  folder(`${dir}.tmp-9`, "half");
  writeFolderAtomic(dir, { v: new TextEncoder().encode("fresh") });
  assert.equal(Deno.readTextFileSync(join(dir, "v")), "fresh");
  assert.deepEqual([...Deno.readDirSync(parent)].map((e) => e.name), ["best"]);
});

Deno.test("damaged model folders and run files are named in one line", async () => {
  await initBackend();
  const dir = join(Deno.makeTempDirSync(), "model");
  const model = buildModel("compact");
  await saveModel(dir, model, { architecture: "compact" } as never);
  model.dispose();
  const weights = Deno.readFileSync(join(dir, "weights.bin"));
  Deno.writeFileSync(join(dir, "weights.bin"), weights.slice(0, 1001));
  await assert.rejects(() => loadModel(dir), /weights\.bin is damaged: 1001 bytes where model\.json describes/);
  Deno.writeFileSync(join(dir, "weights.bin"), weights);
  Deno.writeTextFileSync(join(dir, "model.json"), '{"modelTopology": ');
  await assert.rejects(() => loadModel(dir), /model\.json is damaged/);
  Deno.writeTextFileSync(join(dir, "metadata.json"), "");
  assert.throws(() => readJson(join(dir, "metadata.json")), /metadata\.json is damaged: it is empty/);
  const run = Deno.makeTempDirSync();
  Deno.writeTextFileSync(join(run, "config.json"), "");
  assert.throws(() => parseTrainArgs(["--out", run, "--resume"]), /config\.json is damaged/);
});

Deno.test("a text file that cannot be written (its path is a folder) is named, and leaves no temporary file", () => {
  const dir = Deno.makeTempDirSync();
  Deno.mkdirSync(join(dir, "out"));
  assert.throws(() => writeFileAtomic(join(dir, "out"), "{}"), /out: cannot write the file \(it is a folder\)/);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out"]);
});
