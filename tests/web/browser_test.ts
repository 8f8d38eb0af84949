/**
 * The in-browser page, driven in Debian's Chromium with playwright-core:
 * it loads the shipped model and the face detector, finds the face in a
 * test photo and draws its label and probability chart, and explains
 * non-images and face-less photos. Its screenshot is the README's. The
 * page and `recognizeEmotions` in Deno must agree on the same photo (one
 * face pipeline, lib/web/face_pipeline.js), and so must their saliency
 * maps (one lib/web/saliency.js). Chromium runs the WASM backend, and,
 * asked with ?backend=webgpu, WebGPU on its bundled SwiftShader. The
 * explorer page plots a test sample's features and shows the face under
 * the pointer.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { initBackend, tf } from "../../lib/backend/backend.ts";
import { saliencyMaps } from "../../lib/eval/saliency.ts";
import { cropFace, modelInput, toGray } from "../../lib/web/face_pipeline.js";
import { facePixels, stratifiedSample } from "../../lib/data/dataset.ts";
import { loadDataset, resolveDataPath } from "../../lib/data/load.ts";
import { explorerData } from "../../lib/eval/explorer.ts";
import { decodeImage, encodeRgbaPng } from "../../lib/data/images.ts";
import { sceneWithFace } from "../../lib/vision/synthetic.ts";
import { type FaceResult, recognizeEmotions } from "../../lib/vision/faces.ts";
import { loadModel } from "../../lib/model/model_io.ts";
import { EMOTIONS } from "../../lib/data/labels.ts";
import { startServer } from "../../lib/web/server.ts";
import { projectPath } from "../../lib/util/paths.ts";

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
    for (const emotion of EMOTIONS) {
      const [a, b] = [inPage[i].probabilities[emotion], face.probabilities[emotion]];
      assert.ok(Math.abs(a - b) <= 1e-3, `face ${i} ${emotion}: ${where} ${a}, Deno ${b}`);
    }
  });
}

Deno.test({
  name: "the browser page recognizes a face in a photo, and explains non-images and face-less photos",
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
      const crop = cropFace(
        toGray(await decodeImage(Deno.readFileSync(photos.scene), "scene.png")),
        inPage[0].box,
        size,
      );
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
