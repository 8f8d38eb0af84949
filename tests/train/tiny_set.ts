/** A tiny training set for step-level tests: `n` deterministic 48x48 faces, labels cycling over the seven classes. */
import { type FaceSet, IMAGE_SIZE } from "../../lib/data/dataset.ts";

/** `n` faces of fixed pseudo-random pixels, labelled 0..6 in turn. */
export function tinyFaceSet(n = 8): FaceSet {
  return {
    n,
    pixels: Uint8Array.from({ length: n * IMAGE_SIZE * IMAGE_SIZE }, (_, i) => (i * 37) % 256),
    labels: Uint8Array.from({ length: n }, (_, i) => i % 7),
  };
}
