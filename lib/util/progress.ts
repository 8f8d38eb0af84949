/** A one-line progress bar for long loops: done/total, fields, rate and ETA. */

/** Seconds as "1m05s" / "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * Redraws one line on a terminal; elsewhere (logs, notebooks) prints a line
 * at every 10% so output stays readable.
 */
export class ProgressBar {
  private readonly start = performance.now();
  private lastDecile = -1;
  private readonly interactive: boolean;

  constructor(
    private readonly total: number,
    private readonly label: string,
    private readonly unit = "img",
    private readonly write: (text: string) => void = (t) => Deno.stderr.writeSync(new TextEncoder().encode(t)),
  ) {
    this.interactive = Deno.stderr.isTerminal();
  }

  /** The bar's text for `done` items with extra `fields` (e.g. loss). */
  line(done: number, fields: Record<string, string> = {}): string {
    const elapsed = (performance.now() - this.start) / 1000;
    const rate = done / Math.max(elapsed, 1e-9);
    const width = 24;
    const filled = Math.round((width * done) / Math.max(this.total, 1));
    const bar = "#".repeat(filled) + ".".repeat(width - filled);
    const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join("  ");
    const eta = done < this.total ? `ETA ${formatDuration((this.total - done) / rate)}` : formatDuration(elapsed);
    return `${this.label} [${bar}] ${done}/${this.total}  ${extra}  ${rate.toFixed(0)} ${this.unit}/s  ${eta}`;
  }

  update(done: number, fields: Record<string, string> = {}): void {
    if (this.interactive) {
      this.write(`\r${this.line(done, fields)}\x1b[K`);
      if (done >= this.total) this.write("\n");
      return;
    }
    const decile = Math.floor((10 * done) / Math.max(this.total, 1));
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.write(`${this.line(done, fields)}\n`);
    }
  }
}
