/**
 * The in-browser page, driven in Debian's Chromium with playwright-core:
 * it loads the shipped model and the face detector, finds the face in a
 * test photo and draws its label and probability chart, and explains
 * non-images and face-less photos. Its screenshot is the README's. The
 * page and `recognizeEmotions` in Deno must agree on the same photo (one
 * face pipeline, lib/core/face_pipeline.js), and so must their saliency
 * maps (one lib/core/saliency.js). Chromium runs the WASM backend, and,
 * asked with ?backend=webgpu, WebGPU on its bundled SwiftShader. The
 * explorer page plots a test sample's features and shows the face under
 * the pointer.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { saliencyMaps } from "../../lib/eval/saliency.ts";
import { faceCrop, modelInput, toGray } from "../../lib/core/face_pipeline.js";
import { facePixels, stratifiedSample } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { explorerData } from "../../lib/eval/explorer.ts";
import { decodeImage, encodeRgbaPng } from "../../lib/data/images.ts";
import { sceneWithFace } from "../../lib/vision/synthetic.ts";
import { detectFaces, type FaceResult, recognizeEmotions } from "../../lib/vision/faces.ts";
import { loadModel } from "../../lib/model/model_io.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { startServer } from "../../lib/web/server.ts";
import { buildBrowser } from "../../lib/web/build.ts";
import { readmeSnippet } from "../readme_snippets.ts";
import { projectPath } from "../../lib/util/paths.ts";

await buildBrowser(); // the page loads the browser build, as `deno task serve` makes it

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];

/** A 640x480 photo with a real FER2013 face scaled to 200 px. */
async function scenePng(): Promise<Uint8Array> {
  const data = await loadDataset(resolveDataPath());
  return encodeRgbaPng(sceneWithFace({ width: 48, height: 48, data: facePixels(data.splits.PrivateTest, 3) }).image);
}

/**
 * Serve `modelDir`, open a page in Chromium launched with `args`, and run
 * `steps` with it, the server's base URL and the page's errors so far; the
 * page must raise none. Browser and server close afterwards.
 */
async function withPage(
  modelDir: string,
  args: string[],
  steps: (page: Page, base: string, errors: string[]) => Promise<void>,
): Promise<void> {
  const server = startServer({ port: 0, modelDir });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await steps(page, `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`, errors);
    assert.deepEqual(errors, [], "errors on the page");
  } finally {
    await browser.close();
    await server.shutdown();
  }
}

/** The page's faces (body[data-results]) have Deno's boxes and, within 1e-3, its probabilities. */
function assertSameFaces(inPage: FaceResult[], inDeno: FaceResult[], where: string): void {
  assert.equal(inPage.length, inDeno.length, `faces found ${where} and in Deno`);
  inDeno.forEach((face, i) => {
    assert.deepEqual(inPage[i].box, face.box, `face ${i} box`);
    assert.deepEqual(inPage[i].eyes, face.eyes, `face ${i} eyes`);
    for (const emotion of EMOTIONS) {
      const [a, b] = [inPage[i].probabilities[emotion], face.probabilities[emotion]];
      assert.ok(Math.abs(a - b) <= 1e-3, `face ${i} ${emotion}: ${where} ${a}, Deno ${b}`);
    }
  });
}

Deno.test({
  name:
    "the browser page recognizes faces in photos (the group photo with its default detector), and explains non-images and face-less photos",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const dir = Deno.makeTempDirSync();
    const photos = {
      scene: join(dir, "scene.png"),
      text: join(dir, "notes.txt"),
      blank: join(dir, "blank.png"),
    };
    Deno.writeFileSync(photos.scene, await scenePng());
    Deno.writeTextFileSync(photos.text, "not a photo");
    Deno.writeFileSync(
      photos.blank,
      await encodeRgbaPng({ width: 64, height: 64, data: new Uint8Array(64 * 64 * 4).fill(200) }),
    );

    await withPage(projectPath("outputs", "model"), FLAGS, async (page, base, errors) => {
      await page.goto(base);
      await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });

      await page.setInputFiles("#file", photos.scene);
      await page.waitForSelector("body[data-faces]", { timeout: 60_000 });
      // The same photo through the Deno pipeline: same box, same probabilities.
      const inPage = JSON.parse(await page.getAttribute("body", "data-results") ?? "[]");
      const loaded = await loadModel(projectPath("outputs", "model"));
      const inDeno = await recognizeEmotions(loaded, await decodeImage(Deno.readFileSync(photos.scene), "scene.png"));
      assertSameFaces(inPage, inDeno, "the page");
      const labels = await page.$$eval(".face .emotion", (els) => els.map((e) => e.textContent ?? ""));
      assert.ok(labels.length >= 1, "one face card");
      assert.match(labels[0], new RegExp(`^(${EMOTIONS.join("|")}) \\d+%$`));
      const bars = await page.$$eval(".face .chart svg .mark-rect path", (els) => els.length);
      assert.equal(bars, 7, "a bar per emotion");
      assert.match(await page.textContent("#status") ?? "", /1 face found/);
      const shots = projectPath("outputs", "tests");
      Deno.mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, "page.png"), fullPage: true });

      // Where the model looks: the page's SmoothGrad map of the face is the one Deno computes on the same crop.
      await page.check("#saliency");
      await page.waitForSelector("body[data-saliency], body[data-state=error]", { timeout: 120_000 });
      assert.equal(
        await page.getAttribute("body", "data-saliency"),
        "1",
        `${await page.textContent("#status")} ${errors.join("; ")}`,
      );
      const inPageMap = await page.evaluate(() => (globalThis as unknown as { saliencyMaps: number[] }).saliencyMaps);
      const size = loaded.metadata.inputSize;
      const scene = await decodeImage(Deno.readFileSync(photos.scene), "scene.png");
      const crop = faceCrop(toGray(scene), (await detectFaces(scene))[0], size);
      const x = tf.tensor4d(modelInput([crop], loaded.metadata.normalization), [1, size, size, 1]);
      const predicted = EMOTIONS.indexOf(inPage[0].emotion);
      const inDenoMap = await saliencyMaps(loaded.model, x, [predicted]);
      x.dispose();
      assert.equal(inPageMap.length, inDenoMap.length);
      const gap = inPageMap.reduce((sum, v, i) => sum + Math.abs(v - inDenoMap[i]), 0) / inPageMap.length;
      assert.ok(gap < 0.01, `page and Deno saliency differ by ${gap} on average`);
      await page.screenshot({ path: join(shots, "page-saliency.png"), fullPage: true });
      await page.uncheck("#saliency");

      await page.setInputFiles("#file", photos.text);
      await page.waitForSelector("body[data-state=error]");
      assert.match(await page.textContent("#status") ?? "", /notes\.txt" is not an image/);

      await page.setInputFiles("#file", photos.blank);
      await page.waitForSelector("#status:has-text('No face found')");

      // The page's default detector finds the group photo's five faces, as Deno's does.
      const group = projectPath("..", "shared", "media", "multi_face.jpg");
      await page.setInputFiles("#file", group);
      await page.waitForSelector("#status:has-text('5 faces found')", { timeout: 60_000 });
      const groupInDeno = await recognizeEmotions(loaded, await decodeImage(Deno.readFileSync(group), group));
      assertSameFaces(JSON.parse(await page.getAttribute("body", "data-results") ?? "[]"), groupInDeno, "auto");
    });
  },
});

Deno.test("the page server answers only GET and HEAD, and a malformed %-escape with 400", async () => {
  const server = startServer({ port: 0, modelDir: projectPath("outputs", "model") });
  const base = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  try {
    const status = async (path: string, method = "GET") => {
      const response = await fetch(`${base}${path}`, { method });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await status("/"), 200);
    assert.equal(await status("/", "HEAD"), 200);
    assert.equal(await status("/", "POST"), 405);
    assert.equal(await status("/model/model.json", "DELETE"), 405);
    assert.equal(await status("/model/%E0%A4%A"), 400);
    assert.equal(await status("/model/../../deno.json"), 404);
  } finally {
    await server.shutdown();
  }
});

Deno.test({
  name: "the explorer page plots the test faces and shows the face and probabilities under the pointer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const dir = Deno.makeTempDirSync();
    const loaded = await loadModel(projectPath("outputs", "model"));
    const set = (await loadDataset(resolveDataPath())).splits.PrivateTest;
    const rows = stratifiedSample(set.labels, 70, 1);
    const data = await explorerData(loaded.model, set, rows, { split: "PrivateTest", labels: EMOTIONS });
    Deno.writeTextFileSync(join(dir, "explorer.json"), JSON.stringify(data));
    await withPage(dir, FLAGS, async (page, base) => {
      await page.goto(`${base}explorer`);
      await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
      assert.equal(await page.$$eval(".scatterlayer .point", (els) => els.length), rows.length, "a marker per face");
      assert.equal(await page.$$eval(".legendtext", (els) => els.length), EMOTIONS.length, "a legend entry per class");
      // Hover over one marker: its face and its seven probabilities appear.
      const box = await page.locator(".scatterlayer .point").nth(5).boundingBox();
      assert.ok(box, "the marker is on screen");
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.waitForSelector("body[data-shown]", { timeout: 10_000 });
      const shown = Number(await page.getAttribute("body", "data-shown"));
      const point = data.points.find((p) => p.row === shown);
      assert.ok(point, `the shown row ${shown} is one of the plotted faces`);
      assert.equal(
        await page.$eval("#face", (img) => (img as unknown as { naturalWidth: number }).naturalWidth),
        48,
        "the face is drawn",
      );
      assert.equal(await page.$$eval("#bars .bar", (els) => els.length), EMOTIONS.length);
      assert.match(await page.textContent("#verdict") ?? "", new RegExp(`row ${shown}: ${EMOTIONS[point.label]}`));
      await page.screenshot({ path: join(projectPath("outputs", "tests"), "explorer.png"), fullPage: true });
    });
    await withPage(Deno.makeTempDirSync(), FLAGS, async (page, base) => {
      await page.goto(`${base}explorer`);
      await page.waitForSelector("body[data-state=error]");
      assert.match(await page.textContent("#status") ?? "", /deno task explore/);
    });
  },
});

/** Chromium with WebGPU on its bundled SwiftShader (Vulkan on the CPU): a software adapter, used when asked for. */
const WEBGPU_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--use-webgpu-adapter=swiftshader",
  "--disable-background-networking",
];

Deno.test({
  name: "on WebGPU (SwiftShader) the page finds the same face with the same probabilities as Deno on WASM",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const scene = join(Deno.makeTempDirSync(), "scene.png");
    Deno.writeFileSync(scene, await scenePng());
    await withPage(projectPath("outputs", "model"), WEBGPU_FLAGS, async (page, base) => {
      // Without ?backend=webgpu a software adapter is passed over for WASM, as `--backend auto` does in Deno.
      await page.goto(base);
      await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
      assert.equal(await page.getAttribute("body", "data-backend"), "wasm");
      await page.goto(`${base}?backend=webgpu`);
      await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
      assert.equal(await page.getAttribute("body", "data-backend"), "webgpu", await page.textContent("#status") ?? "");
      await page.setInputFiles("#file", scene);
      await page.waitForSelector("body[data-faces]", { timeout: 120_000 });
      const inPage = JSON.parse(await page.getAttribute("body", "data-results") ?? "[]");
      const loaded = await loadModel(projectPath("outputs", "model"));
      const inDeno = await recognizeEmotions(loaded, await decodeImage(Deno.readFileSync(scene), "scene.png"));
      assertSameFaces(inPage, inDeno, "the WebGPU page");
    });
  },
});

/**
 * The page live on a fake camera playing `file` (a .y4m), once its log reaches `seconds`; then `steps`.
 */
async function withCamera(file: string, seconds: number, steps: (page: Page) => Promise<void>): Promise<void> {
  const args = [...FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    .concat([`--use-file-for-fake-video-capture=${file}`]);
  await withPage(projectPath("outputs", "model"), args, async (page, base) => {
    await page.goto(base);
    await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
    await page.click("#camera");
    await page.waitForSelector("body[data-live=on]", { timeout: 30_000 });
    await page.waitForFunction(
      (until) => ((globalThis as unknown as { liveLog: { time: number }[] }).liveLog.at(-1)?.time ?? 0) >= until,
      seconds,
      { timeout: 120_000 },
    );
    await steps(page);
  });
}

/**
 * A 640x480, 10 frames/s .y4m (Chromium's fake camera) of `faces` held 1.5 s each, alternately on the left and the
 * right of a striped scene, drifting a few pixels a frame.
 */
async function cameraFile(faces: Uint8Array[], path: string): Promise<void> {
  const child = new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgba", "-s", "640x480", "-r", "10", "-i", "pipe:0"]
      .concat(["-pix_fmt", "yuv420p", path]),
    stdin: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  for (const [k, face] of faces.entries()) {
    for (let f = 0; f < 15; f++) {
      const corner: [number, number] = [(k % 2 ? 380 : 60) + 2 * f, 120 + (f % 5)];
      await writer.write(sceneWithFace({ width: 48, height: 48, data: face }, 200, corner).image.data);
    }
  }
  await writer.close();
  assert.ok((await child.status).success, "ffmpeg wrote the camera file");
}

Deno.test({
  name: "the live view on a fake camera: a face keeps its track while it stays, and verdicts agree as the model does",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await initBackend();
    const data = await loadDataset(resolveDataPath());
    const test = data.splits.PrivateTest;
    // The first PrivateTest face of each class but disgust (its few faces), as the camera's six faces.
    const rows = [0, 2, 3, 4, 5, 6].map((c) => test.labels.indexOf(c));
    const faces = rows.map((row) => facePixels(test, row));
    const file = join(Deno.makeTempDirSync(), "camera.y4m");
    await cameraFile(faces, file);
    // What the model says of each face in the same scene, through the Deno pipeline.
    const loaded = await loadModel(projectPath("outputs", "model"));
    const inDeno = await Promise.all(faces.map(async (face) => {
      const [found] = await recognizeEmotions(loaded, sceneWithFace({ width: 48, height: 48, data: face }).image);
      return found?.emotion;
    }));
    const modelRight = inDeno.filter((e, k) => e === EMOTIONS[test.labels[rows[k]]]).length;
    // Until the first pass of the camera file (9 s) has been seen (and the second's first face begun).
    await withCamera(file, 9.5, async (page) => {
      const log = await page.evaluate(() =>
        (globalThis as unknown as {
          liveLog: { time: number; faces: { track: number; emotion: string; box: number[] }[] }[];
        })
          .liveLog
      );
      assert.match(await page.textContent("#status") ?? "", /Live on wasm: [\d.]+ frames\/s, \d+ ms per frame/);
      assert.equal(await page.getAttribute("body", "data-timeline-tracks") !== "0", true, "the timeline is drawn");
      await page.waitForFunction(() =>
        ((globalThis as unknown as { liveLog: { faces: unknown[] }[] }).liveLog.at(-1)?.faces.length ?? 0) > 0
      );
      const shots = projectPath("outputs", "tests");
      Deno.mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, "page-live.png"), fullPage: true });
      await page.click("#stop");
      // The tracks of the camera file's first pass (9 s) in order of appearance are its faces in order, alternately
      // left and right: one track per face, none split. Each track's verdict: its commonest smoothed answer after
      // the smoothing has caught up (its first third left out).
      const tracks = new Map<number, { x: number; emotions: string[] }>();
      for (const l of log.filter((l) => l.time < 9)) {
        for (const f of l.faces) {
          const t = tracks.get(f.track) ?? { x: f.box[0], emotions: [] };
          t.emotions.push(f.emotion);
          tracks.set(f.track, t);
        }
      }
      const followed = [...tracks.values()].filter((t) => t.emotions.length >= 4);
      const sides = followed.map((t) => (t.x < 320 ? "left" : "right"));
      const first = sides[0] === "left" ? 0 : 1; // the camera's first second can be lost to its start
      const expected = sides.map((_, k) => ((k + first) % 2 ? "right" : "left"));
      assert.deepEqual(sides, expected, "one track per face, in order (a split face would repeat a side)");
      assert.ok(followed.length >= 5 - first && first + followed.length <= 6, `${followed.length} faces followed`);
      const verdicts = followed.map(({ emotions }) => {
        const counts = new Map<string, number>();
        for (const e of emotions.slice(Math.floor(emotions.length / 3))) counts.set(e, (counts.get(e) ?? 0) + 1);
        return [...counts].sort((a, b) => b[1] - a[1])[0][0];
      });
      const pageRight = verdicts.filter((v, k) => v === EMOTIONS[test.labels[rows[k + first]]]).length;
      // Tolerance: one face fewer than the model gets right on the same faces (the camera's YUV 4:2:0 frames differ
      // from the scene Deno sees), less any face the page did not get to follow.
      assert.ok(
        pageRight >= modelRight - 1 - (6 - followed.length),
        `page ${pageRight} of ${followed.length} (${verdicts}), model ${modelRight} of 6 (${inDeno})`,
      );
    });
  },
});

Deno.test({
  name: "the live view on a real video as the camera: a face on at least 95% of frames, and the timeline drawn",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const video = projectPath("..", "shared", "media", "WolfgangLanger_Pexels.mp4");
    const file = join(Deno.makeTempDirSync(), "camera.y4m");
    const convert = await new Deno.Command("ffmpeg", {
      args: ["-v", "error", "-y", "-i", video, "-pix_fmt", "yuv420p", file],
    })
      .output();
    assert.ok(convert.success, "ffmpeg made the camera file");
    // The video's 19.7 s, once through.
    await withCamera(file, 19.5, async (page) => {
      const shots = projectPath("outputs", "tests");
      Deno.mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, "page-live-video.png"), fullPage: true });
      const log = await page.evaluate(() =>
        (globalThis as unknown as { liveLog: { time: number; faces: unknown[] }[] }).liveLog
      );
      await page.click("#stop");
      const frames = log.filter((l) => l.time < 19.5), withFace = frames.filter((l) => l.faces.length > 0).length;
      assert.ok(frames.length >= 40, `${frames.length} frames analysed`);
      assert.ok(withFace >= 0.95 * frames.length, `a face on ${withFace} of ${frames.length} frames`);
      assert.notEqual(await page.getAttribute("body", "data-timeline-tracks"), "0", "the timeline is drawn");
      console.log(`real video as the camera: a face on ${withFace} of ${frames.length} frames`);
    });
  },
});

Deno.test({
  name:
    "the example page (examples/browser/, 20 lines) loads the browser build and finds the group photo's faces as Deno",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const files = ["index.html", "main.js"].map((f) => Deno.readTextFileSync(projectPath("examples", "browser", f)));
    assert.ok(files.reduce((n, text) => n + text.trim().split("\n").length, 0) <= 20, "20 lines at most");
    assert.equal(files[1], readmeSnippet("after tfjs's two", "js"), "the example's module is README's browser snippet");
    await initBackend();
    const group = projectPath("..", "shared", "media", "multi_face.jpg");
    const loaded = await loadModel(projectPath("outputs", "model"), { fold: true });
    const inDeno = await recognizeEmotions(loaded, await decodeImage(Deno.readFileSync(group), group));
    loaded.model.dispose();
    await withPage(projectPath("outputs", "model"), FLAGS, async (page, base) => {
      await page.goto(`${base}examples/browser/index.html`);
      await page.waitForSelector("body[data-faces]", { timeout: 60_000 });
      assertSameFaces(JSON.parse(await page.getAttribute("body", "data-faces") ?? "[]"), inDeno, "the example page");
    });
  },
});
