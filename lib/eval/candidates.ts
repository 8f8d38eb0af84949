/**
 * Candidates for the default model, side by side: each saved model scored
 * on the sets that may choose it (PublicTest and CK+48's faces) at each
 * prior strength `ship --balance --balance-strength S` could ship it with
 * (the same `balanceClasses` as `evaluate --prior-shift S`), and the
 * per-class changes between two reports. Notebook 07 shows them.
 */
import type { FaceSet } from "../data/dataset.ts";
import { loadModel } from "../model/model_io.ts";
import { displayPath } from "../util/paths.ts";
import { balanceClasses, trainingPrior } from "./calibration.ts";
import { evaluateSet } from "./evaluate.ts";
import type { Report } from "./metrics.ts";

/** A set that scores candidates, by name (PublicTest, CK+48). */
export interface NamedSet {
  name: string;
  set: FaceSet;
}

/** One candidate at one prior strength: its report on each set, by the set's name. */
export interface CandidateScore {
  model: string;
  strength: number;
  reports: Record<string, Report>;
}

/**
 * Score the model saved in `dir` on every set at each prior strength (0 is
 * the model as saved, 1 balanced, below 0 back toward its training prior);
 * the sets' labels index `labels`, which must be the model's classes.
 */
export async function scoreCandidate(
  dir: string,
  strengths: readonly number[],
  sets: readonly NamedSet[],
  labels: readonly string[],
): Promise<CandidateScore[]> {
  const bad = strengths.find((s) => !Number.isFinite(s));
  if (bad !== undefined) throw new Error(`scoreCandidate: a prior strength must be a number (got ${bad})`);
  const { model, metadata } = await loadModel(dir, { fold: true });
  try {
    if (metadata.labels.join() !== labels.join()) {
      throw new Error(
        `${displayPath(dir)}: its classes (${metadata.labels.join(", ")}) are not the sets' (${labels.join(", ")})`,
      );
    }
    const prior = await trainingPrior(metadata);
    const scores: CandidateScore[] = [];
    let applied = 0;
    for (const strength of strengths) {
      // The shifts add up: move from the strength applied so far to this one.
      balanceClasses(model, prior, strength - applied);
      applied = strength;
      const reports: Record<string, Report> = {};
      for (const { name, set } of sets) reports[name] = await evaluateSet(model, set, name, labels);
      scores.push({ model: displayPath(dir), strength, reports });
    }
    return scores;
  } finally {
    model.dispose();
  }
}

/** One class's recall in two reports of the same images, in percent, and the change. */
export interface ClassChange {
  class: string;
  images: number;
  before: number;
  after: number;
  change: number;
}

/**
 * Each class's recall before and after (two reports on the same images), and
 * the change, in points; classes without images are left out.
 */
export function classChanges(before: Report, after: Report): ClassChange[] {
  if (before.labels.join() !== after.labels.join() || before.n !== after.n) {
    throw new Error(`classChanges: the reports are not of the same images (${before.split}, ${after.split})`);
  }
  return before.labels.filter((name) => before.per_class[name].support > 0).map((name) => {
    const [b, a] = [before.per_class[name].recall, after.per_class[name].recall].map((r) => +(100 * r).toFixed(2));
    return { class: name, images: before.per_class[name].support, before: b, after: a, change: +(a - b).toFixed(2) };
  });
}
