/**
 * Display helpers for the Deno Jupyter kernel. Outside a notebook they
 * print a one-line note instead, so the same code runs headless.
 */
import { encodeBase64 } from "./base64.ts";
import type { VegaLiteSpec } from "./charts.ts";

interface Jupyter {
  display(bundle: Record<string, unknown>, options?: { raw?: boolean }): Promise<void>;
}

function jupyter(): Jupyter | undefined {
  return (Deno as unknown as { jupyter?: Jupyter }).jupyter;
}

/** Show a Vega-Lite chart inline. */
export async function showVegaLite(spec: VegaLiteSpec): Promise<void> {
  const title = typeof spec.title === "string" ? spec.title : "chart";
  const kernel = jupyter();
  if (!kernel) return console.log(`[chart: ${title}]`);
  await kernel.display({ "application/vnd.vegalite.v5+json": spec, "text/plain": `[chart: ${title}]` }, { raw: true });
}

/** Show PNG bytes inline. */
export async function showPng(png: Uint8Array, caption = "image"): Promise<void> {
  const kernel = jupyter();
  if (!kernel) return console.log(`[${caption}: ${png.length} bytes PNG]`);
  await kernel.display({ "image/png": encodeBase64(png), "text/plain": `[${caption}]` }, { raw: true });
}
