/**
 * The run folder's owner: one writer at a time (the lock), every crash point
 * leaves a folder that a resume (or a rerun) continues without a manual
 * step, and a resume refuses settings that change what its checkpoint is.
 */
import { assert } from "../assert.ts";
import { join } from "node:path";
import { lockRun, prepareRun, runPaths } from "../../lib/train/run_folder.ts";
import { trainModel } from "../../lib/train/train.ts";
import { DEFAULT_CONFIG, parseTrainArgs } from "../../lib/train/config.ts";

/** The PID of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

Deno.test("a run folder has one writer: a second is refused naming the holder; the lock goes with its release", () => {
  const run = join(Deno.makeTempDirSync(), "run");
  const release = lockRun(run);
  assert.throws(() => lockRun(run), new RegExp(`in use by process ${Deno.pid} .*lock`));
  release();
  assert.ok(!Deno.statSync(run).isFile && ![...Deno.readDirSync(run)].some((e) => e.name === "lock"));
  lockRun(run)();
});

Deno.test("the lock of a process that is gone (or an unreadable lock) is taken over", async () => {
  const run = Deno.makeTempDirSync();
  Deno.writeTextFileSync(
    runPaths(run).lock,
    JSON.stringify({ pid: await deadPid(), host: Deno.hostname(), since: "then" }),
  );
  const lines: string[] = [];
  const release = lockRun(run, (m) => lines.push(m));
  assert.match(lines.join("\n"), /taking over the lock of process \d+, which is no longer running/);
  assert.equal(JSON.parse(Deno.readTextFileSync(runPaths(run).lock)).pid, Deno.pid);
  release();
  Deno.writeTextFileSync(runPaths(run).lock, "");
  lockRun(run)();
});

Deno.test({
  name: "training into a folder that another process is writing is refused in one line, before any write",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const run = join(Deno.makeTempDirSync(), "run");
    const release = lockRun(run);
    try {
      await assert.rejects(
        () => trainModel({ ...DEFAULT_CONFIG, out: run, epochs: 1 }, false, { log: () => {} }),
        /is in use by process/,
      );
      assert.deepEqual([...Deno.readDirSync(run)].map((e) => e.name), ["lock"]);
    } finally {
      release();
    }
  },
});

/** A run folder as a crash after epoch 1's history and best/ but before its last/ leaves it. */
function strandedRun(): string {
  const run = Deno.makeTempDirSync();
  const paths = runPaths(run);
  Deno.writeTextFileSync(paths.config, JSON.stringify({ ...DEFAULT_CONFIG, out: run, epochs: 3 }));
  Deno.writeTextFileSync(paths.history, "epoch,loss\n1,1.5\n");
  Deno.mkdirSync(paths.best);
  Deno.mkdirSync(`${paths.last}.tmp-4242`); // the checkpoint being written when it died
  return run;
}

Deno.test("a run that died before its first checkpoint starts again, by --resume or by a rerun", () => {
  for (const resume of [true, false]) {
    const run = strandedRun();
    const lines: string[] = [];
    assert.equal(prepareRun(run, resume, (m) => lines.push(m)), "fresh");
    assert.match(lines.join("\n"), /stopped before its first checkpoint; starting it again from epoch 1/);
    assert.deepEqual([...Deno.readDirSync(run)].map((e) => e.name), ["config.json"]);
  }
  const run = strandedRun();
  assert.equal(parseTrainArgs(["--out", run, "--resume"]).config.epochs, 3, "resume takes the saved settings");
});

Deno.test("a run with a checkpoint resumes, is not overwritten by a rerun, and an empty folder has nothing to resume", () => {
  const run = strandedRun();
  Deno.mkdirSync(runPaths(run).last);
  Deno.writeTextFileSync(runPaths(run).trainState, "{}");
  assert.equal(prepareRun(run, true, () => {}), "resume");
  assert.throws(() => prepareRun(run, false, () => {}), /already holds a run; pass --resume/);
  assert.throws(() => prepareRun(Deno.makeTempDirSync(), true, () => {}), /--resume: .* holds no run/);
});

Deno.test("--resume refuses a changed architecture, data or subset, naming the setting; other flags go through", () => {
  const run = Deno.makeTempDirSync();
  Deno.writeTextFileSync(
    runPaths(run).config,
    JSON.stringify({ ...DEFAULT_CONFIG, out: run, data: "a.csv", subset: 600 }),
  );
  const resume = (...flags: string[]) => parseTrainArgs(["--out", run, "--resume", ...flags]);
  assert.throws(() => resume("--arch", "medium"), /--resume: --arch medium differs from the run's arch \(compact/);
  assert.throws(() => resume("--data", "b.csv"), /--data b\.csv differs from the run's data \(a\.csv/);
  assert.throws(() => resume("--subset", "700"), /--subset 700 differs/);
  assert.equal(resume("--data", "./a.csv", "--epochs", "60").config.epochs, 60);
  assert.equal(resume("--arch", "compact").config.arch, "compact");
});

Deno.test("settings that cannot work together are refused in one line", () => {
  const out = join(Deno.makeTempDirSync(), "run");
  const train = (...flags: string[]) => parseTrainArgs([...flags, "--out", out]);
  assert.throws(() => train("--lr", "0.001", "--min-lr", "0.01"), /--min-lr 0\.01 is above --lr 0\.001/);
  assert.throws(() => train("--epochs", "10", "--average-from", "11"), /--average-from 11 is after the last epoch/);
  assert.throws(() => train("--workers", "64"), /--workers 64: this machine has \d+ cores/);
  assert.equal(train("--lr", "0.01", "--min-lr", "0.01").config.minLr, 0.01);
});
