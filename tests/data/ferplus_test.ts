/** FER+ labels from the votes, and class lists as data: image folders of other classes, face folders for evaluation. */
import { assert } from "../assert.ts";
import { join } from "node:path";
import sharp from "sharp";
import { ferPlusTarget, VOTES_SHARE } from "../../lib/data/ferplus.ts";
import { relabel } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { folderClasses, loadFaceFolder, loadImageFolders } from "../../lib/data/folders.ts";
import { EMOTIONS, FERPLUS_CLASSES } from "../../lib/data/labels.ts";
import { trainingTargets } from "../../lib/train/losses.ts";
import { seededRandom } from "../../lib/util/random.ts";

// Votes in the file's order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
const votes = (byName: Record<string, number>) =>
  ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown", "NF"].map((n) =>
    byName[n] ?? 0
  );
const asMap = (t: Float32Array | undefined) =>
  t && Object.fromEntries(FERPLUS_CLASSES.map((c, i) => [c, +t[i].toFixed(3)]).filter(([, v]) => v));

Deno.test("FER+ votes: single votes dropped, majority needs more than half, the distribution covers 75%", () => {
  assert.deepEqual(asMap(ferPlusTarget(votes({ happy: 6, sad: 3, angry: 1 }), "majority")), { happy: 1 });
  assert.equal(ferPlusTarget(votes({ happy: 4, sad: 4, angry: 2 }), "majority"), undefined, "no majority");
  assert.deepEqual(asMap(ferPlusTarget(votes({ happy: 4, sad: 4, angry: 2 }), "crossentropy")), {
    happy: 0.5,
    sad: 0.5,
  });
  assert.deepEqual(
    asMap(ferPlusTarget(votes({ neutral: 5, sad: 2, angry: 2, fear: 1 }), "probability")),
    { neutral: 0.714, sad: 0.286 },
    "neutral 5 + sad 2 of 9 kept votes covers 75%; a tie goes to the earlier column",
  );
  assert.deepEqual(asMap(ferPlusTarget(votes({ contempt: 6, neutral: 4 }), "majority")), { contempt: 1 });
  assert.equal(ferPlusTarget(votes({ NF: 10 }), "crossentropy"), undefined, "not a face");
  assert.equal(ferPlusTarget(votes({ unknown: 6, happy: 4 }), "majority"), undefined, "unknown");
  assert.deepEqual(asMap(ferPlusTarget(votes({ happy: 6, unknown: 4 }), "crossentropy")), { happy: 1 });
});

Deno.test("FER2013 with FER+ labels: eight classes, test splits by majority, soft training targets", async () => {
  const path = resolveDataPath();
  const majority = await loadDataset(path, { labels: "ferplus" });
  assert.deepEqual(majority.labels, FERPLUS_CLASSES);
  for (const split of ["Training", "PublicTest", "PrivateTest"] as const) {
    const n = majority.splits[split].n;
    assert.ok(
      n > 0.85 * (split === "Training" ? 28709 : 3589) && n < (split === "Training" ? 28709 : 3589),
      `${split}: ${n}`,
    );
  }
  assert.ok(majority.splits.Training.labels.includes(7), "contempt is a class");
  const soft = await loadDataset(path, { labels: "ferplus", labelMode: "crossentropy" });
  const train = soft.splits.Training;
  assert.ok(train.n > majority.splits.Training.n, "the distribution keeps images without a majority");
  assert.deepEqual(soft.splits.PrivateTest.labels, majority.splits.PrivateTest.labels, "test splits: majority");
  for (let row = 0; row < train.n; row += 997) {
    const t = train.targets!.subarray(row * 8, (row + 1) * 8);
    assert.ok(Math.abs(t.reduce((a, b) => a + b, 0) - 1) < 1e-5 && t.indexOf(Math.max(...t)) === train.labels[row]);
  }
  await assert.rejects(
    () => loadDataset(Deno.makeTempDirSync(), { labels: "ferplus" }),
    /FER\+ votes come with the FER2013 CSV/,
  );
});

Deno.test("FER2013 softened by the votes: its own classes, labels and test splits; half of each target the votes", async () => {
  const path = resolveDataPath();
  const [plain, softened] = [await loadDataset(path), await loadDataset(path, { labels: "fer2013-votes" })];
  assert.deepEqual(softened.labels, EMOTIONS);
  assert.deepEqual(softened.splits.PrivateTest.labels, plain.splits.PrivateTest.labels);
  const train = softened.splits.Training;
  assert.deepEqual(train.labels, plain.splits.Training.labels);
  let agreeing = 0, rows = 0;
  for (let row = 0; row < train.n; row += 97, rows++) {
    const t = train.targets!.subarray(row * 7, (row + 1) * 7);
    assert.ok(Math.abs(t.reduce((a, b) => a + b, 0) - 1) < 1e-5, `row ${row} sums to 1`);
    assert.ok(t[train.labels[row]] >= 1 - VOTES_SHARE - 1e-6, `row ${row} keeps its label's share`);
    if (t[train.labels[row]] > 1 - 1e-6) agreeing++;
  }
  // Where the votes agree with the label (or give nothing) the target is the label; elsewhere it is spread.
  assert.ok(agreeing > 0.3 * rows && agreeing < 0.95 * rows, `${agreeing} of ${rows} targets are one-hot`);
});

Deno.test("training targets: soft labels as they are, or a label drawn from them each step", () => {
  const set = {
    n: 2,
    pixels: new Uint8Array(2 * 48 * 48),
    labels: Uint8Array.from([0, 1]),
    targets: Float32Array.from([0.75, 0.25, 0, 0, 0.5, 0.5]),
  };
  assert.deepEqual(Array.from(trainingTargets(set, [0, 1], 3, 0)), [0.75, 0.25, 0, 0, 0.5, 0.5]);
  const random = seededRandom(1);
  const drawn = Array.from({ length: 400 }, () => trainingTargets({ ...set, sampleTargets: true }, [0], 3, 0, random));
  assert.ok(drawn.every((t) => t.reduce((a, b) => a + b, 0) === 1 && t[2] === 0), "one-hot, never an absent class");
  const first = drawn.filter((t) => t[0] === 1).length / drawn.length;
  assert.ok(Math.abs(first - 0.75) < 0.08, `class 0 drawn ${first} of the time, for 0.75`);
});

/** Write a small gray PNG at `path`. */
async function png(path: string, shade: number) {
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  const raw = { width: 20, height: 20, channels: 1 as const };
  Deno.writeFileSync(path, await sharp(new Uint8Array(400).fill(shade), { raw }).png().toBuffer());
}

Deno.test("class folders are data: FER2013's names (and aliases) keep its order; other names make their own list", async () => {
  assert.deepEqual(folderClasses(["Sadness", "anger", "happy"]), [...EMOTIONS]);
  assert.deepEqual(folderClasses(["dog", "cat", "Bird"]), ["bird", "cat", "dog"]);
  const root = Deno.makeTempDirSync();
  for (
    const [split, name, shade] of [["train", "cat", 10], ["train", "dog", 200], ["val", "cat", 12], ["val", "dog", 190]]
  ) {
    await png(join(root, String(split), String(name), "a.png"), Number(shade));
  }
  const data = await loadImageFolders(root);
  assert.deepEqual(data.labels, ["cat", "dog"]);
  assert.deepEqual(Array.from(data.splits.Training.labels), [0, 1]);
});

Deno.test("a face folder is read against the model's classes: aliases count, other classes are left out and named", async () => {
  const root = Deno.makeTempDirSync();
  await png(join(root, "anger", "a.png"), 50);
  await png(join(root, "sadness", "b.png"), 60);
  await png(join(root, "sadness", "c.png"), 70);
  await png(join(root, "contempt", "d.png"), 80);
  const folder = await loadFaceFolder(root, EMOTIONS);
  assert.deepEqual(Array.from(folder.set.labels), [0, 4, 4]);
  assert.deepEqual(folder.omitted, [{ name: "contempt", images: 1, why: "the model has no such class" }]);
  const eight = await loadFaceFolder(root, FERPLUS_CLASSES);
  assert.deepEqual(Array.from(eight.set.labels), [0, 7, 4, 4]);
  // An 8-class model on the classes a 7-class one shares: contempt left out on request, the labels unmoved.
  const six = await loadFaceFolder(root, FERPLUS_CLASSES, undefined, undefined, ["contempt"]);
  assert.deepEqual(Array.from(six.set.labels), [0, 4, 4]);
  assert.deepEqual(six.omitted, [{ name: "contempt", images: 1, why: "left out on request" }]);
  await assert.rejects(
    () => loadFaceFolder(root, FERPLUS_CLASSES, undefined, undefined, ["cats"]),
    /no class folder "cats"/,
  );
  await assert.rejects(() => loadFaceFolder(root, ["cat"]), /no images of the model's classes \(cat\)/);
});

Deno.test("a set relabelled to a model's classes leaves out, and names, the classes the model lacks", () => {
  const set = { n: 4, pixels: new Uint8Array(4 * 48 * 48), labels: Uint8Array.from([7, 3, 0, 7]) };
  const { set: kept, omitted } = relabel(set, FERPLUS_CLASSES, EMOTIONS);
  assert.deepEqual(Array.from(kept.labels), [3, 0]);
  assert.deepEqual(omitted, [{ name: "contempt", images: 2 }]);
});
