/** Video: the shared tracker and smoother, and `deno task predict VIDEO` through ffmpeg on a real clip. */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { FaceTracker, smoothProbabilities } from "../../lib/web/tracker.js";
import { iou } from "../../lib/web/face_pipeline.js";
import { turningPoints } from "../../lib/vision/video.ts";
import { PROJECT_ROOT, projectPath } from "../../lib/util/paths.ts";

const CLIP = projectPath("..", "shared", "media", "single_face.mp4");

Deno.test("IoU of boxes; the tracker keeps a face's id while it moves a little, and starts a new one elsewhere", () => {
  assert.equal(iou([0, 0, 10, 10], [0, 0, 10, 10]), 1);
  assert.equal(iou([0, 0, 10, 10], [20, 0, 10, 10]), 0);
  assert.ok(Math.abs(iou([0, 0, 10, 10], [5, 0, 10, 10]) - 50 / 150) < 1e-9);
  const tracker = new FaceTracker({ maxMissingSeconds: 1 });
  assert.deepEqual(tracker.assign(0, [[100, 100, 50, 50], [300, 100, 50, 50]]), [1, 2]);
  assert.deepEqual(tracker.assign(0.2, [[305, 102, 50, 50], [104, 98, 50, 50]]), [2, 1], "matched by overlap");
  assert.deepEqual(tracker.assign(0.4, [[500, 300, 40, 40]]), [3], "a new face gets a new id");
  assert.deepEqual(tracker.assign(2, [[106, 100, 50, 50]]), [4], "a face gone for over a second comes back new");
});

Deno.test("smoothing moves toward each frame's answer by 1 - exp(-dt / time constant), whatever the frame rate", () => {
  const step = smoothProbabilities([1, 0], [0, 1], 0.5, 0.5);
  assert.ok(Math.abs(step[1] - (1 - Math.exp(-1))) < 1e-9);
  const fine = [0, 0.1, 0.2, 0.3, 0.4, 0.5].slice(1).reduce((p) => smoothProbabilities(p, [0, 1], 0.1, 0.5), [1, 0]);
  assert.ok(Math.abs(fine[1] - step[1]) < 1e-9, "five steps of 0.1 s equal one of 0.5 s");
  assert.deepEqual(smoothProbabilities([1, 0], [0, 1], 0.5, 0), [0, 1], "a time constant of 0 does not smooth");
  const tracker = new FaceTracker({ timeConstant: 0.5 });
  const [id] = tracker.assign(0, [[0, 0, 10, 10]]);
  assert.deepEqual(tracker.smooth(id, 0, [1, 0]), [1, 0]);
  assert.ok(Math.abs(tracker.smooth(id, 0.5, [0, 1])[1] - (1 - Math.exp(-1))) < 1e-9);
});

/** Run `deno task predict` on a video; its status, JSON lines and stderr. */
async function predictVideo(args: string[], env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", projectPath("lib", "cli", "predict.ts"), ...args],
    cwd: PROJECT_ROOT,
    env,
  }).output();
  const lines = new TextDecoder().decode(stdout).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  return { code, lines, stderr: new TextDecoder().decode(stderr) };
}

Deno.test({
  name: "predict on a video: a line per sampled frame with its time, tracked faces, an annotated mp4 and a timeline",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const out = Deno.makeTempDirSync();
    const annotated = join(out, "a.mp4"), timeline = join(out, "t.png");
    const { code, lines, stderr } = await predictVideo([
      CLIP,
      "--fps",
      "5",
      "--annotate",
      annotated,
      "--timeline",
      timeline,
    ]);
    assert.equal(code, 0, stderr);
    assert.equal(lines.length, 12, "2.4 s at 5 frames a second");
    assert.deepEqual(lines.slice(0, 3).map((l) => l.time), [0, 0.2, 0.4]);
    const withFace = lines.filter((l) => l.faces.length === 1);
    assert.ok(withFace.length >= 11, `a face on ${withFace.length} of 12 frames`);
    assert.ok(withFace.every((l) => l.faces[0].track === withFace[0].faces[0].track), "one face, one track");
    const face = withFace[0].faces[0];
    assert.deepEqual(Object.keys(face).sort(), [
      "box",
      "emotion",
      "eyes",
      "probabilities",
      "score",
      "smoothed",
      "track",
    ]);
    const probe = await new Deno.Command("ffprobe", {
      args: [
        "-v",
        "error",
        "-count_frames",
        "-show_entries",
        "stream=nb_read_frames,width,height",
        "-of",
        "csv=p=0",
        annotated,
      ],
    }).output();
    assert.equal(new TextDecoder().decode(probe.stdout).trim(), "640,360,12", "a playable video of the 12 frames");
    assert.ok(Deno.statSync(timeline).size > 10_000);
  },
});

Deno.test({
  name: "predict on a video without ffmpeg, or on a file that is not a video, says so in one line",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const noFfmpeg = await predictVideo([CLIP], { PATH: "/nonexistent" });
    assert.equal(noFfmpeg.code, 1);
    assert.match(noFfmpeg.lines[0].error, /ffmpeg not found: videos need Debian's ffmpeg \(apt-get install ffmpeg\)/);
    const fake = join(Deno.makeTempDirSync(), "fake.mp4");
    Deno.writeTextFileSync(fake, "not a video");
    const bad = await predictVideo([fake]);
    assert.equal(bad.code, 1);
    assert.match(bad.lines[0].error, /fake\.mp4: not a readable video/);
  },
});

Deno.test("live policy: detect every few frames while faces are followed, every frame while none is", () => {
  const tracker = new FaceTracker<{ box: number[]; score: number }>({ detectEvery: 3 });
  assert.ok(tracker.shouldDetect(0));
  assert.deepEqual(tracker.detected(0, []), []);
  assert.ok(tracker.shouldDetect(1), "no face followed: detect again");
  assert.deepEqual(tracker.detected(0.1, [{ box: [10, 10, 50, 50], score: 0.9 }]), [1]);
  assert.ok(!tracker.shouldDetect(2));
  assert.deepEqual(tracker.followed(), [{ id: 1, box: [10, 10, 50, 50], score: 0.9 }]);
  assert.ok(tracker.shouldDetect(3));
});

Deno.test("turning points: each emotion a face changes to and keeps for 0.6 s; blips and fleeting faces are not", () => {
  const frame = (time: number, emotion: string, track = 1) => ({
    path: "v.mp4",
    frame: Math.round(time * 5),
    time,
    width: 64,
    height: 64,
    error: null,
    faces: [{
      box: [0, 0, 10, 10] as [number, number, number, number],
      score: 1,
      emotion,
      probabilities: {},
      track,
      smoothed: { happy: emotion === "happy" ? 0.9 : 0.1, sad: emotion === "sad" ? 0.9 : 0.1 },
    }],
  });
  const lines = [
    ...[0, 0.2, 0.4, 0.6].map((t) => frame(t, "happy")),
    frame(0.8, "sad"), // a blip: sad for 0.2 s
    frame(1.0, "happy"),
    ...[1.2, 1.4, 1.6, 1.8].map((t) => frame(t, "sad")),
    frame(2.0, "happy", 2), // another face, seen once
  ];
  assert.deepEqual(turningPoints(lines).map((p) => [p.time, p.emotion]), [[0, "happy"], [1.2, "sad"]]);
});
