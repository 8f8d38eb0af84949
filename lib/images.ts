/** Image decoding (PNG, JPEG) and the pixel operations the pipeline needs. */
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";

/** A decoded image: 8-bit RGBA, row-major. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A single-channel 8-bit image, row-major. */
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Largest image we decode; bigger ones are refused rather than exhausting memory. */
export const MAX_PIXELS = 40_000_000;

/** The format of an encoded image from its first bytes, or undefined. */
export function sniffFormat(bytes: Uint8Array): "png" | "jpeg" | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "png";
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return undefined;
}

/** Decode PNG or JPEG bytes to RGBA; `name` is used in error messages. */
export function decodeImage(bytes: Uint8Array, name: string): RgbaImage {
  if (bytes.length === 0) throw new Error(`${name}: empty file`);
  const format = sniffFormat(bytes);
  try {
    if (format === "png") {
      const png = PNG.sync.read(Buffer.from(bytes));
      return { width: png.width, height: png.height, data: new Uint8Array(png.data) };
    }
    if (format === "jpeg") {
      const img = jpeg.decode(bytes, { useTArray: true, maxResolutionInMP: MAX_PIXELS / 1e6 });
      return { width: img.width, height: img.height, data: img.data };
    }
  } catch (err) {
    throw new Error(`${name}: cannot decode ${format} image (${(err as Error).message})`);
  }
  throw new Error(`${name}: not a PNG or JPEG image`);
}

/** RGBA to gray with the ITU-R BT.601 luma weights (as PIL's "L" mode). */
export function toGray(image: RgbaImage): GrayImage {
  const { width, height, data } = image;
  const out = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < out.length; i++, j += 4) {
    out[i] = Math.round(0.299 * data[j] + 0.587 * data[j + 1] + 0.114 * data[j + 2]);
  }
  return { width, height, data: out };
}

/**
 * Resize a gray image with bilinear interpolation (pixel centres aligned,
 * like OpenCV's INTER_LINEAR); shrinking by more than 2x first box-averages
 * so small outputs don't alias.
 */
export function resizeGray(image: GrayImage, outWidth: number, outHeight: number): GrayImage {
  let src = image;
  while (src.width >= 2 * outWidth && src.height >= 2 * outHeight) src = halve(src);
  if (src.width === outWidth && src.height === outHeight) return src;
  const out = new Uint8Array(outWidth * outHeight);
  const sx = src.width / outWidth, sy = src.height / outHeight;
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), src.height - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, src.height - 1), wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), src.width - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, src.width - 1), wx = fx - x0;
      const top = src.data[y0 * src.width + x0] * (1 - wx) + src.data[y0 * src.width + x1] * wx;
      const bottom = src.data[y1 * src.width + x0] * (1 - wx) + src.data[y1 * src.width + x1] * wx;
      out[y * outWidth + x] = Math.round(top * (1 - wy) + bottom * wy);
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/** Average 2x2 blocks (odd last row/column dropped). */
function halve(image: GrayImage): GrayImage {
  const width = image.width >> 1, height = image.height >> 1;
  const out = new Uint8Array(width * height);
  const d = image.data, w = image.width;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 2 * y * w + 2 * x;
      out[y * width + x] = (d[i] + d[i + 1] + d[i + w] + d[i + w + 1] + 2) >> 2;
    }
  }
  return { width, height, data: out };
}

/** Encode a gray image as PNG bytes. */
export function encodeGrayPng(image: GrayImage): Uint8Array {
  const png = new PNG({ width: image.width, height: image.height });
  for (let i = 0; i < image.data.length; i++) {
    png.data[4 * i] = png.data[4 * i + 1] = png.data[4 * i + 2] = image.data[i];
    png.data[4 * i + 3] = 255;
  }
  return new Uint8Array(PNG.sync.write(png));
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
