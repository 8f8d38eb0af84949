// The README is the manual: at most 300 lines, every deno task named, results and history kept in RESULTS.md.
import { assert } from "./assert.ts";
import { projectPath } from "../lib/util/paths.ts";
import { readme, readmeSnippet } from "./readme_snippets.ts";

Deno.test("README.md is a manual of at most 300 lines that links RESULTS.md", () => {
  const lines = readme.split("\n").length;
  assert.ok(lines <= 300, `README.md has ${lines} lines`);
  assert.ok(readme.includes("(RESULTS.md)") && Deno.statSync(projectPath("RESULTS.md")).size > 0);
  assert.ok(!/QUICK_FIGURES|TODO|TBD/.test(readme), "a placeholder is left in README.md");
});

Deno.test("README.md names every deno task", () => {
  const tasks = Object.keys(JSON.parse(Deno.readTextFileSync(projectPath("deno.json"))).tasks);
  for (const task of tasks) {
    assert.ok(readme.includes(`deno task ${task}`), `README.md does not name deno task ${task}`);
  }
});

Deno.test({
  name: "README's Deno snippet (at most 12 lines) runs and prints the group photo's five faces",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const snippet = readmeSnippet("In Deno:", "ts");
    assert.ok(snippet.trim().split("\n").length <= 12);
    const file = projectPath(`.readme-snippet-${Deno.pid}.ts`);
    Deno.writeTextFileSync(file, snippet);
    try {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", file],
        cwd: projectPath(),
      }).output();
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      assert.equal(new TextDecoder().decode(stdout).trim().split("\n").length, 5);
    } finally {
      Deno.removeSync(file);
    }
  },
});
