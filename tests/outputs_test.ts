// What the repository keeps under outputs/: the shipped models, and for every run its record (settings, history,
// command), with weights only where a shipped model uses them; in all at most 60 MB.
import { assert } from "./assert.ts";
import { dirname, join } from "node:path";
import { PROJECT_ROOT } from "../lib/util/paths.ts";
import { parseHistoryCsv } from "../lib/train/history.ts";
import { runPaths } from "../lib/train/run_folder.ts";
import { readJson } from "../lib/util/files.ts";

/** The files git tracks under outputs/ (empty outside a git checkout). */
async function trackedOutputs(): Promise<string[]> {
  const { stdout, success } = await new Deno.Command("git", { args: ["ls-files", "outputs"], cwd: PROJECT_ROOT })
    .output();
  return success ? new TextDecoder().decode(stdout).split("\n").filter(Boolean) : [];
}

Deno.test("tracked files under outputs/ total at most 60 MB", async () => {
  const files = await trackedOutputs();
  const bytes = files.reduce((sum, f) => sum + Deno.statSync(join(PROJECT_ROOT, f)).size, 0);
  assert.ok(bytes <= 60 * 2 ** 20, `${(bytes / 2 ** 20).toFixed(1)} MB tracked under outputs/`);
});

Deno.test("every committed run keeps its settings, history and command; only an unfinished run keeps last/", async () => {
  const files = await trackedOutputs();
  const runs = [...new Set(files.filter((f) => f.startsWith("outputs/runs/")).map((f) => f.split("/")[2]))];
  assert.ok(runs.length > 0);
  for (const name of runs) {
    const run = join(PROJECT_ROOT, "outputs", "runs", name);
    for (const file of ["config.json", "history.csv", "command.txt"]) {
      assert.ok(files.includes(`outputs/runs/${name}/${file}`), `outputs/runs/${name}/${file} is not committed`);
    }
    if (files.some((f) => f.startsWith(`outputs/runs/${name}/last/`))) {
      const epochs = readJson<{ epochs: number }>(runPaths(run).config).epochs;
      const done = parseHistoryCsv(Deno.readTextFileSync(runPaths(run).history)).length;
      assert.ok(done < epochs, `outputs/runs/${name} finished (${done} of ${epochs} epochs) but still commits last/`);
    }
  }
});

/** Absolute paths of a machine: under the usual roots, or this checkout's own folder. */
const ABSOLUTE_PATH = new RegExp(
  `(?<![\\w.~-])(/(?:work|home|tmp|root|Users|mnt|var|opt|srv)/[\\w.-]|${
    dirname(PROJECT_ROOT).replaceAll("/", "\\/")
  }/)`,
);

/** The text a committed notebook printed or displayed (its outputs, not its code). */
function notebookOutputs(json: string): string {
  const cells: { outputs?: { text?: string | string[]; data?: Record<string, unknown> }[] }[] = JSON.parse(json).cells;
  return cells.flatMap((cell) => cell.outputs ?? []).map((o) => JSON.stringify([o.text, o.data])).join("\n");
}

Deno.test("no committed notebook output, report or record holds an absolute path of the machine that made it", async () => {
  const { stdout } = await new Deno.Command("git", { args: ["ls-files", "notebooks", "outputs"], cwd: PROJECT_ROOT })
    .output();
  const files = new TextDecoder().decode(stdout).split("\n").filter((f) => /\.(ipynb|json|md|txt|log|csv)$/.test(f));
  const offending = files.filter((file) => {
    const text = Deno.readTextFileSync(join(PROJECT_ROOT, file));
    return ABSOLUTE_PATH.test(file.endsWith(".ipynb") ? notebookOutputs(text) : text);
  });
  assert.deepEqual(offending, [], `absolute paths in ${offending.join(", ")}`);
  assert.ok(ABSOLUTE_PATH.test('"loaded /work/shared/datasets/fer2013/fer2013.csv.gz"'), "the scan can fail");
  assert.ok(!ABSOLUTE_PATH.test("loaded ../shared/datasets/fer2013/fer2013.csv.gz"));
});
