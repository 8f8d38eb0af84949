/** Node's assert, the one assertion library used by the tests (JSR is unreachable). */
export { default as assert } from "node:assert/strict";
