/** Image decoding (PNG, JPEG) and the pixel operations the pipeline needs. */
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { fileURLToPath } from "node:url";
import decodeWebp, { init as initWebpDecoder } from "@jsquash/webp/decode.js";

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
export function sniffFormat(bytes: Uint8Array): "png" | "jpeg" | "webp" | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "png";
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  return undefined;
}

/** Width and height from a PNG, JPEG or WebP header, without decoding; undefined if not found. */
export function imageSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = sniffFormat(bytes);
  if (format === "png" && bytes.length >= 24) return { width: view.getUint32(16), height: view.getUint32(20) };
  if (format === "webp" && bytes.length >= 30) {
    const chunk = String.fromCharCode(...bytes.subarray(12, 16));
    const u24 = (at: number) => bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16);
    if (chunk === "VP8X") return { width: u24(24) + 1, height: u24(27) + 1 };
    if (chunk === "VP8 ") {
      return { width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff };
    }
    if (chunk === "VP8L") {
      const bits = view.getUint32(21, true);
      return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    return undefined;
  }
  if (format !== "jpeg") return undefined;
  for (let i = 2; i + 9 < bytes.length;) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1];
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: view.getUint16(i + 5), width: view.getUint16(i + 7) };
    }
    i += 2 + view.getUint16(i + 2);
  }
  return undefined;
}

/** The EXIF orientation (1..8) of a JPEG, 1 when absent. */
export function exifOrientation(bytes: Uint8Array): number {
  if (sniffFormat(bytes) !== "jpeg") return 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 2; i + 4 < bytes.length;) {
    if (bytes[i] !== 0xff) return 1;
    const marker = bytes[i + 1], length = view.getUint16(i + 2);
    if (marker === 0xda) return 1; // image data starts: no EXIF before it
    const exif = i + 4;
    if (marker === 0xe1 && String.fromCharCode(...bytes.subarray(exif, exif + 4)) === "Exif") {
      const tiff = exif + 6;
      const little = view.getUint16(tiff) === 0x4949;
      const ifd = tiff + view.getUint32(tiff + 4, little);
      const entries = view.getUint16(ifd, little);
      for (let e = 0; e < entries; e++) {
        const entry = ifd + 2 + 12 * e;
        if (entry + 12 > bytes.length) return 1;
        if (view.getUint16(entry, little) === 0x0112) {
          const value = view.getUint16(entry + 8, little);
          return value >= 1 && value <= 8 ? value : 1;
        }
      }
      return 1;
    }
    i += 2 + length;
  }
  return 1;
}

/** Turn an image as EXIF `orientation` says, so it shows upright. */
export function applyOrientation(image: RgbaImage, orientation: number): RgbaImage {
  if (orientation <= 1 || orientation > 8) return image;
  const { width: w, height: h, data } = image;
  const swap = orientation >= 5;
  const outW = swap ? h : w, outH = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      // Source pixel for output (x, y), per the EXIF orientation definitions.
      const [sx, sy] = [
        [x, y],
        [w - 1 - x, y],
        [w - 1 - x, h - 1 - y],
        [x, h - 1 - y],
        [y, x],
        [y, h - 1 - x],
        [w - 1 - y, h - 1 - x],
        [w - 1 - y, x],
      ][orientation - 1];
      const s = 4 * (sy * w + sx), d = 4 * (y * outW + x);
      out[d] = data[s];
      out[d + 1] = data[s + 1];
      out[d + 2] = data[s + 2];
      out[d + 3] = data[s + 3];
    }
  }
  return { width: outW, height: outH, data: out };
}

let webpReady: Promise<void> | undefined;

/** Start the WebP decoder (libwebp compiled to WASM, from @jsquash/webp) once. */
function initWebp(): Promise<void> {
  webpReady ??= (async () => {
    // The decoder builds its result with the browser's ImageData, which Deno lacks.
    (globalThis as { ImageData?: unknown }).ImageData ??= class {
      constructor(public data: Uint8ClampedArray, public width: number, public height: number) {}
    };
    const wasm = fileURLToPath(import.meta.resolve("@jsquash/webp/decode.js")).replace(
      /decode\.js$/,
      "codec/dec/webp_dec.wasm",
    );
    await initWebpDecoder(await WebAssembly.compile(Deno.readFileSync(wasm)));
  })();
  return webpReady;
}

/**
 * Decode PNG, JPEG or WebP bytes to upright RGBA; `name` is used in error
 * messages. Refuses images over MAX_PIXELS before decoding them.
 */
export async function decodeImage(bytes: Uint8Array, name: string): Promise<RgbaImage> {
  if (bytes.length === 0) throw new Error(`${name}: empty file`);
  const format = sniffFormat(bytes);
  const size = imageSize(bytes);
  if (size && size.width * size.height > MAX_PIXELS) {
    const mp = ((size.width * size.height) / 1e6).toFixed(1);
    throw new Error(`${name}: image too large (${size.width}x${size.height}, ${mp} megapixels; the limit is 40)`);
  }
  try {
    if (format === "png") {
      const png = PNG.sync.read(Buffer.from(bytes));
      return { width: png.width, height: png.height, data: new Uint8Array(png.data) };
    }
    if (format === "webp") {
      await initWebp();
      const img = await decodeWebp(bytes.slice().buffer);
      return { width: img.width, height: img.height, data: new Uint8Array(img.data.buffer) };
    }
    if (format === "jpeg") {
      const img = jpeg.decode(bytes, { useTArray: true, maxResolutionInMP: MAX_PIXELS / 1e6, formatAsRGBA: true });
      return applyOrientation({ width: img.width, height: img.height, data: img.data }, exifOrientation(bytes));
    }
  } catch (err) {
    throw new Error(`${name}: cannot decode ${format} image (${(err as Error).message})`);
  }
  throw new Error(`${name}: not a PNG, JPEG or WebP image`);
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

/** Encode an RGBA image as PNG bytes. */
export function encodeRgbaPng(image: RgbaImage): Uint8Array {
  const png = new PNG({ width: image.width, height: image.height });
  png.data.set(image.data);
  return new Uint8Array(PNG.sync.write(png));
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

/**
 * A 640x480 test photo: a gray face scaled to `side` px with its top-left
 * corner at (x, y), on a striped blue-grey background; with the face's box.
 */
export function sceneWithFace(
  face: GrayImage,
  side = 200,
  [x0, y0] = [220, 140],
): { image: RgbaImage; box: [number, number, number, number] } {
  const big = resizeGray(face, side, side);
  const [width, height] = [640, 480];
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inFace = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
      const v = inFace ? big.data[(y - y0) * side + (x - x0)] : 90 + (x % 50);
      data.set([v, v, inFace ? v : 140, 255], 4 * (y * width + x));
    }
  }
  return { image: { width, height, data }, box: [x0, y0, side, side] };
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
