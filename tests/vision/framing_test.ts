/** The face pipeline's framing matches FER2013's as measured, and the detector finds the counted faces of real photos. */
import { assert } from "../assert.ts";
import { initBackend } from "../../lib/backend/backend.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { measureFraming } from "../../lib/vision/framing.ts";
import { countedPictures, countFaces } from "../../lib/vision/counted_media.ts";
import { detectFaces } from "../../lib/vision/faces.ts";
import { FACE_SETTINGS } from "../../lib/core/face_pipeline.js";

Deno.test("crops are framed as FER2013 frames its faces: FACE_SETTINGS.framing is the measured median", async () => {
  await initBackend();
  const data = await loadDataset(resolveDataPath());
  const { eyeDistance, eyeX, eyeY } = FACE_SETTINGS.framing;
  // far measures the framing; near, which finds fewer of these small faces, places their eyes within 0.025 of it.
  for (const [detector, found, within] of [["far", 0.97, 0.02], ["near", 0.85, 0.025]] as const) {
    const framing = await measureFraming(data.splits.PublicTest, 150, detector);
    const said = `${detector}: ${JSON.stringify(framing)}`;
    assert.ok(framing.found >= found * framing.faces, said);
    assert.ok(Math.abs(framing.eyeDistance[1] - eyeDistance) < within, said);
    assert.ok(Math.abs(framing.eyeX[1] - eyeX) < within, said);
    assert.ok(Math.abs(framing.eyeY[1] - eyeY) < within, said);
  }
});

Deno.test("auto (the default) and far find every counted face of the real photos, near all but two", async () => {
  await initBackend();
  const photos = (await countedPictures()).filter((p) => !p.name.includes(".mp4"));
  assert.equal(photos.reduce((sum, p) => sum + p.faces, 0), 6);
  for (const [detector, least] of [["auto", 6], ["far", 6], ["near", 4]] as const) {
    const count = await countFaces(photos, async (image) => (await detectFaces(image, { detector })).length);
    assert.ok(count.found >= least && count.extra === 0, `${detector}: ${JSON.stringify(count)}`);
  }
});
