// The page's live view: the camera (getUserMedia; frames never leave the browser) or a video file, one step per
// video frame (requestVideoFrameCallback where there is one). Faces are detected every few frames, or every frame
// while none is found, and taken where they were found in between (the policy and the stable ids are tracker.js's,
// which `deno task predict VIDEO` and `deno task bench:video` use too); each face is classified every frame and its probabilities smoothed over time, then drawn with its
// box, label and bars, and a timeline of each face's emotions over the last 30 s. The status line gives frames per
// second and milliseconds per frame. Tests read `globalThis.liveLog` (a line per frame).
import {
  argmax,
  CLASS_COLOURS,
  classifyFaces,
  detectFaces,
  faceMark,
  FaceTracker,
  toGray,
  TRACK_SETTINGS,
} from "/emotion-cnn.js";

/** Seconds of the timeline. */
const TIMELINE_SECONDS = 30;

/**
 * The live view over the page's elements: `start(source)` with a MediaStream
 * or a video File, `pause()` (toggles), `stop()`.
 * @param {{ tf: any; detector: () => any; model: () => any; metadata: () => any; canvas: HTMLCanvasElement;
 *   bars: HTMLElement; timeline: HTMLCanvasElement; smoothing: HTMLInputElement;
 *   say: (text: string, isError?: boolean) => void }} page
 */
export function liveView(page) {
  const video = Object.assign(document.createElement("video"), { muted: true, playsInline: true });
  let running = false, paused = false, busy = false, tracker, history, frame, started, stream, fpsWindow;
  globalThis.liveLog = [];

  /** The seconds since the start: the file's own clock, or the wall clock for a camera. */
  const now = () => (stream ? (performance.now() - started) / 1000 : video.currentTime);

  const next = () => {
    if (!running) return;
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(step);
    else requestAnimationFrame(step);
  };

  /** One video frame: detect or follow, classify, smooth, draw. */
  async function step() {
    if (!running) return;
    if (paused || busy || video.readyState < 2) return next();
    busy = true;
    const t0 = performance.now();
    try {
      await analyseFrame();
    } catch (err) {
      page.say(`Live view stopped: ${err.message}`, true);
      return stop();
    } finally {
      busy = false;
    }
    const spent = performance.now() - t0;
    fpsWindow.push(performance.now());
    while (fpsWindow.length > 1 && fpsWindow[0] < performance.now() - 2000) fpsWindow.shift();
    const fps = fpsWindow.length > 1 ? (1000 * (fpsWindow.length - 1)) / (fpsWindow.at(-1) - fpsWindow[0]) : 0;
    page.say(`Live on ${page.tf.getBackend()}: ${fps.toFixed(1)} frames/s, ${spent.toFixed(0)} ms per frame.`);
    next();
  }

  async function analyseFrame() {
    const { tf, canvas } = page;
    const model = page.model(), metadata = page.metadata();
    const width = video.videoWidth, height = video.videoHeight, time = now();
    const work = new OffscreenCanvas(width, height);
    const workCtx = work.getContext("2d", { willReadFrequently: true });
    workCtx.drawImage(video, 0, 0);
    const photo = { width, height, data: workCtx.getImageData(0, 0, width, height).data };
    // Between detections, the faces the last detection found are taken where it found them.
    const detect = tracker.shouldDetect(frame);
    if (detect) tracker.detected(time, await detectFaces(tf, page.detector(), photo));
    const followed = tracker.followed(), ids = followed.map((f) => f.id), boxes = followed.map((f) => f.box);
    tracker.settings.timeConstant = Math.max(0, Number(page.smoothing.value) || 0);
    const rows = followed.length ? await classifyFaces(tf, model, metadata, toGray(photo), followed) : [];
    const faces = rows.map((row, i) => {
      const smoothed = tracker.smooth(ids[i], time, row);
      return { track: ids[i], box: boxes[i], emotion: metadata.labels[argmax(smoothed)], raw: argmax(row), smoothed };
    });
    history.push(...faces.map((f) => ({ time, track: f.track, smoothed: f.smoothed })));
    while (history.length && history[0].time < time - TIMELINE_SECONDS) history.shift();
    draw(faces, metadata.labels, time);
    globalThis.liveLog.push({
      frame,
      time,
      detected: detect,
      faces: faces.map((f) => ({ track: f.track, emotion: f.emotion, raw: metadata.labels[f.raw], box: f.box })),
    });
    document.body.dataset.liveFrames = String(++frame);
    canvas.dataset.size = `${width}x${height}`;
  }

  /** The frame with each face's box and smoothed label; its bars; the timeline. */
  function draw(faces, labels, time) {
    const { canvas, bars } = page;
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(video, 0, 0);
    ctx.strokeStyle = ctx.fillStyle = "#ffcc00";
    for (const f of faces) {
      const best = argmax(f.smoothed);
      const mark = faceMark(f.box, `#${f.track} ${labels[best]}`, f.smoothed[best], canvas);
      ctx.lineWidth = mark.stroke;
      ctx.strokeRect(...f.box);
      ctx.font = `bold ${mark.font}px sans-serif`;
      ctx.fillText(mark.text, mark.x, mark.y);
    }
    bars.replaceChildren(...faces.map((f) => {
      const card = document.createElement("div");
      card.className = "face";
      card.innerHTML = `<h3>Face #${f.track}: ${labels[argmax(f.smoothed)]}</h3>` +
        labels.map((label, c) =>
          `<div class="bar"><span>${label}</span><i style="width:${(100 * f.smoothed[c]).toFixed(1)}%;` +
          `background:${CLASS_COLOURS[c % CLASS_COLOURS.length]}"></i></div>`
        ).join("");
      return card;
    }));
    drawTimeline(labels, time);
  }

  /** Each followed face's smoothed probabilities over the last TIMELINE_SECONDS: a row per face, a line per class. */
  function drawTimeline(labels, time) {
    const { timeline } = page;
    const tracks = [...new Set(history.map((h) => h.track))].slice(-3);
    const rowHeight = 70, left = 60, width = timeline.width = 640;
    timeline.height = Math.max(1, tracks.length) * rowHeight + 20;
    const ctx = timeline.getContext("2d");
    ctx.clearRect(0, 0, width, timeline.height);
    ctx.font = "12px sans-serif";
    const from = Math.max(0, time - TIMELINE_SECONDS);
    const x = (t) => left + ((t - from) / TIMELINE_SECONDS) * (width - left - 10);
    tracks.forEach((track, r) => {
      const top = r * rowHeight + 5, points = history.filter((h) => h.track === track);
      ctx.fillStyle = "#222";
      ctx.fillText(`face #${track}`, 4, top + rowHeight / 2);
      ctx.strokeStyle = "#ddd";
      ctx.strokeRect(left, top, width - left - 10, rowHeight - 10);
      labels.forEach((_, c) => {
        ctx.strokeStyle = CLASS_COLOURS[c % CLASS_COLOURS.length];
        ctx.beginPath();
        points.forEach((p, i) => {
          const y = top + (rowHeight - 10) * (1 - p.smoothed[c]);
          i ? ctx.lineTo(x(p.time), y) : ctx.moveTo(x(p.time), y);
        });
        ctx.stroke();
      });
    });
    ctx.fillStyle = "#666";
    ctx.fillText(`${from.toFixed(0)} s`, left, timeline.height - 4);
    ctx.fillText(`${(from + TIMELINE_SECONDS).toFixed(0)} s`, width - 40, timeline.height - 4);
    document.body.dataset.timelineTracks = String(tracks.length);
  }

  /** Start on a camera stream or a video file. */
  async function start(source) {
    stop();
    tracker = new FaceTracker({ timeConstant: Number(page.smoothing.value) || TRACK_SETTINGS.timeConstant });
    history = [];
    frame = 0;
    fpsWindow = [];
    globalThis.liveLog = [];
    stream = source instanceof MediaStream ? source : undefined;
    if (stream) video.srcObject = stream;
    else {
      video.srcObject = null;
      video.src = URL.createObjectURL(source);
      video.loop = false;
      video.onended = () => stop(`"${source.name}" ended.`);
    }
    await video.play();
    started = performance.now();
    running = true;
    paused = false;
    document.body.dataset.live = "on";
    next();
  }

  /** Pause or go on. */
  function pause() {
    paused = !paused;
    if (!stream) paused ? video.pause() : video.play();
    if (paused) page.say("Paused.");
    return paused;
  }

  /** Stop: release the camera, keep the last frame and timeline on the page. */
  function stop(message) {
    if (!running && !stream) return;
    running = false;
    stream?.getTracks().forEach((track) => track.stop());
    stream = undefined;
    video.pause();
    document.body.dataset.live = "off";
    if (message) page.say(message);
  }

  return { start, pause, stop };
}
