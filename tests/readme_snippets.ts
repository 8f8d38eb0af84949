/** The README's text and its code blocks, for the tests that run them. */
import { assert } from "./assert.ts";
import { projectPath } from "../lib/util/paths.ts";

/** README.md's text. */
export const readme = Deno.readTextFileSync(projectPath("README.md"));

/** The README's code block in the language `lang` that follows `after`. */
export function readmeSnippet(after: string, lang: string): string {
  const from = readme.indexOf(after);
  const start = readme.indexOf("```" + lang + "\n", from) + lang.length + 4;
  assert.ok(from >= 0 && start > from, `no ${lang} block after "${after}"`);
  return readme.slice(start, readme.indexOf("```", start));
}
