/** Video: the shared tracker and smoother, and `deno task predict VIDEO` through ffmpeg on a real clip. */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { FaceTracker, smoothProbabilities } from "../../lib/core/tracker.js";
import { iou } from "../../lib/core/face_pipeline.js";
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
  // Detections 1.5 s apart (a slow device, a sparsely sampled video): a face that stays keeps its id; one that a
  // detection missed ends at the next.
  const slow = new FaceTracker({ maxMissingSeconds: 1 });
  assert.deepEqual(slow.assign(0, [[100, 100, 50, 50], [300, 100, 50, 50]]), [1, 2]);
  assert.deepEqual(slow.assign(1.5, [[103, 100, 50, 50]]), [1], "the face that stayed keeps its id");
  assert.deepEqual(slow.assign(3, [[106, 100, 50, 50], [300, 100, 50, 50]]), [1, 3], "the one missed comes back new");
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

/** Run ffmpeg with `args` (a fixture made from its test sources or the shared clip), failing the test on error. */
async function ffmpeg(...args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("ffmpeg", { args: ["-v", "error", "-y", ...args] }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
}

/** A video's duration in seconds and its frame count, from ffprobe. */
async function durationAndFrames(path: string): Promise<[number, number]> {
  const { stdout } = await new Deno.Command("ffprobe", {
    args: [
      "-v",
      "error",
      "-count_frames",
      "-show_entries",
      "stream=nb_read_frames:format=duration",
      "-of",
      "json",
      path,
    ],
  }).output();
  const probe = JSON.parse(new TextDecoder().decode(stdout));
  return [Number(probe.format.duration), Number(probe.streams[0].nb_read_frames)];
}

Deno.test({
  name: "a video is never its own output: --annotate on the input (or through a link) is refused before any work",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync();
    const clip = join(dir, "clip.mp4"), link = join(dir, "link.mp4");
    await ffmpeg("-i", CLIP, "-t", "1", "-c", "copy", clip);
    Deno.symlinkSync(clip, link);
    const before = Deno.statSync(clip).size;
    for (const [input, out] of [[clip, clip], [clip, link], [link, clip], [link, join(dir, ".", "clip.mp4")]]) {
      const { code, lines, stderr } = await predictVideo([input, "--annotate", out]);
      assert.equal(code, 2, "refused before any work");
      assert.equal(lines.length, 0);
      assert.match(stderr, /--annotate .*\.mp4: that is the input video; give another file/);
    }
    assert.equal(Deno.statSync(clip).size, before, "the input is untouched");
  },
});

Deno.test({
  name: "videos: rotation tags honoured, the source's timing kept, large frames scaled, truncation and FIFOs reported",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = Deno.makeTempDirSync();
    // A phone's portrait clip: frames stored turned, with a rotation tag; decoded upright, the face is found.
    const sideways = join(dir, "sideways.mp4"), rotated = join(dir, "rotated.mp4");
    await ffmpeg("-i", CLIP, "-t", "2", "-vf", "transpose=2", "-c:v", "libx264", "-preset", "ultrafast", sideways);
    await ffmpeg("-i", sideways, "-c", "copy", "-metadata:s:v:0", "rotate=90", rotated);
    const turned = await predictVideo([rotated, "--fps", "5"]);
    assert.equal(turned.code, 0, turned.stderr);
    const withFace = turned.lines.filter((l) => l.faces.length === 1).length;
    assert.ok(withFace >= 0.9 * turned.lines.length, `a face on ${withFace} of ${turned.lines.length} frames`);
    assert.deepEqual([turned.lines[0].width, turned.lines[0].height], [640, 360], "the upright size");

    // The annotated video lasts as long as the source, at the rate analysed; --fps above the source's repeats nothing.
    const source = join(dir, "thirty.mp4"), annotated = join(dir, "annotated.mp4");
    await ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2", "-c:v", "libx264", source);
    const fast = await predictVideo([source, "--fps", "60", "--annotate", annotated]);
    assert.equal(fast.code, 0, fast.stderr);
    assert.equal(fast.lines.length, 60, "2 s at the source's 30 frames a second, none repeated");
    const [seconds, frames] = await durationAndFrames(annotated);
    assert.ok(Math.abs(seconds - 2) < 0.1, `the annotated video lasts ${seconds} s`);
    assert.equal(frames, 60);

    // A 2 s 4K clip at --fps 5: the command, start included, within 30 s (a 4K frame costs about a photo).
    const uhd = join(dir, "uhd.mp4");
    await ffmpeg(
      "-f",
      "lavfi",
      "-i",
      "testsrc=size=3840x2160:rate=30",
      "-t",
      "2",
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      uhd,
    );
    const uhdStarted = performance.now();
    const fourK = await predictVideo([uhd, "--fps", "5"]);
    assert.equal(fourK.code, 0, fourK.stderr);
    assert.equal(fourK.lines.length, 10);
    assert.ok(performance.now() - uhdStarted < 30_000, `${performance.now() - uhdStarted} ms`);

    // An 8000x8000 frame is scaled by ffmpeg to 2,048 px: it finishes, and the boxes would be in the file's pixels.
    const huge = join(dir, "huge.mkv");
    await ffmpeg("-f", "lavfi", "-i", "testsrc=size=8000x8000:rate=1", "-t", "1", "-c:v", "mjpeg", "-q:v", "20", huge);
    const started = performance.now();
    const big = await predictVideo([huge]);
    assert.equal(big.code, 0, big.stderr);
    assert.deepEqual([big.lines[0].width, big.lines[0].height], [8000, 8000]);
    assert.ok(performance.now() - started < 60_000);

    // Half a file: the frames decoded, then a line saying the decode stopped short.
    const whole = join(dir, "whole.mp4"), half = join(dir, "half.mp4");
    await ffmpeg("-i", CLIP, "-c", "copy", "-movflags", "faststart", whole);
    const bytes = Deno.readFileSync(whole);
    Deno.writeFileSync(half, bytes.subarray(0, bytes.length >> 1));
    const cut = await predictVideo([half]);
    assert.equal(cut.code, 1);
    assert.ok(cut.lines.length > 1, "the decoded frames are kept");
    assert.match(
      cut.lines.at(-1).error,
      /half\.mp4: decoding stopped after \d+ of about \d+ frames; the file may be truncated/,
    );

    // A FIFO named like a video is refused before anything opens it (it would wait for a writer forever).
    const fifo = join(dir, "pipe.mp4");
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    const piped = await predictVideo([fifo]);
    assert.equal(piped.code, 1);
    assert.match(piped.lines[0].error, /pipe\.mp4: not a regular file \(a FIFO, device or socket\); not read/);
  },
});
