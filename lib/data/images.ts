/** Image decoding and encoding through sharp (libvips), and the pixel operations the pipeline needs. */
import sharp from "sharp";
import { extname } from "node:path";
import { regularFile } from "../util/files.ts";

/** A decoded image: 8-bit RGBA, row-major. */
export interface RgbaImage {
  /** Pixels across. */
  width: number;
  /** Pixels down. */
  height: number;
  /** width x height x 4 bytes: red, green, blue, alpha. */
  data: Uint8Array;
}

/** A single-channel 8-bit image, row-major. */
export interface GrayImage {
  /** Pixels across. */
  width: number;
  /** Pixels down. */
  height: number;
  /** width x height bytes. */
  data: Uint8Array;
}

/** Largest image we decode (pixels); bigger ones are refused from their header, before decoding. */
export const MAX_PIXELS = 40_000_000;

/** File extensions read as images from folders (anything libvips decodes is tried when named directly). */
export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".avif", ".tif", ".tiff", ".gif"];

/** Whether a file name has one of IMAGE_EXTENSIONS (any case). */
export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** Largest image file read (bytes); the decoders' own limit (MAX_PIXELS) applies beneath it. */
export const MAX_FILE_BYTES = 256 * 2 ** 20;

/** An image read from a file: decoded (maybe downscaled), with the file's own upright size. */
export interface ImageFile {
  image: RgbaImage;
  /** The upright size of the image in the file. */
  width: number;
  height: number;
  /** `width / image.width`: how many file pixels one decoded pixel spans (1 unless downscaled). */
  scale: number;
}

/**
 * Read and decode an image file, refusing in one line what is not a regular
 * file (a FIFO, a device such as /dev/zero, a link to nothing) or is over
 * MAX_FILE_BYTES, before reading it. With `maxSide`, a larger image is
 * decoded straight to that size on its longer side (libvips shrinks JPEGs
 * while decoding), which bounds the memory a photo takes.
 */
export async function readImageFile(path: string, maxSide?: number): Promise<ImageFile> {
  const info = regularFile(path, true);
  if (info.isDirectory) throw new Error(`${path}: a folder without image files (${IMAGE_EXTENSIONS.join(" ")})`);
  if (info.size > MAX_FILE_BYTES) {
    throw new Error(`${path}: ${(info.size / 2 ** 20).toFixed(0)} MB, over the ${MAX_FILE_BYTES / 2 ** 20} MB limit`);
  }
  return await decodeImageFile(await Deno.readFile(path), path, maxSide);
}

/**
 * Decode an image file's bytes (`decodeImage`) to at most `maxSide` on its
 * longer side, with the file's own upright size; `name` is used in errors.
 */
export async function decodeImageFile(bytes: Uint8Array, name: string, maxSide?: number): Promise<ImageFile> {
  const image = await decodeImage(bytes, name, maxSide);
  if (!maxSide || Math.max(image.width, image.height) < maxSide) {
    return { image, width: image.width, height: image.height, scale: 1 };
  }
  const size = (await sharp(bytes).metadata()).autoOrient;
  return { image, width: size.width, height: size.height, scale: size.width / image.width };
}

/**
 * Decode an image file's bytes (JPEG, PNG, WebP, AVIF, TIFF, GIF: whatever
 * libvips reads) with sharp to upright 8-bit sRGB RGBA: EXIF rotation
 * applied, CMYK, 16-bit, gray and palette images converted, only the first
 * frame of an animation; with `maxSide`, shrunk to fit in a square of that
 * side. `name` is used in error messages. Images over MAX_PIXELS, and
 * truncated or corrupt files, are refused.
 */
export async function decodeImage(bytes: Uint8Array, name: string, maxSide?: number): Promise<RgbaImage> {
  if (bytes.length === 0) throw new Error(`${name}: empty file`);
  try {
    let pipeline = sharp(bytes, { limitInputPixels: MAX_PIXELS, failOn: "error" }).rotate();
    if (maxSide) pipeline = pipeline.resize(maxSide, maxSide, { fit: "inside", withoutEnlargement: true });
    const { data, info } = await pipeline
      .toColourspace("srgb")
      .ensureAlpha()
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (err) {
    const message = (err as Error).message;
    if (/pixel limit/i.test(message)) {
      throw new Error(`${name}: image too large (over ${MAX_PIXELS / 1e6} megapixels)`);
    }
    if (/unsupported image format/i.test(message)) throw new Error(`${name}: not an image file (${message})`);
    throw new Error(`${name}: cannot decode image (${message})`);
  }
}

/** Encode an RGBA image as PNG bytes. */
export async function encodeRgbaPng(image: RgbaImage): Promise<Uint8Array> {
  const raw = { width: image.width, height: image.height, channels: 4 as const };
  return new Uint8Array(await sharp(image.data, { raw }).png().toBuffer());
}

/** An RGBA image scaled to fit `width` x `height`, centred on mid-gray: a photo of a set size (letterboxed). */
export async function fitRgba(image: RgbaImage, width: number, height: number): Promise<RgbaImage> {
  const raw = { width: image.width, height: image.height, channels: 4 as const };
  const { data, info } = await sharp(image.data, { raw })
    .resize(width, height, { fit: "contain", background: { r: 128, g: 128, b: 128, alpha: 1 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

/** A gray image as sharp's raw one-channel input. */
function grayInput(image: GrayImage): sharp.Sharp {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 1 } });
}

/** Encode a gray image as PNG bytes. */
export async function encodeGrayPng(image: GrayImage): Promise<Uint8Array> {
  return new Uint8Array(await grayInput(image).png().toBuffer());
}

/** Encode a gray image as JPEG bytes (small faces for the explorer: about a quarter of their PNG size). */
export async function encodeGrayJpeg(image: GrayImage, quality = 85): Promise<Uint8Array> {
  return new Uint8Array(await grayInput(image).jpeg({ quality }).toBuffer());
}

/** Lay square gray images of side `size` out in a grid, `columns` wide, with a white `gap`. */
export function tileGray(images: Uint8Array[], size: number, columns: number, gap = 2): GrayImage {
  const rows = Math.ceil(images.length / columns);
  const width = columns * size + (columns - 1) * gap, height = rows * size + (rows - 1) * gap;
  const data = new Uint8Array(width * height).fill(255);
  images.forEach((image, k) => {
    const x0 = (k % columns) * (size + gap), y0 = Math.floor(k / columns) * (size + gap);
    for (let y = 0; y < size; y++) data.set(image.subarray(y * size, (y + 1) * size), (y0 + y) * width + x0);
  });
  return { width, height, data };
}
