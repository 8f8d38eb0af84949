/**
 * The committed notebooks are readable without running them: most code
 * cells carry outputs, each notebook shows at least one picture, and every
 * Vega-Lite chart has its PNG in the same bundle.
 */
import { assert } from "../assert.ts";
import { projectPath } from "../../lib/util/paths.ts";
import { cellsMissingDisplays, cleanNotebook, quickEnvironment } from "../../lib/cli/notebooks.ts";
import { setting } from "../../lib/util/notebook.ts";

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

Deno.test("quick mode fills in only the notebook settings the user has not set", () => {
  assert.deepEqual(quickEnvironment("/tmp/r", -0.4, {}), {
    FER_EPOCHS: "2",
    FER_SUBSET: "2000",
    FER_RUN_DIR: "/tmp/r",
    FER_STRENGTHS: "-0.4,0",
  });
  // The default's strength is scored whatever it is, and once.
  assert.equal(quickEnvironment("/tmp/r", -0.7, {}).FER_STRENGTHS, "-0.7,0");
  assert.equal(quickEnvironment("/tmp/r", 0, {}).FER_STRENGTHS, "0");
  assert.deepEqual(quickEnvironment("/tmp/r", -0.4, { FER_EPOCHS: "5", FER_RUN_DIR: "mine", FER_STRENGTHS: "0" }), {
    FER_SUBSET: "2000",
  });
});

Deno.test("a notebook's number setting must be a whole number of at least 1 (0 where 0 is the default)", () => {
  const withEnv = (value: string, read: () => unknown) => {
    Deno.env.set("FER_TEST_SETTING", value);
    try {
      return read();
    } finally {
      Deno.env.delete("FER_TEST_SETTING");
    }
  };
  assert.equal(withEnv("7", () => setting("TEST_SETTING", 3)), 7);
  for (const bad of ["0", "-5", "2.5", "abc", ""]) {
    assert.throws(
      () => withEnv(bad, () => setting("TEST_SETTING", 3)),
      /FER_TEST_SETTING=.*: expected a whole number, at least 1/,
    );
  }
  assert.equal(withEnv("0", () => setting("TEST_SETTING", 0)), 0);
  assert.equal(setting("TEST_SETTING", 3), 3);
});

for (const name of notebooks) {
  Deno.test(`notebooks/${name} carries no machine paths and no execution timestamps`, () => {
    const text = Deno.readTextFileSync(projectPath("notebooks", name));
    assert.ok(!text.includes(projectPath("")), `${name} names this machine's project folder`);
    assert.ok(!/"iopub\.execute_input"|"shell\.execute_reply"/.test(text), `${name} keeps execution timestamps`);
  });
}

Deno.test("cleaning an executed notebook drops timestamps and the project folder from its outputs", () => {
  const executed = JSON.stringify({
    cells: [{
      cell_type: "code",
      metadata: { execution: { "iopub.execute_input": "2026-11-30T04:28:12Z" }, tags: [] },
      outputs: [{ output_type: "stream", text: ["new run in /home/u/emotion-cnn/outputs/runs/notebook\n"] }],
      source: "x",
    }],
  });
  const cleaned = JSON.parse(cleanNotebook(executed, "/home/u/emotion-cnn"));
  assert.deepEqual(cleaned.cells[0].metadata, { tags: [] });
  assert.deepEqual(cleaned.cells[0].outputs[0].text, ["new run in outputs/runs/notebook\n"]);
});
