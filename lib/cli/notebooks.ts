/**
 * Execute every notebook in notebooks/ headless with the Deno kernel, in
 * order, and fail if any cell errors. Executed copies go to
 * outputs/notebooks/, or, with `--update`, the outputs are written into the
 * notebooks themselves (to commit them).
 *
 *   deno task notebooks [--full] [--update] [--only NAME]
 */
import { join } from "node:path";
import { PROJECT_ROOT, projectPath } from "../util/paths.ts";
import { readJson, writeFileAtomic } from "../util/files.ts";
import { runCommand } from "./run.ts";
import { type ModelMetadata, priorStrength } from "../model/model_io.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";

export const NOTEBOOKS_FLAGS = {
  full: { type: "boolean", help: "the notebooks' own settings (default: quick, 2 epochs on 2,000 images)" },
  update: { type: "boolean", help: "write the outputs into notebooks/ (in place) instead of outputs/notebooks/" },
  only: { type: "string", value: "NAME", help: "run only the notebooks whose file name contains NAME" },
} as const satisfies FlagTable;

const PYTHON = "/usr/bin/python3";

/** A notebook cell as nbformat stores it (the fields read here). */
interface NotebookCell {
  cell_type: string;
  source: string | string[];
  outputs?: { output_type: string }[];
}

/**
 * The cells (numbered from 1) of an executed notebook that call one of the
 * show helpers but hold no display output: the Deno kernel has been seen to
 * drop a display now and then, and the notebook would be committed without
 * its chart.
 */
export function cellsMissingDisplays(notebookJson: string): number[] {
  const cells: NotebookCell[] = JSON.parse(notebookJson).cells;
  return cells.flatMap((cell, i) => {
    const source = Array.isArray(cell.source) ? cell.source.join("") : cell.source;
    const shows = cell.cell_type === "code" && /\bshow(VegaLite|Plotly|Png)\(/.test(source);
    const displayed = (cell.outputs ?? []).some((o) => o.output_type === "display_data");
    return shows && !displayed ? [i + 1] : [];
  });
}

/**
 * An executed notebook as it is kept: without the kernel's per-cell
 * execution timestamps, and with this machine's project folder left out of
 * the outputs (paths read from the project root: "outputs/runs/notebook").
 */
export function cleanNotebook(notebookJson: string, root: string): string {
  const notebook = JSON.parse(notebookJson);
  for (const cell of notebook.cells) delete cell.metadata?.execution;
  const prefix = root.endsWith("/") ? root : `${root}/`;
  return JSON.stringify(notebook, null, 1).replaceAll(prefix, "") + "\n";
}

async function run(command: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const { code } = await new Deno.Command(command, { args, env, stdout: "inherit", stderr: "inherit" }).output();
  return code;
}

/**
 * Quick settings so the notebooks run in a few minutes (CI), for those the
 * user has not set in `env`; notebook 07 scores each candidate at two prior
 * strengths, not six: `defaultStrength` (the one `outputs/model` was shipped
 * at, so its row is there) and 0.
 */
export function quickEnvironment(
  runDir: string,
  defaultStrength: number,
  env: Record<string, string> = Deno.env.toObject(),
): Record<string, string> {
  const strengths = [...new Set([defaultStrength, 0])].join(",");
  const quick = { FER_EPOCHS: "2", FER_SUBSET: "2000", FER_RUN_DIR: runDir, FER_STRENGTHS: strengths };
  return Object.fromEntries(Object.entries(quick).filter(([name]) => env[name] === undefined));
}

/** The prior strength the default model (`outputs/model`) was shipped at (0 when it was not balanced). */
function shippedStrength(): number {
  return priorStrength(readJson<ModelMetadata>(projectPath("outputs", "model", "metadata.json")));
}

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "notebooks", summary: "Execute the notebooks headless; fail on any cell error." },
    NOTEBOOKS_FLAGS,
    args,
  );
  try {
    Deno.statSync(PYTHON);
  } catch {
    throw new Error(`${PYTHON} not found: install Debian's python3-nbconvert and python3-jupyter-client`);
  }
  if (await run(Deno.execPath(), ["jupyter", "--install", "--force"]) !== 0) {
    throw new Error("deno jupyter --install failed");
  }
  const notebooks = [...Deno.readDirSync(projectPath("notebooks"))]
    .map((e) => e.name).filter((n) => n.endsWith(".ipynb") && (!values.only || n.includes(values.only))).sort();
  if (notebooks.length === 0) throw new Error(`--only ${values.only}: no notebook matches`);
  const outDir = projectPath("outputs", "notebooks");
  const env = values.full
    ? {}
    : quickEnvironment(Deno.makeTempDirSync({ prefix: "fer-notebooks-" }) + "/run", shippedStrength());
  const failed: string[] = [];
  /** Execute one notebook; its exit code, seconds, and the cells that lost their display output. */
  const execute = async (name: string) => {
    const started = performance.now();
    console.error(`running notebooks/${name} ...`);
    const code = await run(PYTHON, [
      "-m",
      "nbconvert",
      "--to",
      "notebook",
      "--execute",
      "--ExecutePreprocessor.timeout=3600",
      "--ExecutePreprocessor.kernel_name=deno",
      ...(values.update ? ["--inplace"] : ["--output-dir", outDir]),
      join(projectPath("notebooks"), name),
    ], env);
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    const executed = values.update ? projectPath("notebooks", name) : join(outDir, name);
    if (code === 0) writeFileAtomic(executed, cleanNotebook(Deno.readTextFileSync(executed), PROJECT_ROOT));
    const missing = code === 0 ? cellsMissingDisplays(Deno.readTextFileSync(executed)) : [];
    return { code, seconds, missing };
  };
  for (const name of notebooks) {
    let result = await execute(name);
    if (result.missing.length) {
      console.error(
        `notebooks/${name}: cell(s) ${result.missing.join(", ")} lost their display output; running it again`,
      );
      result = await execute(name);
    }
    const { code, seconds, missing } = result;
    const problem = code !== 0 ? "a cell failed" : missing.length ? `cell(s) ${missing.join(", ")} show nothing` : "";
    console.error(`${problem ? `FAILED (${problem})` : "ok"}: notebooks/${name} (${seconds}s)`);
    if (problem) failed.push(name);
  }
  console.log(`notebooks: ${notebooks.length - failed.length} passed, ${failed.length} failed`);
  if (failed.length) throw new Error(`notebook(s) failed: ${failed.join(", ")}`);
}

if (import.meta.main) await runCommand(main);
