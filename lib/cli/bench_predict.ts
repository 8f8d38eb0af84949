/**
 * Prediction benchmark, side by side with face-api's own expression model:
 * faces/s for classification alone (batch 1 and 64), end-to-end ms per
 * picture (our BlazeFace pipeline; face-api's tiny face detector and
 * expression net): a real 640x480 photo of one face (`photo`), a FER2013
 * face pasted into a 640x480 scene (`scene`) and the 1000x667 group photo
 * of five (`group`; face-api's count of faces beside), and each detector's recall on the
 * real pictures whose faces were counted by eye (counted_media.ts). Each
 * figure is the median of five rounds in which ours and face-api's take
 * turns (`timeSideBySide`). Ours is timed through the public API
 * (`EmotionRecognizer`'s `classify` and `detect`, as an app calls them);
 * with `--onnx`, onnxruntime-web (WASM, one thread) on the model's ONNX
 * export classifies the same crops beside it. Refuses a busy machine, as
 * bench:train does.
 *
 *   deno task bench:predict [--model DIR] [--detector auto|near|far] [--onnx] [--allow-busy]
 */
import * as tf from "@tensorflow/tfjs";
import { parseFlags } from "../util/flags.ts";
import { initBackend } from "../backend/backend.ts";
import { loadModel } from "../model/model_io.ts";
import { exportOnnx } from "../model/onnx.ts";
import { EmotionRecognizer } from "../vision/recognizer.ts";
import * as ort from "onnxruntime-web";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  detectFaces,
  DETECTOR_FLAG,
  type DetectorChoice,
  faceApiInput,
  faceApiOptions,
  loadFaceApi,
} from "../vision/faces.ts";
import { countedPictures, countFaces } from "../vision/counted_media.ts";
import { idleForTimings, timeSideBySide } from "../util/machine.ts";
import { facePixels } from "../data/dataset.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { sceneWithFace } from "../vision/synthetic.ts";
import { defaultModelDir, MODEL_FLAG } from "../vision/predict.ts";
import { displayPath, projectPath } from "../util/paths.ts";
import { fitRgba, readImageFile } from "../data/images.ts";

if (import.meta.main) {
  const { values } = parseFlags(
    { name: "bench:predict", summary: "Prediction speed of this project against face-api's expression net." },
    {
      model: MODEL_FLAG,
      detector: DETECTOR_FLAG,
      onnx: { type: "boolean", help: "also time onnxruntime-web (WASM) on the model's ONNX export, side by side" },
      "allow-busy": { type: "boolean", help: "run on a busy machine, marking the figures machine_busy" },
    },
    Deno.args,
  );
  const { machineBusy } = await idleForTimings(values["allow-busy"]);
  await initBackend();
  const modelDir = defaultModelDir(values.model);
  const detector = values.detector as DetectorChoice;
  const recognizer = await EmotionRecognizer.load({ model: modelDir, detector });
  const faceapi = await loadFaceApi();
  const onnx = values.onnx ? await onnxSession(await exportOnnx(await loadModel(modelDir, { fold: true }))) : undefined;

  const data = await loadDataset(resolveDataPath());
  const faces = Array.from({ length: 64 }, (_, i) => ({
    width: 48,
    height: 48,
    data: facePixels(data.splits.PrivateTest, i),
  }));
  const results: Record<string, number> = {};
  for (const batch of [1, 64]) {
    const crops = faces.slice(0, batch);
    // face-api's net takes a list of RGB face images (it batches them itself at 112x112).
    const rgb = tf.tidy(() =>
      crops.map((c) => tf.image.resizeBilinear(tf.tensor3d(c.data, [48, 48, 1], "float32"), [112, 112]).tile([1, 1, 3]))
    );
    const pixels = new ort.Tensor("float32", Float32Array.from(crops.flatMap((c) => [...c.data])), [batch, 48, 48, 1]);
    const seconds = await timeSideBySide({
      ours: () => recognizer.classify(crops),
      faceapi: () => faceapi.nets.faceExpressionNet.predictExpressions((batch === 1 ? rgb[0] : rgb) as never),
      ...(onnx ? { onnx: () => onnx.run({ pixels }) } : {}),
    });
    results[`ours_faces_s_batch${batch}`] = batch / seconds.ours;
    results[`faceapi_faces_s_batch${batch}`] = batch / seconds.faceapi;
    if (onnx) results[`onnx_faces_s_batch${batch}`] = batch / seconds.onnx;
    tf.dispose(rgb);
  }
  // A real photo (single_face.jpg fitted into 640x480), a FER2013 face pasted into a 640x480 scene, and the group photo.
  const photos = {
    photo: await fitRgba(
      (await readImageFile(projectPath("..", "shared", "media", "single_face.jpg"))).image,
      640,
      480,
    ),
    scene: sceneWithFace(faces[0]).image,
    group: (await readImageFile(projectPath("..", "shared", "media", "multi_face.jpg"))).image,
  };
  const counts: Record<string, number> = { photo: 1, scene: 1, group: 5 };
  const options = faceApiOptions();
  for (const [name, photo] of Object.entries(photos)) {
    const inPhoto = await recognizer.detect(photo);
    if (inPhoto.length !== counts[name]) {
      console.error(
        `the ${name} has ${counts[name]} faces, but the ${detector} detector finds ${inPhoto.length}: not timed`,
      );
      continue;
    }
    const photoTensorForCount = faceApiInput(photo);
    results[`faceapi_faces_in_${name}`] = (await faceapi.detectAllFaces(photoTensorForCount as never, options)).length;
    photoTensorForCount.dispose();
    const photoTensor = faceApiInput(photo);
    const seconds = await timeSideBySide({
      ours: () => recognizer.detect(photo),
      faceapi: async () => await faceapi.detectAllFaces(photoTensor as never, options).withFaceExpressions(),
    });
    photoTensor.dispose();
    results[`ours_ms_per_${name}`] = 1000 * seconds.ours;
    results[`faceapi_ms_per_${name}`] = 1000 * seconds.faceapi;
    results[`ms_ratio_${name}`] = results[`faceapi_ms_per_${name}`] / results[`ours_ms_per_${name}`];
  }
  for (const batch of [1, 64]) {
    results[`ratio_batch${batch}`] = results[`ours_faces_s_batch${batch}`] / results[`faceapi_faces_s_batch${batch}`];
    if (onnx) {
      results[`onnx_vs_ours_batch${batch}`] = results[`onnx_faces_s_batch${batch}`] /
        results[`ours_faces_s_batch${batch}`];
    }
  }
  for (const [k, v] of Object.entries(results)) console.error(`${k.padEnd(28)} ${v.toFixed(2)}`);
  const pictures = await countedPictures();
  const ours = await countFaces(pictures, async (image) => (await detectFaces(image, { detector })).length);
  const theirs = await countFaces(pictures, async (image) => {
    const input = faceApiInput(image);
    const found = await faceapi.detectAllFaces(input as never, options);
    input.dispose();
    return found.length;
  });
  console.error(
    `detector recall on ${ours.faces} counted faces: ours ${ours.found} (+${ours.extra} extra), face-api ${theirs.found} (+${theirs.extra})`,
  );
  console.log(JSON.stringify({
    model: displayPath(modelDir),
    detector,
    ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Math.round(v * 100) / 100])),
    recall: { ours, faceapi: theirs },
    machine_busy: machineBusy,
  }));
}

/** An onnxruntime-web session (WASM, one thread, as our WASM backend) on ONNX bytes. */
async function onnxSession(bytes: Uint8Array): Promise<ort.InferenceSession> {
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = `file://${dirname(fileURLToPath(import.meta.resolve("onnxruntime-web")))}/`;
  return await ort.InferenceSession.create(bytes);
}
