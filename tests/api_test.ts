/**
 * The public API (mod.ts) as an app builder calls it: the same faces as
 * `deno task predict` from every kind of input, crops and boxes of one's own
 * detector, a video tracker, typed errors, and fine-tuning and evaluation
 * on a folder of one's own faces.
 */
import { assert } from "./assert.ts";
import { join } from "node:path";
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";
import { EmotionError, EmotionRecognizer, evaluate, train, VERSION } from "../mod.ts";
import { PROJECT_ROOT, projectPath } from "../lib/util/paths.ts";
import { loadDataset, resolveDataPath } from "../lib/data/load.ts";

const GROUP = projectPath("..", "shared", "media", "multi_face.jpg");
const options = { sanitizeResources: false, sanitizeOps: false };

/** `deno task predict`'s line for a photo. */
async function predictLine(path: string) {
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", projectPath("lib", "cli", "predict.ts"), path],
    cwd: PROJECT_ROOT,
  }).output();
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test({
  name: "detect gives predict's faces from a path, bytes, a Blob, RGBA pixels and a tensor",
  ...options,
  fn: async () => {
    const recognizer = await EmotionRecognizer.load();
    try {
      assert.match(VERSION, /^0\.\d+\.\d+$/);
      assert.match(recognizer.version.weightsSha256 ?? "", /^[0-9a-f]{64}$/);
      const expected = (await predictLine(GROUP)).faces;
      assert.equal(expected.length, 5);
      const bytes = Deno.readFileSync(GROUP);
      const { data, info } = await sharp(bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
      const rgba = { width: info.width, height: info.height, data: new Uint8Array(data) };
      const tensor = tf.tensor3d(new Int32Array(rgba.data), [info.height, info.width, 4], "int32");
      for (const input of [GROUP, bytes, bytes.buffer, new Blob([bytes]), rgba, tensor]) {
        const faces = await recognizer.detect(input);
        assert.deepEqual(faces.map((f) => f.box), expected.map((f: { box: number[] }) => f.box));
        faces.forEach((face, i) => {
          for (const label of recognizer.labels) {
            assert.ok(Math.abs(face.probabilities[label] - expected[i].probabilities[label]) < 1e-4, label);
          }
        });
      }
      tensor.dispose();
    } finally {
      recognizer.dispose();
    }
  },
});

Deno.test({
  name: "classify takes a detector's boxes (and eyes) or 48x48 crops; tracker follows faces; errors are typed",
  ...options,
  fn: async () => {
    const recognizer = await EmotionRecognizer.load({ calibrated: false });
    try {
      const faces = await recognizer.detect(GROUP);
      const byBox = await recognizer.classify(GROUP, faces);
      byBox.forEach((e, i) => assert.equal(e.emotion, faces[i].emotion));
      const data = await loadDataset(resolveDataPath());
      const set = data.splits.PrivateTest;
      const crops = [0, 1, 2].map((i) => set.pixels.slice(i * 2304, (i + 1) * 2304));
      const emotions = await recognizer.classify(crops);
      assert.equal(emotions.length, 3);
      assert.ok(Math.abs(Object.values(emotions[0].probabilities).reduce((a, b) => a + b) - 1) < 1e-3);

      const tracker = recognizer.tracker({ timeConstant: 0.5 });
      const first = tracker.update(0, faces);
      const next = tracker.update(0.1, faces);
      assert.deepEqual(next.map((f) => f.track), first.map((f) => f.track), "the same faces keep their ids");

      await assert.rejects(() => recognizer.detect(new Uint8Array([1, 2, 3])), EmotionError, "image: ");
      await assert.rejects(() => recognizer.classify([new Uint8Array(10)]), EmotionError, "crops[0]: expected 48x48");
      await assert.rejects(() => recognizer.classify(GROUP, [{ box: [1, 2, 0, 4] }]), EmotionError, "faces[0].box");
      await assert.rejects(() => EmotionRecognizer.load({ model: "/nowhere" }), EmotionError, "/nowhere");
      await assert.rejects(
        () => EmotionRecognizer.load({ detector: "sideways" as "auto" }),
        EmotionError,
        'detector: "sideways" is not one of',
      );
    } finally {
      recognizer.dispose();
    }
  },
});

Deno.test({
  name: "train fine-tunes the default model on a folder of one's own classes, with progress; evaluate scores it",
  ...options,
  fn: async () => {
    const data = await loadDataset(resolveDataPath());
    const set = data.splits.PrivateTest;
    const root = Deno.makeTempDirSync();
    const classes: Record<string, number[]> = { positive: [3], negative: [0, 4], neutral: [6] };
    for (const [split, count] of [["train", 16], ["val", 6]] as const) {
      for (const [name, labels] of Object.entries(classes)) {
        const rows = [...set.labels.keys()].filter((i) => labels.includes(set.labels[i]));
        const picked = split === "train" ? rows.slice(0, count) : rows.slice(100, 100 + count);
        Deno.mkdirSync(join(root, split, name), { recursive: true });
        for (const row of picked) {
          const raw = { width: 48, height: 48, channels: 1 as const };
          const png = await sharp(set.pixels.slice(row * 2304, (row + 1) * 2304), { raw }).png().toBuffer();
          Deno.writeFileSync(join(root, split, name, `${row}.png`), png);
        }
      }
    }
    const epochs: number[] = [];
    const result = await train({
      data: root,
      out: join(root, "run"),
      initFrom: "default",
      epochs: 2,
      batchSize: 16,
      onEpoch: (record) => epochs.push(record.epoch),
    });
    assert.deepEqual(epochs, [1, 2]);
    const tuned = await EmotionRecognizer.load({ model: result.model });
    assert.deepEqual(tuned.labels, ["negative", "neutral", "positive"]);
    assert.equal((await tuned.detect(GROUP)).length, 5, "the tuned model through the same detect call");
    tuned.dispose();
    const report = await evaluate({ model: result.model, data: join(root, "val"), out: join(root, "eval") });
    assert.equal(report.n, 18);
    assert.deepEqual(report.labels, ["negative", "neutral", "positive"]);
    await assert.rejects(() => train({ data: root, out: join(root, "x"), epochz: 3 }), EmotionError, 'option "epochz"');
  },
});
