// lib/'s import structure: its folders in pipeline order, each importing only from the folders before it (or
// itself), and no import cycle between files. Reads the import lines of every .ts and .js file under lib/.
import { assert } from "./assert.ts";
import { dirname, join, relative, resolve } from "node:path";
import { walkFiles } from "../lib/util/files.ts";
import { PROJECT_ROOT } from "../lib/util/paths.ts";

/** lib/'s folders, lowest first: each may import from the folders before it. */
const LAYERS = ["backend", "core", "util", "web", "data", "model", "vision", "eval", "train", "ship", "cli"];

const LIB = join(PROJECT_ROOT, "lib");

/** Each lib file (relative to lib/) and the lib files it imports (static, dynamic and re-exports). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const path of walkFiles(LIB, (name) => /\.(ts|js)$/.test(name))) {
    const text = Deno.readTextFileSync(path);
    const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]);
    graph.set(
      relative(LIB, path),
      specifiers.map((s) => relative(LIB, resolve(dirname(path), s))),
    );
  }
  return graph;
}

/** A cycle in `graph` (a list of files, first = last), or undefined. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string): string[] | undefined => {
    if (state.get(file) === "done") return undefined;
    if (state.get(file) === "open") return [...stack.slice(stack.indexOf(file)), file];
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(file, "done");
    return undefined;
  };
  for (const file of graph.keys()) {
    const cycle = visit(file);
    if (cycle) return cycle;
  }
  return undefined;
}

Deno.test("lib/'s folders are the known layers, and each imports only from the layers below it", () => {
  const graph = importGraph();
  const folders = new Set([...graph.keys()].map((file) => file.split("/")[0]));
  assert.deepEqual([...folders].sort(), [...LAYERS].sort(), "a lib/ folder missing from LAYERS (or gone from lib/)");
  const upward: string[] = [];
  for (const [file, imports] of graph) {
    const from = LAYERS.indexOf(file.split("/")[0]);
    for (const target of imports) {
      if (LAYERS.indexOf(target.split("/")[0]) > from) upward.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(upward, [], `imports that run up the layers (${LAYERS.join(" < ")})`);
});

Deno.test("no import cycle between lib/'s files", () => {
  const cycle = findCycle(importGraph());
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(" -> ")}`);
});

Deno.test("the cycle finder finds a cycle (the test above can fail)", () => {
  const graph = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", []]]);
  assert.deepEqual(findCycle(graph), ["a.ts", "b.ts", "c.ts", "a.ts"]);
  assert.equal(findCycle(new Map([["a.ts", ["b.ts"]], ["b.ts", []]])), undefined);
});
