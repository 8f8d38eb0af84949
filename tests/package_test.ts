/**
 * The npm package as an app builder gets it: `deno task build:npm`'s tarball
 * installed into a fresh Node project, a 10-line ESM script that finds the
 * group photo's five faces as Deno's `detect` does and then ends by itself,
 * and a TypeScript consumer type-checked by tsc.
 */
import { assert } from "./assert.ts";
import { join } from "node:path";
import { EmotionRecognizer } from "../mod.ts";
import { PROJECT_ROOT, projectPath } from "../lib/util/paths.ts";
import { readmeSnippet } from "./readme_snippets.ts";

const GROUP = projectPath("..", "shared", "media", "multi_face.jpg");

/** Run a command in `cwd`; fail the test with its output when it fails. */
async function run(cmd: string, args: string[], cwd: string, timeoutMs = 300_000): Promise<string> {
  const child = new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => child.kill(), timeoutMs);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const out = new TextDecoder().decode(stdout), err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `${cmd} ${args.join(" ")}: exit ${code}\n${out}\n${err}`);
  return out;
}

const SCRIPT = `import { EmotionRecognizer } from "@emotion-cnn/emotion-cnn";
const recognizer = await EmotionRecognizer.load();
const faces = await recognizer.detect(process.argv[2]);
console.log(JSON.stringify(faces));
recognizer.dispose();
`;

const CONSUMER =
  `import { type Face, EmotionError, EmotionRecognizer, evaluate, train } from "@emotion-cnn/emotion-cnn";
const recognizer: EmotionRecognizer = await EmotionRecognizer.load({ detector: "auto", backend: "wasm" });
const faces: Face[] = await recognizer.detect(new Uint8Array([1, 2]));
const box: [number, number, number, number] = faces[0].box;
const emotions = await recognizer.classify([new Uint8Array(48 * 48)]);
const track: number = recognizer.tracker().update(0, faces)[0].track;
console.log(faces[0].emotion.length, box, emotions[0].probabilities.happy, track, EmotionError.name, train, evaluate);
recognizer.dispose();
`;

Deno.test({
  name: "the npm tarball (at most 10 MB, model included) runs in a fresh Node project as in Deno, and types check",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await run(Deno.execPath(), ["task", "build:npm"], PROJECT_ROOT);
    const tarball = projectPath("outputs", "npm", "emotion-cnn.tgz");
    assert.ok(Deno.statSync(tarball).size <= 10 * 2 ** 20, `${Deno.statSync(tarball).size} bytes`);
    const app = Deno.makeTempDirSync();
    Deno.writeTextFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    await run("npm", ["install", "--no-audit", "--no-fund", tarball, "typescript@5.9", "@types/node@20"], app);
    Deno.writeTextFileSync(join(app, "detect.mjs"), SCRIPT);
    assert.ok(SCRIPT.trim().split("\n").length <= 10);
    const started = performance.now();
    const inNode = JSON.parse(await run("node", ["detect.mjs", GROUP], app, 60_000));
    assert.ok(performance.now() - started < 60_000, "the script ends by itself");

    const recognizer = await EmotionRecognizer.load();
    const inDeno = await recognizer.detect(GROUP);
    recognizer.dispose();
    assert.equal(inNode.length, 5);
    assert.deepEqual(inNode.map((f: { box: number[] }) => f.box), inDeno.map((f) => f.box));
    inDeno.forEach((face, i) => {
      for (const [label, p] of Object.entries(face.probabilities)) {
        assert.ok(Math.abs(p - inNode[i].probabilities[label]) <= 1e-4 + 1e-9, `face ${i} ${label}`);
      }
    });

    // The README's Node snippet, run from the project (its path is relative to it).
    const snippet = readmeSnippet("In Node 20", "js");
    assert.ok(snippet.trim().split("\n").length <= 12);
    Deno.writeTextFileSync(join(app, "readme.mjs"), snippet);
    const printed = await run("node", [join(app, "readme.mjs")], PROJECT_ROOT, 60_000);
    assert.equal(printed.trim().split("\n").length, 5, printed);

    Deno.writeTextFileSync(join(app, "consumer.ts"), CONSUMER);
    const tsconfig = {
      compilerOptions: { target: "es2022", module: "nodenext", strict: true, noEmit: true, types: ["node"] },
      files: ["consumer.ts"],
    };
    Deno.writeTextFileSync(join(app, "tsconfig.json"), JSON.stringify(tsconfig));
    await run("npx", ["tsc", "-p", "."], app);
    // The check can fail: a wrong type is caught.
    Deno.writeTextFileSync(join(app, "consumer.ts"), CONSUMER.replace("const track: number", "const track: string"));
    const bad = await new Deno.Command("npx", { args: ["tsc", "-p", "."], cwd: app }).output();
    assert.equal(bad.code, 2, "tsc rejects a consumer with a type error");
  },
});
