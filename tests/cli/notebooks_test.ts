/**
 * The committed notebooks are readable without running them: most code
 * cells carry outputs, each notebook shows at least one picture, and every
 * Vega-Lite chart has its PNG in the same bundle.
 */
import { assert } from "../assert.ts";
import { projectPath } from "../../lib/util/paths.ts";
import { cellsMissingDisplays } from "../../lib/cli/notebooks.ts";

interface Output {
  output_type: string;
  data?: Record<string, unknown>;
}
interface Cell {
  cell_type: string;
  outputs?: Output[];
}

const notebooks = [...Deno.readDirSync(projectPath("notebooks"))].map((e) => e.name)
  .filter((n) => n.endsWith(".ipynb")).sort();

Deno.test("there are notebooks, and 05_explain is one of them", () => {
  assert.ok(notebooks.length >= 5, notebooks.join(", "));
  assert.ok(notebooks.includes("05_explain.ipynb"));
});

for (const name of notebooks) {
  Deno.test(`notebooks/${name} is committed with outputs, a PNG, and a PNG beside every chart`, () => {
    const text = Deno.readTextFileSync(projectPath("notebooks", name));
    const cells: Cell[] = JSON.parse(text).cells;
    const code = cells.filter((c) => c.cell_type === "code");
    const withOutput = code.filter((c) => (c.outputs ?? []).length > 0).length;
    assert.ok(withOutput >= 0.8 * code.length, `${withOutput} of ${code.length} code cells have outputs`);
    const bundles = code.flatMap((c) => c.outputs ?? []).flatMap((o) => (o.data ? [o.data] : []));
    assert.ok(bundles.some((b) => "image/png" in b), "at least one PNG");
    for (const bundle of bundles) {
      if ("application/vnd.vegalite.v5+json" in bundle || "application/vnd.plotly.v1+json" in bundle) {
        assert.ok("image/png" in bundle, "a chart without its PNG");
      }
    }
    const errors = code.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === "error");
    assert.equal(errors.length, 0, "a committed cell error");
    assert.deepEqual(cellsMissingDisplays(text), [], "cells that call a show helper but show nothing");
  });
}

Deno.test("a notebook cell that calls a show helper but holds no display output is found", () => {
  const text = Deno.readTextFileSync(projectPath("notebooks", "04_evaluation.ipynb"));
  assert.deepEqual(cellsMissingDisplays(text), []);
  const notebook = JSON.parse(text);
  const index = notebook.cells.findIndex((c: Cell & { source: string[] }) =>
    c.source.join("").includes("showVegaLite(")
  );
  notebook.cells[index].outputs = [];
  assert.deepEqual(cellsMissingDisplays(JSON.stringify(notebook)), [index + 1]);
});
