/**
 * Node has no `Deno` namespace: this gives it the official shim's
 * (`@deno/shim-deno`) before anything else of the package loads, so the
 * package runs in Node on the same code as in Deno. In Deno it does nothing.
 * mod.ts imports it first.
 */
import { Deno as shim } from "@deno/shim-deno";

(globalThis as { Deno?: unknown }).Deno ??= shim;
