/** `deno task evaluate --detect` on a face folder: an image whose face is not found is counted, as wrong. */
import { assert } from "../assert.ts";
import { join } from "node:path";
import sharp from "sharp";
import { PROJECT_ROOT, projectPath } from "../../lib/util/paths.ts";
import { priorStrength } from "../../lib/model/model_io.ts";
import { shippedCheckpoints } from "../../lib/ship/ship.ts";

Deno.test({
  name: "evaluate --detect counts an image without a face as wrong, names it, and lists it in report.json",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const root = Deno.makeTempDirSync();
    const faces = join(root, "faces"), out = join(root, "report");
    for (const dir of ["happy", "angry"]) Deno.mkdirSync(join(faces, dir), { recursive: true });
    Deno.copyFileSync(projectPath("..", "shared", "media", "single_face.jpg"), join(faces, "happy", "face.jpg"));
    const blank = await sharp(new Uint8Array(200 * 200).fill(128), { raw: { width: 200, height: 200, channels: 1 } })
      .png().toBuffer();
    Deno.writeFileSync(join(faces, "angry", "wall.png"), blank);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", projectPath("lib", "cli", "evaluate.ts"), "--model", projectPath("outputs", "model")]
        .concat(["--data", faces, "--detect", "--out", out]),
      cwd: PROJECT_ROOT,
    }).output();
    const printed = new TextDecoder().decode(stdout), errors = new TextDecoder().decode(stderr);
    assert.equal(code, 0, errors);
    assert.match(errors, /no face found: .*wall\.png \(counted as wrong\)/);
    assert.match(printed, /no answer \(no face found\): 1 images, counted as wrong/);
    const report = JSON.parse(Deno.readTextFileSync(join(out, "report.json")));
    assert.equal(report.n, 2);
    assert.ok(report.accuracy <= 0.5, `the faceless image is wrong: accuracy ${report.accuracy}`);
    assert.deepEqual(report.no_face, [join(faces, "angry", "wall.png")]);
    assert.equal(report.per_class.angry.support, 1);
  },
});

Deno.test({
  name:
    "evaluate --prior-shift S scores the default's run checkpoint as ship --balance-strength S shipped it (outputs/model)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const shipped = JSON.parse(Deno.readTextFileSync(projectPath("outputs", "model", "metadata.json")));
    const shift = priorStrength(shipped);
    const trained = projectPath(shippedCheckpoints(shipped)[0]);
    const out = join(Deno.makeTempDirSync(), "shifted");
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", projectPath("lib", "cli", "evaluate.ts"), "--model", trained, "--split", "PublicTest"]
        .concat(["--prior-shift", `${shift}`, "--out", out]),
      cwd: PROJECT_ROOT,
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const report = JSON.parse(Deno.readTextFileSync(join(out, "report.json")));
    assert.equal(report.priorShift, shift);
    assert.ok(
      Math.abs(report.accuracy - shipped.metrics.PublicTest.accuracy) < 1e-3,
      `${report.accuracy} against outputs/model's ${shipped.metrics.PublicTest.accuracy}`,
    );
  },
});
