/**
 * Prediction benchmark, side by side with face-api's own expression model:
 * faces/s for classification alone (batch 1 and 64) and end-to-end ms per
 * 640x480 photo with one face (tiny face detector + classifier for both).
 *
 *   deno task bench:predict [--model DIR]
 */
import * as tf from "@tensorflow/tfjs";
import { parseFlags } from "../util/flags.ts";
import { initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import { classifyCrops, loadFaceApi, loadFaceDetector, recognizeEmotions } from "../vision/faces.ts";
import { facePixels } from "../data/dataset.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { sceneWithFace } from "../vision/synthetic.ts";
import { defaultModelDir } from "../vision/predict.ts";

/** Mean seconds of `run` over `repeats` calls after one warm-up call. */
async function seconds(run: () => Promise<unknown>, repeats: number): Promise<number> {
  await run();
  const start = performance.now();
  for (let i = 0; i < repeats; i++) await run();
  return (performance.now() - start) / 1000 / repeats;
}

if (import.meta.main) {
  const { values } = parseFlags(
    { name: "bench:predict", summary: "Prediction speed of this project against face-api's expression net." },
    { model: { type: "string", value: "DIR", help: "the model to time (default outputs/model)" } },
    Deno.args,
  );
  await initBackend();
  const loaded = await loadModel(defaultModelDir(values.model));
  await loadFaceDetector();
  const faceapi = await loadFaceApi();

  const data = await loadDataset(resolveDataPath());
  const faces = Array.from({ length: 64 }, (_, i) => ({
    width: 48,
    height: 48,
    data: facePixels(data.splits.PrivateTest, i),
  }));
  const results: Record<string, number> = {};
  for (const batch of [1, 64]) {
    const crops = faces.slice(0, batch);
    results[`ours_faces_s_batch${batch}`] = batch / await seconds(() => classifyCrops(loaded, crops), 5);
    // face-api's net takes a list of RGB face images (it batches them itself at 112x112).
    const rgb = tf.tidy(() =>
      crops.map((c) => tf.image.resizeBilinear(tf.tensor3d(c.data, [48, 48, 1], "float32"), [112, 112]).tile([1, 1, 3]))
    );
    results[`faceapi_faces_s_batch${batch}`] = batch /
      await seconds(() => faceapi.nets.faceExpressionNet.predictExpressions((batch === 1 ? rgb[0] : rgb) as never), 5);
    tf.dispose(rgb);
  }
  const photo = sceneWithFace(faces[0]).image;
  results.ours_ms_per_photo = 1000 * await seconds(() => recognizeEmotions(loaded, photo), 5);
  const photoTensor = tf.tensor3d(photo.data, [480, 640, 4], "int32").slice([0, 0, 0], [480, 640, 3]);
  const options = new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.4 });
  results.faceapi_ms_per_photo = 1000 *
    await seconds(async () => await faceapi.detectAllFaces(photoTensor as never, options).withFaceExpressions(), 5);
  for (const [k, v] of Object.entries(results)) console.error(`${k.padEnd(28)} ${v.toFixed(1)}`);
  console.log(
    JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(v * 10) / 10]))),
  );
}
