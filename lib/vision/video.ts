/**
 * Emotions through a video file: frames decoded by ffmpeg (Debian's
 * `ffmpeg`) at a chosen rate, each frame's faces found and classified as in
 * photos (face_pipeline.js), followed from frame to frame and smoothed over
 * time by the tracker the page uses too (lib/core/tracker.js); a line per
 * frame, and on request the video annotated (encoded by ffmpeg) and each
 * face's emotions over time. `deno task predict VIDEO` is lib/cli/predict.ts.
 */
import { basename, dirname, extname, join } from "node:path";
import sharp from "sharp";
import type { RgbaImage } from "../data/images.ts";
import type { LoadedModel } from "../model/model_io.ts";
import { classifyCrops, type FaceOptions, type FaceResult, findFaces, labelFaces } from "./faces.ts";
import { annotationSvg, MAX_WORKING_SIDE } from "./predict.ts";
import { regularFile } from "../util/files.ts";
import { svgToPng } from "../util/charts.ts";
import { argmax } from "../core/face_pipeline.js";
import { FaceTracker, trackFaces } from "../core/tracker.js";

/** File extensions taken as videos. */
export const VIDEO_EXTENSIONS = [".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi"];

/** Whether a path names a video by its extension (any case). */
export function isVideoFile(path: string): boolean {
  return VIDEO_EXTENSIONS.includes(extname(path).toLowerCase());
}

/** A face in a video frame: as in a photo, plus its track id and its probabilities smoothed over time. */
export interface VideoFace extends FaceResult {
  /** The face's id, the same while it stays in the video. */
  track: number;
  /** Its probabilities smoothed over time (an exponential moving average with a time constant in seconds). */
  smoothed: Record<string, number>;
}

/** One output line: a frame of the video. */
export interface VideoFrameLine {
  path: string;
  frame: number;
  /** Seconds from the start of the video. */
  time: number;
  width: number;
  height: number;
  faces: VideoFace[];
  error: null;
}

/** What ffprobe says of a video's first video stream, upright (its rotation applied, as ffmpeg decodes it). */
export interface VideoInfo {
  /** The upright frame's size in the file's pixels. */
  width: number;
  height: number;
  fps: number;
  duration: number;
  /** Degrees the player turns the stored frames (phones tag portrait clips 90 or -90). */
  rotation: number;
}

/** Run ffmpeg or ffprobe; not installed is one line saying how to install it. */
function tool(name: "ffmpeg" | "ffprobe", args: string[], io: Deno.CommandOptions = {}): Deno.Command {
  return new Deno.Command(name, { args, ...io });
}

/** The error for a missing ffmpeg. */
function missingFfmpeg(error: unknown): Error {
  return error instanceof Deno.errors.NotFound
    ? new Error("ffmpeg not found: videos need Debian's ffmpeg (apt-get install ffmpeg)")
    : error as Error;
}

/** A video's upright size, frame rate, duration and rotation, from ffprobe; anything but a regular file is refused first. */
export async function probeVideo(path: string): Promise<VideoInfo> {
  regularFile(path);
  let output: Deno.CommandOutput;
  try {
    output = await tool("ffprobe", [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=width,height,avg_frame_rate:stream_tags=rotate:stream_side_data=rotation:format=duration",
      "-of",
      "json",
      path,
    ]).output();
  } catch (error) {
    throw missingFfmpeg(error);
  }
  const message = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
  if (!output.success) throw new Error(`${path}: not a readable video (${message || "ffprobe failed"})`);
  const probe = JSON.parse(new TextDecoder().decode(output.stdout));
  const stream = probe.streams?.[0];
  if (!stream?.width) throw new Error(`${path}: no video stream`);
  const [num, den] = String(stream.avg_frame_rate).split("/").map(Number);
  const sideRotation = (stream.side_data_list ?? []).find((d: { rotation?: number }) => d.rotation !== undefined);
  const rotation = Number(sideRotation?.rotation ?? stream.tags?.rotate ?? 0) || 0;
  const turned = Math.abs(rotation) % 180 === 90;
  return {
    width: turned ? stream.height : stream.width,
    height: turned ? stream.width : stream.height,
    fps: den ? num / den : num,
    duration: Number(probe.format?.duration),
    rotation,
  };
}

/** The size frames are decoded at: the upright frame, shrunk to at most MAX_WORKING_SIDE on its longer side. */
export function workingSize(info: VideoInfo): { width: number; height: number; scale: number } {
  const shrink = Math.min(1, MAX_WORKING_SIDE / Math.max(info.width, info.height));
  const width = Math.max(1, Math.round(info.width * shrink)), height = Math.max(1, Math.round(info.height * shrink));
  return { width, height, scale: info.width / width };
}

/** Frames analysed per second: `fps`, at most the video's own rate (its own rate when undefined). */
export function frameRate(info: VideoInfo, fps?: number): number {
  return Math.min(fps ?? info.fps, info.fps);
}

/**
 * The video's frames at `fps` per second (its own rate if undefined, or if
 * `fps` is higher: frames are not repeated), RGBA, one at a time, upright
 * and scaled by ffmpeg to `workingSize`, so a frame's memory is bounded
 * whatever the file holds. A decode that stops short (a truncated file) is
 * an error naming the frames read, after the frames that were decoded.
 */
export async function* videoFrames(
  path: string,
  info: VideoInfo,
  fps?: number,
): AsyncGenerator<{ index: number; time: number; image: RgbaImage }> {
  const size = workingSize(info);
  const rate = frameRate(info, fps);
  const filters = [...(rate < info.fps ? [`fps=${rate}`] : []), `scale=${size.width}:${size.height}:flags=area`];
  let child: Deno.ChildProcess;
  try {
    child = tool("ffmpeg", [
      "-v",
      "error",
      "-i",
      path,
      "-vf",
      filters.join(","),
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgba",
      "pipe:1",
    ], { stdout: "piped", stderr: "piped" }).spawn();
  } catch (error) {
    throw missingFfmpeg(error);
  }
  const errors = new Response(child.stderr).text();
  const frameBytes = size.width * size.height * 4;
  let frame = new Uint8Array(frameBytes), filled = 0, index = 0, finished = false;
  try {
    for await (const chunk of child.stdout) {
      for (let at = 0; at < chunk.length;) {
        const take = Math.min(frameBytes - filled, chunk.length - at);
        frame.set(chunk.subarray(at, at + take), filled);
        filled += take;
        at += take;
        if (filled < frameBytes) continue;
        const time = Math.round((index / rate) * 1000) / 1000;
        yield { index, time, image: { width: size.width, height: size.height, data: frame } };
        frame = new Uint8Array(frameBytes);
        filled = 0;
        index++;
      }
    }
    finished = true;
  } finally {
    if (!finished) child.kill(); // the caller stopped early
  }
  const { success } = await child.status;
  const problem = (await errors).trim().split("\n")[0];
  if (!success && index === 0) throw new Error(`${path}: cannot decode video (${problem})`);
  const expected = Math.floor(info.duration * rate);
  if (!success || (problem && index < expected - 1)) {
    throw new Error(
      `${path}: decoding stopped after ${index} of about ${expected} frames; the file may be truncated (${
        problem || "ffmpeg failed"
      })`,
    );
  }
}

/**
 * Writes RGBA frames into an H.264 mp4 through ffmpeg: into a file beside
 * `path`, put in its place when complete (a failure leaves no torn video).
 */
export class VideoWriter {
  private constructor(
    private child: Deno.ChildProcess,
    private writer: WritableStreamDefaultWriter<Uint8Array>,
    private path: string,
    private staged: string,
  ) {}

  /** Start writing `path` at `fps` frames per second. */
  static start(path: string, width: number, height: number, fps: number): VideoWriter {
    const staged = join(dirname(path), `.${basename(path)}.tmp-${Deno.pid}`);
    const args = [
      "-v",
      "error",
      "-y",
      "-f",
      "rawvideo",
      "-pix_fmt",
      "rgba",
      "-s",
      `${width}x${height}`,
      "-r",
      `${fps}`,
    ];
    let child: Deno.ChildProcess;
    try {
      child = tool("ffmpeg", [...args, "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", staged], {
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      throw missingFfmpeg(error);
    }
    return new VideoWriter(child, child.stdin.getWriter(), path, staged);
  }

  /** Append one frame. */
  async write(frame: RgbaImage): Promise<void> {
    await this.writer.write(frame.data);
  }

  /** Finish the file and put it in place; a failure of ffmpeg is an error naming the output and its first line. */
  async close(): Promise<void> {
    await this.writer.close().catch(() => {}); // a closed pipe: ffmpeg's own error says why
    const { success, stderr } = await this.child.output();
    if (!success) {
      try {
        Deno.removeSync(this.staged);
      } catch { /* never written */ }
      const why = new TextDecoder().decode(stderr).trim().split("\n").at(-1);
      throw new Error(`${this.path}: ffmpeg could not write the video (${why})`);
    }
    Deno.renameSync(this.staged, this.path);
  }
}

/** The class of a probability map with the highest probability. */
function topClass(probabilities: Record<string, number>): string {
  return Object.keys(probabilities)[argmax(Object.values(probabilities))];
}

/** A frame with its faces (boxes in pixels `scale` times the frame's) boxed and labelled (the smoothed emotion), as RGBA. */
export async function annotatedFrame(image: RgbaImage, faces: VideoFace[], scale = 1): Promise<RgbaImage> {
  const shown = faces.map(({ box, track, smoothed }) => {
    const label = topClass(smoothed);
    const caption = `#${track} ${label}`; // drawn as "#1 happy 80%"
    return { box, emotion: caption, probabilities: { [caption]: smoothed[label] } };
  });
  const png = await svgToPng(await annotationSvg(image, shown, scale), 1);
  const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Settings of `predictVideo`. */
export interface VideoOptions extends FaceOptions {
  /** Frames analysed per second (default: every frame). */
  fps?: number;
  /** Time constant of the smoothing, in seconds (the tracker's default if undefined). */
  timeConstant?: number;
}

/**
 * Each sampled frame of a video: its faces found, given track ids, classified
 * and smoothed; `onFrame` receives every line with its image (to print it,
 * annotate it, ...; the image is upright and at most MAX_WORKING_SIDE, the
 * boxes in the file's pixels) and the video's info.
 */
export async function predictVideo(
  loaded: LoadedModel,
  path: string,
  options: VideoOptions,
  onFrame: (line: VideoFrameLine, image: RgbaImage, info: VideoInfo) => Promise<void> | void,
): Promise<VideoInfo> {
  const info = await probeVideo(path);
  const tracker = new FaceTracker(options.timeConstant === undefined ? {} : { timeConstant: options.timeConstant });
  const { labels, temperature, inputSize } = loaded.metadata;
  const { scale } = workingSize(info);
  for await (const { index, time, image } of videoFrames(path, info, options.fps)) {
    const found = await findFaces(image, inputSize, options, scale);
    const probabilities = found.length ? await classifyCrops(loaded, found.map((f) => f.crop)) : new Float32Array();
    const faces = labelFaces(found, probabilities, labels, temperature);
    const line: VideoFrameLine = {
      path,
      frame: index,
      time,
      width: info.width,
      height: info.height,
      faces: trackFaces(tracker, time, faces, labels),
      error: null,
    };
    await onFrame(line, image, info);
  }
  return info;
}

/** A moment a face's (smoothed) emotion changes to one it then keeps. */
export interface TurningPoint {
  frame: number;
  time: number;
  track: number;
  emotion: string;
}

/**
 * The turning points of each face (track): every frame where its smoothed
 * emotion becomes one that it keeps for at least `hold` seconds (its first
 * lasting emotion included), in time order.
 */
export function turningPoints(lines: VideoFrameLine[], hold = 0.6): TurningPoint[] {
  const byTrack = new Map<number, TurningPoint[]>();
  for (const line of lines) {
    for (const f of line.faces) {
      const emotion = topClass(f.smoothed);
      byTrack.set(f.track, [...byTrack.get(f.track) ?? [], {
        frame: line.frame,
        time: line.time,
        track: f.track,
        emotion,
      }]);
    }
  }
  const points: TurningPoint[] = [];
  for (const seen of byTrack.values()) {
    let current: string | undefined;
    seen.forEach((p, i) => {
      if (p.emotion === current) return;
      const change = seen.slice(i).findIndex((q) => q.emotion !== p.emotion);
      const until = change < 0 ? seen.at(-1)!.time : seen[i + change].time;
      if (until - p.time < hold - 1e-6) return; // a passing blip
      points.push(p);
      current = p.emotion;
    });
  }
  return points.sort((a, b) => a.time - b.time);
}
