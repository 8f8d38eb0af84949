/** A run's per-epoch record, as the training loop makes it and history.csv stores it. */

/** One row of `history.csv`. */
export interface EpochRecord {
  /** The epoch, from 1. */
  epoch: number;
  /** Mean training loss over the epoch. */
  loss: number;
  /** Training accuracy over the epoch (augmented images). */
  accuracy: number;
  /** Loss on the validation split (PublicTest). */
  val_loss: number;
  /** Accuracy on the validation split (PublicTest). */
  val_accuracy: number;
  /** The learning rate the epoch started at. */
  lr: number;
  /** Wall time of the epoch, validation included. */
  seconds: number;
  /** Resident memory of the training process (all workers) at the epoch's end, MiB; absent in older runs. */
  rss_mib?: number;
  /** Accuracy on the `--watch` face folder, scored as PublicTest is; absent without one. */
  watch_accuracy?: number;
}

/** history.csv text for a list of epochs (watch_accuracy only when some epoch has it). */
export function historyCsv(history: EpochRecord[]): string {
  const watched = history.some((h) => h.watch_accuracy !== undefined);
  const columns = [
    ...["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "rss_mib"] as const,
    ...(watched ? ["watch_accuracy"] as const : []),
  ];
  return [columns.join(","), ...history.map((h) => columns.map((c) => h[c] ?? "").join(","))].join("\n") + "\n";
}

/** Parse history.csv back into records. */
export function parseHistoryCsv(text: string): EpochRecord[] {
  const [header, ...lines] = text.trim().split("\n");
  const columns = header.split(",");
  return lines.filter((l) => l.trim()).map((line) => {
    const cells = line.split(",");
    // An empty cell is a column the epoch did not record (e.g. rss_mib in older runs).
    return Object.fromEntries(
      columns.flatMap((c, i) => (cells[i] === undefined || cells[i] === "" ? [] : [[c, Number(cells[i])]])),
    ) as unknown as EpochRecord;
  });
}

/** The epoch with the highest PublicTest accuracy (the first of equals). */
export function bestEpoch(history: EpochRecord[]): EpochRecord {
  return history.reduce((a, b) => (b.val_accuracy > a.val_accuracy ? b : a));
}
