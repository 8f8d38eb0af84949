/**
 * A static page that recognizes emotions in the browser (lib/web/): face
 * detection and our saved model run there with tfjs on WASM; the photo
 * never leaves the browser; /explorer, the test set's features in 2-D
 * (Plotly, MODEL/explorer.json). Serves only files: the pages, tfjs,
 * face-api, vega and plotly builds and WASM binaries from node_modules, the
 * model folder.
 * `deno task serve` is lib/cli/serve.ts. Only GET and HEAD are answered
 * (405 otherwise), only for loopback Host names (403 otherwise), only with
 * regular files whose real path is inside the served folder (404
 * otherwise); a path with a malformed %-escape gets 400.
 */
import { basename, dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { wasmDistDir } from "../backend/backend.ts";
import { DETECTORS } from "../core/face_pipeline.js";
import { detectorFiles, type DetectorKind, packageFile, projectPath } from "../util/paths.ts";
import { BROWSER_BUILD } from "./build.ts";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
  ".png": "image/png",
};

/** URL prefix -> folder on disk, or URL -> single file. */
export function staticRoutes(modelDir: string): { files: Record<string, string>; folders: Record<string, string> } {
  const faceApiDist = dirname(packageFile("@vladmandic/face-api/dist/face-api.node-wasm.js"));
  const web = fileURLToPath(new URL("./", import.meta.url));
  return {
    files: {
      "/": join(web, "index.html"),
      "/app.js": join(web, "app.js"),
      "/page.js": join(web, "page.js"),
      "/page.css": join(web, "page.css"),
      "/live.js": join(web, "live.js"),
      "/emotion-cnn.js": join(BROWSER_BUILD, "emotion-cnn.js"),
      "/explorer": join(web, "explorer.html"),
      "/explorer.js": join(web, "explorer.js"),
      "/vendor/plotly.min.js": packageFile("plotly.js-dist-min"),
      "/vendor/tf.min.js": join(dirname(packageFile("@tensorflow/tfjs")), "tf.es2017.min.js"),
      "/vendor/tf-backend-wasm.min.js": join(wasmDistDir(), "tf-backend-wasm.es2017.min.js"),
      "/vendor/tf-backend-webgpu.min.js": join(
        dirname(packageFile("@tensorflow/tfjs-backend-webgpu")),
        "tf-backend-webgpu.es2017.min.js",
      ),
      "/vendor/face-api.esm.js": join(faceApiDist, "face-api.esm.js"),
      "/vendor/vega.min.js": join(dirname(packageFile("vega")), "vega.min.js"),
      "/vendor/vega-lite.min.js": join(dirname(packageFile("vega-lite")), "vega-lite.min.js"),
      ...Object.fromEntries(
        (Object.keys(DETECTORS) as DetectorKind[]).flatMap((kind) =>
          Object.values(detectorFiles(kind)).map((file) => [`/detector/${basename(file)}`, file])
        ),
      ),
    },
    folders: {
      "/examples/": projectPath("examples"),
      "/media/": projectPath("..", "shared", "media"),
      "/vendor/wasm/": wasmDistDir(),
      "/model/": resolve(modelDir),
    },
  };
}

/** The file a URL path maps to, or undefined (no route, or an escape from the folder). */
export function routeFile(routes: ReturnType<typeof staticRoutes>, pathname: string): string | undefined {
  if (routes.files[pathname]) return routes.files[pathname];
  for (const [prefix, folder] of Object.entries(routes.folders)) {
    if (!pathname.startsWith(prefix)) continue;
    const root = folder.endsWith("/") ? folder : `${folder}/`;
    const path = normalize(join(root, decodeURIComponent(pathname.slice(prefix.length))));
    if (!path.startsWith(root)) return undefined;
    // Links are followed only when the file they lead to is inside the folder too.
    try {
      return Deno.realPathSync(path).startsWith(realRoot(root)) ? path : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** A served folder's real path with a trailing slash. */
function realRoot(root: string): string {
  try {
    return `${Deno.realPathSync(root)}/`;
  } catch {
    return root;
  }
}

/** Host names the server answers to: the loopback's, so that a page on another site cannot reach it by DNS rebinding. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Whether a request's Host header names the loopback (any port). */
export function loopbackHost(host: string | null): boolean {
  if (!host) return false;
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0];
  return LOOPBACK_HOSTS.has(name.toLowerCase());
}

/**
 * What the pages may load and run: only this server's own scripts (tfjs's
 * WebAssembly, and the expressions Vega compiles, need the two evals), its
 * images, photos the user picks and the camera (blob:, data:, mediastream:);
 * no plugins, no framing by other sites.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob: mediastream:",
  "connect-src 'self' data: blob:",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * Headers sent with every file: its type, no MIME sniffing, revalidation
 * before a cached copy is reused, and the content security policy.
 */
function fileHeaders(file: string, size: number): Headers {
  return new Headers({
    "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream",
    "content-length": String(size),
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
    "content-security-policy": CONTENT_SECURITY_POLICY,
  });
}

/** Answer one request: GET or HEAD of a regular file under the routes, from a loopback Host. */
export async function handleRequest(routes: ReturnType<typeof staticRoutes>, request: Request): Promise<Response> {
  const plain = (body: string, status: number, extra: Record<string, string> = {}) =>
    new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8", ...extra } });
  if (!loopbackHost(request.headers.get("host"))) return plain("forbidden: this server answers localhost only", 403);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return plain("method not allowed", 405, { allow: "GET, HEAD" });
  }
  let file: string | undefined;
  try {
    file = routeFile(routes, new URL(request.url).pathname);
  } catch {
    return plain("bad request: malformed %-escape in the path", 400);
  }
  if (!file) return plain("not found", 404);
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) return plain("not found", 404);
    const headers = fileHeaders(file, info.size);
    return new Response(request.method === "HEAD" ? null : await Deno.readFile(file), { headers });
  } catch {
    return plain("not found", 404);
  }
}

/** Start serving on localhost; returns the server (call `shutdown()` to stop). */
export function startServer(options: { port: number; modelDir: string; hostname?: string }): Deno.HttpServer {
  const routes = staticRoutes(options.modelDir);
  const hostname = options.hostname ?? "127.0.0.1";
  try {
    return Deno.serve({
      port: options.port,
      hostname,
      onListen: ({ hostname, port }) =>
        console.error(`serving http://${hostname}:${port}/ (model ${options.modelDir})`),
    }, (request) => handleRequest(routes, request));
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(`port ${options.port} on ${hostname} is already in use; pass --port with another one`);
    }
    throw error;
  }
}
