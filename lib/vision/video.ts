/**
 * Emotions through a video file: frames decoded by ffmpeg (Debian's
 * `ffmpeg`) at a chosen rate, each frame's faces found and classified as in
 * photos (face_pipeline.js), followed from frame to frame and smoothed over
 * time by the tracker the page uses too (lib/web/tracker.js); a line per
 * frame, and on request the video annotated (encoded by ffmpeg) and each
 * face's emotions over time. `deno task predict VIDEO` is lib/cli/predict.ts.
 */
import { extname } from "node:path";
import sharp from "sharp";
import type { RgbaImage } from "../data/images.ts";
import type { LoadedModel } from "../model/model_io.ts";
import { classifyCrops, type FaceOptions, type FaceResult, findFaces, labelFaces } from "./faces.ts";
import { annotationSvg } from "./predict.ts";
import { svgToPng } from "../util/charts.ts";
import { argmax, probabilityMap } from "../web/face_pipeline.js";
import { FaceTracker } from "../web/tracker.js";

/** File extensions taken as videos. */
export const VIDEO_EXTENSIONS = [".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi"];

/** Whether a path names a video by its extension (any case). */
export function isVideoFile(path: string): boolean {
  return VIDEO_EXTENSIONS.includes(extname(path).toLowerCase());
}

/** A face in a video frame: as in a photo, plus its track id and its probabilities smoothed over time. */
export interface VideoFace extends FaceResult {
  track: number;
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

/** What ffprobe says of a video's first video stream. */
export interface VideoInfo {
  width: number;
  height: number;
  fps: number;
  duration: number;
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

/** A video's size, frame rate and duration, from ffprobe. */
export async function probeVideo(path: string): Promise<VideoInfo> {
  let output: Deno.CommandOutput;
  try {
    output = await tool("ffprobe", [
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=width,height,avg_frame_rate:format=duration",
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
  return {
    width: stream.width,
    height: stream.height,
    fps: den ? num / den : num,
    duration: Number(probe.format?.duration),
  };
}

/** The video's frames at `fps` per second (its own rate if undefined), RGBA, one at a time. */
export async function* videoFrames(
  path: string,
  info: VideoInfo,
  fps?: number,
): AsyncGenerator<{ index: number; time: number; image: RgbaImage }> {
  const filters = fps ? ["-vf", `fps=${fps}`] : [];
  let child: Deno.ChildProcess;
  try {
    child = tool("ffmpeg", ["-v", "error", "-i", path, ...filters, "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1"], {
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw missingFfmpeg(error);
  }
  const errors = new Response(child.stderr).text();
  const frameBytes = info.width * info.height * 4;
  const rate = fps ?? info.fps;
  let buffer = new Uint8Array(0), index = 0, finished = false;
  try {
    for await (const chunk of child.stdout) {
      const joined = new Uint8Array(buffer.length + chunk.length);
      joined.set(buffer);
      joined.set(chunk, buffer.length);
      buffer = joined;
      while (buffer.length >= frameBytes) {
        const data = buffer.slice(0, frameBytes);
        buffer = buffer.slice(frameBytes);
        const time = Math.round((index / rate) * 1000) / 1000;
        yield { index, time, image: { width: info.width, height: info.height, data } };
        index++;
      }
    }
    finished = true;
  } finally {
    if (!finished) child.kill(); // the caller stopped early
  }
  const { success } = await child.status;
  if (!success && index === 0) {
    throw new Error(`${path}: cannot decode video (${(await errors).trim().split("\n")[0]})`);
  }
}

/** Writes RGBA frames into an H.264 mp4 through ffmpeg. */
export class VideoWriter {
  private constructor(private child: Deno.ChildProcess, private writer: WritableStreamDefaultWriter<Uint8Array>) {}

  /** Start writing `path` at `fps` frames per second. */
  static start(path: string, width: number, height: number, fps: number): VideoWriter {
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
      child = tool("ffmpeg", [...args, "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p", path], {
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      throw missingFfmpeg(error);
    }
    return new VideoWriter(child, child.stdin.getWriter());
  }

  /** Append one frame. */
  async write(frame: RgbaImage): Promise<void> {
    await this.writer.write(frame.data);
  }

  /** Finish the file; a failure of ffmpeg is an error naming its first line. */
  async close(path: string): Promise<void> {
    await this.writer.close();
    const { success, stderr } = await this.child.output();
    if (!success) {
      throw new Error(`${path}: ffmpeg could not write the video (${new TextDecoder().decode(stderr).trim()})`);
    }
  }
}

/** The class of a probability map with the highest probability. */
function topClass(probabilities: Record<string, number>): string {
  return Object.keys(probabilities)[argmax(Object.values(probabilities))];
}

/** A frame with its faces boxed and labelled (the smoothed emotion), as RGBA. */
export async function annotatedFrame(image: RgbaImage, faces: VideoFace[]): Promise<RgbaImage> {
  const shown = faces.map(({ box, track, smoothed }) => {
    const label = topClass(smoothed);
    const caption = `#${track} ${label}`; // drawn as "#1 happy 80%"
    return { box, emotion: caption, probabilities: { [caption]: smoothed[label] } };
  });
  const png = await svgToPng(await annotationSvg(image, shown), 1);
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
 * annotate it, ...).
 */
export async function predictVideo(
  loaded: LoadedModel,
  path: string,
  options: VideoOptions,
  onFrame: (line: VideoFrameLine, image: RgbaImage) => Promise<void> | void,
): Promise<VideoInfo> {
  const info = await probeVideo(path);
  const tracker = new FaceTracker(options.timeConstant === undefined ? {} : { timeConstant: options.timeConstant });
  const { labels, temperature, inputSize } = loaded.metadata;
  for await (const { index, time, image } of videoFrames(path, info, options.fps)) {
    const found = await findFaces(image, inputSize, options);
    const probabilities = found.length ? await classifyCrops(loaded, found.map((f) => f.crop)) : new Float32Array();
    const faces = labelFaces(found, probabilities, labels, temperature);
    const ids = tracker.assign(time, faces.map((f) => f.box));
    const line: VideoFrameLine = {
      path,
      frame: index,
      time,
      width: info.width,
      height: info.height,
      faces: faces.map((face, i) => ({
        ...face,
        track: ids[i],
        smoothed: probabilityMap(labels, tracker.smooth(ids[i], time, labels.map((l) => face.probabilities[l]))),
      })),
      error: null,
    };
    await onFrame(line, image);
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
