/**
 * Where the data is looked for and how it is loaded: a FER2013 CSV (csv.ts)
 * or an image folder (folders.ts), bad rows reported or refused, and a
 * validation split made for sources without one.
 */
import { resolve } from "node:path";
import { type FerData, type LoadOptions, stratifiedSplit } from "./dataset.ts";
import { loadCsvCached } from "./csv.ts";
import { loadImageFolders } from "./folders.ts";
import { fer2013VotesData, ferPlusData, votesPath } from "./ferplus.ts";
import { displayPath, exists, PROJECT_ROOT, projectPath, workingPath } from "../util/paths.ts";
import { regularFile } from "../util/files.ts";

/** Where the data is looked for when no path is given, in order (relative to the project root). */
export const DEFAULT_DATA_PATHS = [
  "data/fer2013.csv",
  "data/fer2013.csv.gz",
  "../shared/datasets/fer2013/fer2013.csv.gz",
];

const WHERE_TO_GET = `FER2013 was not found. Get it from Kaggle's "Challenges in Representation Learning: ` +
  `Facial Expression Recognition Challenge" (file fer2013.csv, or icml_face_data.csv renamed), ` +
  `and put it at data/fer2013.csv (or .csv.gz), or pass --data PATH (a CSV or an image folder).`;

/** The data path to use: the flag if given, else the first default that exists. */
export function resolveDataPath(flag?: string): string {
  if (flag) {
    if (!exists(flag)) throw new Error(`--data ${flag}: no such file or folder. ${WHERE_TO_GET}`);
    return flag;
  }
  const found = DEFAULT_DATA_PATHS.map((p) => projectPath(p)).find(exists);
  if (!found) throw new Error(`${WHERE_TO_GET} Looked in: ${DEFAULT_DATA_PATHS.join(", ")}.`);
  return workingPath(found);
}

/**
 * The data a model's metadata records it was trained on (`training.data`,
 * relative to the project), when that is still there; else the default data.
 */
export function trainedDataPath(recorded?: string): string {
  const path = recorded && resolve(PROJECT_ROOT, recorded);
  return path && exists(path) ? path : resolveDataPath();
}

/**
 * Load a CSV (using and filling the parsed cache) or an image folder; with
 * `labels: "ferplus"`, the CSV's images relabelled with the FER+ votes
 * beside it; with `"fer2013-votes"`, its own labels softened by them.
 */
export async function loadDataset(path: string, options: LoadOptions = {}): Promise<FerData> {
  const stat = regularFile(path, true);
  const labels = options.labels ?? "fer2013";
  if (labels !== "fer2013" && stat.isDirectory) {
    throw new Error(`${path}: FER+ votes come with the FER2013 CSV (fer2013new.csv beside it), not an image folder`);
  }
  // Checked before the CSV is parsed, which takes a while.
  if (labels !== "fer2013") {
    try {
      regularFile(votesPath(path));
    } catch (error) {
      throw new Error(`--labels ${labels} needs FER+'s votes beside the CSV: ${(error as Error).message}`);
    }
  }
  let data = stat.isDirectory ? await loadImageFolders(path, options) : await loadCsvCached(path, options);
  data = { ...data, source: displayPath(resolve(path)) }; // named relative to the project in logs and records
  if (labels === "ferplus") data = ferPlusData(data, votesPath(path), options.labelMode ?? "majority");
  if (labels === "fer2013-votes") data = fer2013VotesData(data, votesPath(path));
  reportOrFailOnBadRows(data, options);
  if (data.splits.PublicTest.n === 0) {
    const { train, validation } = stratifiedSplit(data.splits.Training, 0.1, options.seed ?? 1);
    data.splits.Training = train;
    data.splits.PublicTest = validation;
    data.validationNote = "PublicTest: a stratified 10% of Training (the source has no validation split)";
  }
  return data;
}

function reportOrFailOnBadRows(data: FerData, options: LoadOptions) {
  if (data.skipped.length === 0) return;
  const shown = data.skipped.slice(0, 10).map((b) => `  line ${b.line}: ${b.reason}`).join("\n");
  const more = data.skipped.length > 10 ? `\n  ... and ${data.skipped.length - 10} more` : "";
  if (!options.skipBadRows) {
    throw new Error(
      `${data.source}: ${data.skipped.length} bad row(s):\n${shown}${more}\n` +
        `Fix them, or pass --skip-bad-rows to leave them out.`,
    );
  }
  options.onProgress?.(`${data.source}: skipped ${data.skipped.length} bad row(s):\n${shown}${more}`);
}
