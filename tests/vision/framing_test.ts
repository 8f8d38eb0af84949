/** The face pipeline's framing matches FER2013's as measured, and the detector finds the counted faces of real photos. */
import { assert } from "../assert.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { measureFraming } from "../../lib/vision/framing.ts";
import { countedPictures, countFaces } from "../../lib/vision/counted_media.ts";
import { detectFaces } from "../../lib/vision/faces.ts";
import { FACE_SETTINGS } from "../../lib/web/face_pipeline.js";

Deno.test("crops are framed as FER2013 frames its faces: FACE_SETTINGS.framing is the measured median", async () => {
  await initBackend();
  const data = await loadDataset(resolveDataPath());
  const framing = await measureFraming(data.splits.PublicTest, 150);
  assert.ok(framing.found >= 0.97 * framing.faces, `the detector found ${framing.found} of ${framing.faces}`);
  const { eyeDistance, eyeX, eyeY } = FACE_SETTINGS.framing;
  assert.ok(Math.abs(framing.eyeDistance[1] - eyeDistance) < 0.02, `eye distance ${framing.eyeDistance}`);
  assert.ok(Math.abs(framing.eyeX[1] - eyeX) < 0.02, `eye midpoint x ${framing.eyeX}`);
  assert.ok(Math.abs(framing.eyeY[1] - eyeY) < 0.02, `eye midpoint y ${framing.eyeY}`);
});

Deno.test("the detector finds every counted face of the real photos, and nothing more", async () => {
  await initBackend();
  const photos = (await countedPictures()).filter((p) => !p.name.includes(".mp4"));
  const count = await countFaces(photos, async (image) => (await detectFaces(image)).length);
  assert.deepEqual([count.found, count.extra], [count.faces, 0], JSON.stringify(count));
  assert.equal(count.faces, 6);
});
