/** `deno task average --run DIR [--from EPOCH]`: average a run's per-epoch weights into DIR/averaged/ (SWA). */
import { initBackend } from "../backend/backend.ts";
import { loadDataset, resolveDataPath } from "../data/load.ts";
import { averageRun } from "../train/average.ts";
import { lockRun, runPaths, snapshotEpochs } from "../train/run_folder.ts";
import { type FlagTable, parseFlags } from "../util/flags.ts";
import { runCommand } from "./run.ts";
import { readJson } from "../util/files.ts";

export const AVERAGE_FLAGS = {
  run: { type: "string", value: "DIR", help: "a run folder trained with --average-from (it has snapshots/)" },
  from: { type: "integer", min: 1, help: "first epoch to average (default: the run's --average-from)" },
  data: { type: "string", value: "PATH", help: "FER2013 CSV, .csv.gz or image folder (default: the run's)" },
} as const satisfies FlagTable;

async function main(args: string[]) {
  const { values } = parseFlags(
    { name: "average", summary: "Average a run's per-epoch weights (SWA) and score the average on PublicTest." },
    AVERAGE_FLAGS,
    args,
  );
  if (!values.run) throw new Error("--run DIR is required (see --help)");
  const config = readJson<{ averageFrom?: number; data?: string }>(runPaths(values.run).config);
  const from = values.from ?? config.averageFrom ?? snapshotEpochs(values.run)[0];
  if (from === undefined) throw new Error(`${values.run} holds no per-epoch snapshots to average`);
  await initBackend();
  const data = await loadDataset(resolveDataPath(values.data ?? config.data), { onProgress: console.error });
  const release = lockRun(values.run, console.error);
  try {
    const result = await averageRun(values.run, from, data.splits.Training, data.splits.PublicTest, console.log);
    console.log(`wrote ${result.dir}`);
  } finally {
    release();
  }
}

if (import.meta.main) await runCommand(main);
