/**
 * A face detector's recall on real pictures whose faces were counted by eye:
 * the photos and videos of ../shared/media (videos sampled a few frames a
 * second). Without hand-drawn boxes, a picture's faces found are the
 * detector's count capped at the true count, and any more are extra (false
 * alarms). `deno task bench:predict` measures ours beside face-api's.
 */
import { join } from "node:path";
import { readImageFile, type RgbaImage } from "../data/images.ts";
import { projectPath } from "../util/paths.ts";
import { isVideoFile, probeVideo, videoFrames } from "./video.ts";

/** The media and the faces each picture (each frame) holds, counted by eye. */
export const COUNTED_MEDIA: readonly { file: string; faces: number }[] = [
  { file: "multi_face.jpg", faces: 5 },
  { file: "single_face.jpg", faces: 1 },
  { file: "WolfgangLanger_Pexels.mp4", faces: 1 },
  { file: "single_face.mp4", faces: 1 },
  { file: "no_face.mp4", faces: 0 },
];

/** Detector results over the counted media. */
export interface FaceCount {
  pictures: number;
  faces: number;
  found: number;
  extra: number;
  recall: number;
}

/** Every counted picture (video frames at `fps`), with its true face count. */
export async function countedPictures(
  fps = 5,
  dir = projectPath("..", "shared", "media"),
): Promise<{ name: string; image: RgbaImage; faces: number }[]> {
  const pictures = [];
  for (const { file, faces } of COUNTED_MEDIA) {
    const path = join(dir, file);
    if (!isVideoFile(file)) {
      pictures.push({ name: file, image: (await readImageFile(path)).image, faces });
      continue;
    }
    for await (const { time, image } of videoFrames(path, await probeVideo(path), fps)) {
      pictures.push({ name: `${file}@${time}s`, image, faces });
    }
  }
  return pictures;
}

/** How many of the pictures' faces `detect` (a picture's face count) finds, and its extra detections. */
export async function countFaces(
  pictures: { image: RgbaImage; faces: number }[],
  detect: (image: RgbaImage) => Promise<number>,
): Promise<FaceCount> {
  let faces = 0, found = 0, extra = 0;
  for (const picture of pictures) {
    const n = await detect(picture.image);
    faces += picture.faces;
    found += Math.min(n, picture.faces);
    extra += Math.max(0, n - picture.faces);
  }
  return { pictures: pictures.length, faces, found, extra, recall: faces ? found / faces : 1 };
}
