/**
 * Display helpers for the Deno Jupyter kernel. Outside a notebook they
 * print a one-line note instead, so the same code runs headless.
 */
import { encodeBase64 } from "./base64.ts";
import { renderSvg, svgToPng, type VegaLiteSpec } from "./charts.ts";

interface Jupyter {
  display(
    bundle: Record<string, unknown>,
    options?: { raw?: boolean; display_id?: string; update?: boolean },
  ): Promise<void>;
}

/** Display ids already shown in this kernel: showing one again updates it in place. */
const shown = new Set<string>();

function jupyter(): Jupyter | undefined {
  return (Deno as unknown as { jupyter?: Jupyter }).jupyter;
}

/**
 * Show a Vega-Lite chart inline, with a PNG of it in the same bundle (Jupyter
 * draws the live chart; GitHub, nbviewer and VS Code show the picture). With
 * `displayId`, a second call with the same id redraws the first output in
 * place (live training curves).
 */
export async function showVegaLite(spec: VegaLiteSpec, displayId?: string): Promise<void> {
  const title = typeof spec.title === "string" ? spec.title : "chart";
  const kernel = jupyter();
  if (!kernel) return console.log(`[chart: ${title}]`);
  const png = encodeBase64(await svgToPng(await renderSvg(spec), 1));
  const bundle = { "application/vnd.vegalite.v5+json": spec, "image/png": png, "text/plain": `[chart: ${title}]` };
  const update = displayId !== undefined && shown.has(displayId);
  if (displayId !== undefined) shown.add(displayId);
  await kernel.display(bundle, { raw: true, ...(displayId ? { display_id: displayId, update } : {}) });
}

/** Show PNG bytes inline. */
export async function showPng(png: Uint8Array, caption = "image"): Promise<void> {
  const kernel = jupyter();
  if (!kernel) return console.log(`[${caption}: ${png.length} bytes PNG]`);
  await kernel.display({ "image/png": encodeBase64(png), "text/plain": `[${caption}]` }, { raw: true });
}
