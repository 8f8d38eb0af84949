/**
 * FER+ (Barsoum et al. 2016): FER2013's images relabelled by ten annotators
 * each, with an eighth class, contempt. The votes file (`fer2013new.csv`,
 * the same rows in the same order as fer2013.csv) becomes labels as the
 * paper's reference code makes them: a single vote for a class is dropped
 * as an outlier; `majority` needs more than half of the remaining votes;
 * `probability` and `crossentropy` keep the top classes (at most three)
 * that cover at least 75% of them, as a distribution (`probability` draws
 * each step's label from it, `crossentropy` trains on it); an image whose
 * answer is "unknown" or "not a face" is left out. PublicTest and
 * PrivateTest always get majority labels. `fer2013VotesData` keeps FER2013's
 * own seven classes and labels and only softens its training targets with
 * the votes.
 */
import { basename, dirname, join } from "node:path";
import { EMOTIONS, FERPLUS_CLASSES, type Split, SPLITS } from "./labels.ts";
import { type FaceSet, type FerData, type LoadOptions, PIXELS } from "./dataset.ts";
import { exists } from "../util/paths.ts";

/** How FER+ votes become training targets. */
export const LABEL_MODES = ["majority", "probability", "crossentropy"] as const;
export type LabelMode = NonNullable<LoadOptions["labelMode"]>;

/** The votes file's vote columns, in its order, as FERPLUS_CLASSES names ("unknown", and "NF": not a face). */
const VOTE_COLUMNS = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown", "NF"];

/** The votes file beside a FER2013 CSV. */
export function votesPath(fer2013Csv: string): string {
  return join(dirname(fer2013Csv), "fer2013new.csv");
}

/**
 * One image's votes (VOTE_COLUMNS order) as a distribution over
 * FERPLUS_CLASSES, or undefined when the image is left out (no majority in
 * `majority` mode, or "unknown"/"not a face" the most voted answer).
 */
export function ferPlusTarget(votes: number[], mode: LabelMode): Float32Array | undefined {
  const kept = votes.map((v) => (v > 1 ? v : 0));
  const total = kept.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  const order = kept.map((v, i) => [v, i]).filter(([v]) => v > 0).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  if (order[0][1] >= 8) return undefined; // unknown or not a face
  if (mode === "majority" && !(order[0][0] > total / 2)) return undefined;
  const chosen = mode === "majority" ? order.slice(0, 1) : [];
  for (let sum = 0; mode !== "majority" && sum < 0.75 * total && chosen.length < 3;) {
    const [v, i] = order[chosen.length];
    chosen.push([v, i]);
    sum += v;
  }
  const target = new Float32Array(FERPLUS_CLASSES.length);
  const emotions = chosen.filter(([, i]) => i < 8);
  const mass = emotions.reduce((sum, [v]) => sum + v, 0);
  for (const [v, i] of emotions) target[FERPLUS_CLASSES.indexOf(VOTE_COLUMNS[i] as never)] = v / mass;
  return target;
}

/** The vote rows of a votes file, split by split, in file order. */
export function readVotes(path: string): Record<Split, number[][]> {
  const byUsage = Object.fromEntries(SPLITS.map((s) => [s, [] as number[][]])) as Record<Split, number[][]>;
  const lines = Deno.readTextFileSync(path).split(/\r?\n/).filter((line) => line.trim());
  const header = lines[0]?.split(",").map((h) => h.trim());
  if (header?.[0] !== "Usage" || header.length !== 12) {
    throw new Error(`${path}: line 1: expected FER+'s header Usage,Image name,neutral,...,unknown,NF`);
  }
  lines.slice(1).forEach((line, i) => {
    const cells = line.split(",");
    const votes = cells.slice(2).map(Number);
    const usage = cells[0] as Split;
    if (!SPLITS.includes(usage) || votes.length !== 10 || !votes.every((v) => Number.isInteger(v) && v >= 0)) {
      throw new Error(`${path}: line ${i + 2}: expected a split and ten vote counts, found "${line.slice(0, 80)}"`);
    }
    byUsage[usage].push(votes);
  });
  return byUsage;
}

/**
 * FER2013 `data` (loaded from its CSV, every row kept) relabelled with the
 * FER+ votes in `votesFile`: Training as `mode` says, the test splits by
 * majority; images left out as the module's comment says.
 */
export function ferPlusData(data: FerData, votesFile: string, mode: LabelMode): FerData {
  checkVotesFile(data, votesFile);
  const votes = readVotes(votesFile);
  const splits = {} as Record<Split, FaceSet>;
  for (const split of SPLITS) {
    const set = data.splits[split];
    if (votes[split].length !== set.n) {
      throw new Error(`${votesFile}: ${votes[split].length} ${split} rows, but ${data.source} has ${set.n}`);
    }
    const splitMode = split === "Training" ? mode : "majority";
    const rows: number[] = [], targets: Float32Array[] = [];
    votes[split].forEach((v, row) => {
      const target = ferPlusTarget(v, splitMode);
      if (target) rows.push(row), targets.push(target);
    });
    const pixels = new Uint8Array(rows.length * PIXELS);
    rows.forEach((row, i) => pixels.set(set.pixels.subarray(row * PIXELS, (row + 1) * PIXELS), i * PIXELS));
    const labels = Uint8Array.from(targets, (t) => t.indexOf(Math.max(...t)));
    const soft = new Float32Array(rows.length * FERPLUS_CLASSES.length);
    targets.forEach((t, i) => soft.set(t, i * FERPLUS_CLASSES.length));
    splits[split] = splitMode === "majority"
      ? { n: rows.length, pixels, labels }
      : { n: rows.length, pixels, labels, targets: soft, sampleTargets: splitMode === "probability" };
  }
  return { ...data, source: `${data.source} + ${votesFile} (${mode})`, labels: FERPLUS_CLASSES, splits };
}

/** The share of the FER+ vote distribution in a `fer2013-votes` training target; FER2013's own label has the rest. */
export const VOTES_SHARE = 0.5;

/**
 * FER2013 `data` with its own classes and labels, each Training image's
 * target softened: VOTES_SHARE of it the FER+ vote distribution
 * (`crossentropy` mode, contempt dropped, onto the seven classes), the rest
 * its FER2013 label; an image with no usable votes keeps its label alone.
 * The test splits are untouched, so results stay comparable with FER2013's.
 */
export function fer2013VotesData(data: FerData, votesFile: string): FerData {
  checkVotesFile(data, votesFile);
  const votes = readVotes(votesFile).Training;
  const set = data.splits.Training;
  if (votes.length !== set.n) {
    throw new Error(`${votesFile}: ${votes.length} Training rows, but ${data.source} has ${set.n}`);
  }
  const classes = EMOTIONS.length;
  const targets = new Float32Array(set.n * classes);
  votes.forEach((v, row) => {
    const at = row * classes;
    const soft = ferPlusTarget(v, "crossentropy")?.subarray(0, classes);
    const mass = soft ? soft.reduce((a, b) => a + b, 0) : 0;
    const share = mass > 0 ? VOTES_SHARE : 0;
    for (let k = 0; k < classes && share; k++) targets[at + k] = (share * soft![k]) / mass;
    targets[at + set.labels[row]] += 1 - share;
  });
  const training = { ...set, targets, sampleTargets: false };
  return {
    ...data,
    source: `${data.source} + ${votesFile} (FER2013 labels softened by the votes)`,
    splits: { ...data.splits, Training: training },
  };
}

/** Refuse a missing votes file, or a FER2013 load that dropped rows (the votes pair with rows by position). */
function checkVotesFile(data: FerData, votesFile: string): void {
  if (!exists(votesFile)) {
    throw new Error(`${votesFile}: the FER+ votes file is missing (fer2013new.csv, beside ${basename(data.source)})`);
  }
  if (data.skipped.length) {
    throw new Error(
      `${data.source}: FER+ needs every FER2013 row to pair with its votes, but ${data.skipped.length} were bad`,
    );
  }
}
