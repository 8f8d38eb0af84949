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
 * Send a display bundle, then wait a moment: the Deno kernel sends displays
 * asynchronously, and a cell that ends right after one has been seen to lose
 * it (notebooks.ts checks for that and runs the notebook again).
 */
async function display(
  kernel: Jupyter,
  bundle: Record<string, unknown>,
  options: Record<string, unknown>,
): Promise<void> {
  await kernel.display(bundle, options);
  await new Promise((resolve) => setTimeout(resolve, 200));
}

/** A chart's title, for the text line of its bundle. */
function titleOf(spec: VegaLiteSpec, fallback: string): string {
  return typeof spec.title === "string" ? spec.title : fallback;
}

/** A Vega-Lite chart rendered to base64 PNG, the picture in a display bundle. */
async function pngOf(spec: VegaLiteSpec): Promise<string> {
  return encodeBase64(await svgToPng(await renderSvg(spec), 1));
}

/**
 * Show a Vega-Lite chart inline, with a PNG of it in the same bundle (Jupyter
 * draws the live chart; GitHub, nbviewer and VS Code show the picture). With
 * `displayId`, a second call with the same id redraws the first output in
 * place (live training curves).
 */
export async function showVegaLite(spec: VegaLiteSpec, displayId?: string): Promise<void> {
  const title = titleOf(spec, "chart");
  const kernel = jupyter();
  if (!kernel) return console.log(`[chart: ${title}]`);
  const bundle = {
    "application/vnd.vegalite.v5+json": spec,
    "image/png": await pngOf(spec),
    "text/plain": `[chart: ${title}]`,
  };
  const update = displayId !== undefined && shown.has(displayId);
  if (displayId !== undefined) shown.add(displayId);
  await display(kernel, bundle, { raw: true, ...(displayId ? { display_id: displayId, update } : {}) });
}

/**
 * Show a Plotly figure inline (Jupyter draws it interactive), with a PNG of
 * `fallback`, a Vega-Lite version of it, in the same bundle for viewers
 * without Plotly (GitHub, nbviewer).
 */
export async function showPlotly(
  figure: { data: unknown[]; layout: Record<string, unknown> },
  fallback: VegaLiteSpec,
): Promise<void> {
  const title = titleOf(fallback, "figure");
  const kernel = jupyter();
  if (!kernel) return console.log(`[plotly: ${title}]`);
  await display(
    kernel,
    {
      "application/vnd.plotly.v1+json": figure,
      "image/png": await pngOf(fallback),
      "text/plain": `[plotly: ${title}]`,
    },
    { raw: true },
  );
}

/**
 * A notebook setting: the environment variable FER_<NAME> when it is set
 * (headless runs, CI), else `fallback`. Number settings are counts: a value
 * that is not a whole number, or is below 1 (below 0 where the default is
 * 0, "no limit"), is refused in one line naming the variable.
 */
export function setting<T extends string | number>(name: string, fallback: T): T {
  const value = Deno.env.get(`FER_${name}`);
  if (value === undefined) return fallback;
  if (typeof fallback === "string") return value as T;
  const least = Math.min(1, fallback);
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < least) {
    throw new Error(`FER_${name}=${value}: expected a whole number, at least ${least}`);
  }
  return Number(value) as T;
}

/** Show PNG bytes inline. */
export async function showPng(png: Uint8Array, caption = "image"): Promise<void> {
  const kernel = jupyter();
  if (!kernel) return console.log(`[${caption}: ${png.length} bytes PNG]`);
  await display(kernel, { "image/png": encodeBase64(png), "text/plain": `[${caption}]` }, { raw: true });
}
