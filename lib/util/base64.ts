/** Base64 of bytes (for inline images), without JSR's std library. */
import { Buffer } from "node:buffer";

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}
