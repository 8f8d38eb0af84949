/**
 * The page server as a hostile but fair user meets it: links out of its
 * folders, other Host names, HEAD, its headers, a port already taken, a
 * model folder without metadata.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { handleRequest, loopbackHost, startServer, staticRoutes } from "../../lib/web/server.ts";
import { PROJECT_ROOT, projectPath } from "../../lib/util/paths.ts";

/** A model folder with one real file, a link to a file outside and a link to a folder outside. */
function modelWithLinks(): string {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(join(dir, "metadata.json"), '{"labels": []}\n');
  Deno.symlinkSync("/etc/passwd", join(dir, "leak.json"));
  Deno.symlinkSync("/etc", join(dir, "etc"));
  Deno.symlinkSync(join(dir, "metadata.json"), join(dir, "inside.json"));
  return dir;
}

const ask = (routes: ReturnType<typeof staticRoutes>, path: string, init: RequestInit & { host?: string } = {}) =>
  handleRequest(
    routes,
    new Request(`http://127.0.0.1:8000${path}`, { ...init, headers: { host: init.host ?? "127.0.0.1:8000" } }),
  );

Deno.test("the server serves only regular files whose real path is inside its folder", async () => {
  const routes = staticRoutes(modelWithLinks());
  assert.equal((await ask(routes, "/model/metadata.json")).status, 200);
  assert.equal((await ask(routes, "/model/inside.json")).status, 200, "a link that stays inside is followed");
  assert.equal((await ask(routes, "/model/leak.json")).status, 404);
  assert.equal((await ask(routes, "/model/etc/passwd")).status, 404);
  assert.equal((await ask(routes, "/model/etc")).status, 404);
  assert.equal((await ask(routes, "/model/")).status, 404, "a folder is not a file");
});

Deno.test("HEAD answers with GET's headers; every file is sent with nosniff and a cache policy", async () => {
  const routes = staticRoutes(modelWithLinks());
  const get = await ask(routes, "/model/metadata.json");
  const head = await ask(routes, "/model/metadata.json", { method: "HEAD" });
  assert.equal(head.headers.get("content-length"), String((await get.arrayBuffer()).byteLength));
  for (const name of ["content-type", "content-length", "x-content-type-options", "cache-control"]) {
    assert.equal(head.headers.get(name), get.headers.get(name), name);
  }
  assert.equal(get.headers.get("x-content-type-options"), "nosniff");
  assert.equal(get.headers.get("cache-control"), "no-cache");
  assert.equal(await head.text(), "");
  const page = await ask(routes, "/");
  assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'; script-src 'self' /);
  assert.match(page.headers.get("content-security-policy") ?? "", /object-src 'none'.*frame-ancestors 'none'/);
});

Deno.test("only loopback Host names are answered (no DNS rebinding)", async () => {
  const routes = staticRoutes(modelWithLinks());
  for (const host of ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"]) {
    assert.equal((await ask(routes, "/model/metadata.json", { host })).status, 200, host);
    assert.ok(loopbackHost(host));
  }
  for (const host of ["evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example", ""]) {
    assert.equal((await ask(routes, "/model/metadata.json", { host })).status, 403, host);
  }
});

Deno.test("a port in use is named in one line", async () => {
  const server = startServer({ port: 0, modelDir: projectPath("outputs", "model") });
  try {
    const port = (server.addr as Deno.NetAddr).port;
    assert.throws(
      () => startServer({ port, modelDir: projectPath("outputs", "model") }),
      new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use; pass --port`),
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("deno task serve refuses a model folder without metadata.json before it starts", async () => {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(join(dir, "model.json"), "{}");
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", projectPath("lib", "cli", "serve.ts"), "--model", dir],
    cwd: PROJECT_ROOT,
  }).output();
  assert.equal(code, 1);
  assert.match(new TextDecoder().decode(stderr), /^error: .*metadata\.json is missing\n$/);
});

Deno.test("deno task serve refuses a damaged model (weights cut short) in one line naming the file", async () => {
  const dir = Deno.makeTempDirSync();
  for (const name of ["model.json", "metadata.json"]) {
    Deno.copyFileSync(projectPath("outputs", "model", name), join(dir, name));
  }
  const weights = Deno.readFileSync(projectPath("outputs", "model", "weights.bin"));
  Deno.writeFileSync(join(dir, "weights.bin"), weights.subarray(0, weights.length - 100));
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", projectPath("lib", "cli", "serve.ts"), "--model", dir],
    cwd: PROJECT_ROOT,
  }).output();
  assert.equal(code, 1);
  assert.match(
    new TextDecoder().decode(stderr),
    /^error: .*weights\.bin is damaged: \d+ bytes where model\.json describes \d+\n$/,
  );
});
