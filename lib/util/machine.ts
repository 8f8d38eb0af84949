/** What the machine is and is doing: its description, load, CPU use by other processes, this process's memory (Linux /proc). */

/** The 1-minute load average, or undefined where /proc/loadavg is missing. */
export function loadAverage(): number | undefined {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of all cores since boot, from /proc/stat. */
function cpuJiffies(): { busy: number; total: number } {
  const [, ...fields] = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/);
  const values = fields.map(Number);
  const idle = values[3] + (values[4] ?? 0); // idle + iowait
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Cores kept busy over the next `ms` milliseconds (0 = idle, 2 = two cores
 * flat out), measured while this process sleeps, so it counts everything
 * else running; undefined where /proc/stat is missing.
 */
export async function busyCores(ms = 2000): Promise<number | undefined> {
  try {
    const before = cpuJiffies();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const after = cpuJiffies();
    const cores = navigator.hardwareConcurrency || 1;
    return ((after.busy - before.busy) / Math.max(1, after.total - before.total)) * cores;
  } catch {
    return undefined;
  }
}

/** Peak resident memory of this process (all its workers) so far, in MiB (VmHWM), or undefined. */
export function peakRssMiB(): number | undefined {
  try {
    const line = Deno.readTextFileSync("/proc/self/status").split("\n").find((l) => l.startsWith("VmHWM:"));
    return line ? Math.round(Number(line.split(/\s+/)[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** The machine in one line for records: cores, CPU model, memory, GPU adapters aside (e.g. "2-core AMD EPYC 7B13, 24 GiB"). */
export function machineDescription(): string {
  const cores = navigator.hardwareConcurrency || 1;
  let cpu: string = Deno.build.arch, memory = "";
  try {
    cpu = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1].trim() ?? cpu;
  } catch { /* no /proc: the architecture alone */ }
  try {
    memory = `, ${Math.round(Deno.systemMemoryInfo().total / 2 ** 30)} GiB`;
  } catch { /* not available here */ }
  return `${cores}-core ${cpu}${memory}`;
}

/**
 * The machine's load before a benchmark: other processes' busy cores over
 * two seconds; more than a quarter of a core is refused in one line (timings
 * then would not be results) unless `allowBusy`, which marks them instead.
 */
export async function idleForTimings(allowBusy: boolean): Promise<{ busy?: number; machineBusy: boolean }> {
  const busy = await busyCores();
  const machineBusy = busy !== undefined && busy > 0.25;
  if (machineBusy && !allowBusy) {
    throw new Error(
      `the machine is busy (other processes kept ${busy.toFixed(2)} cores busy; load average ${loadAverage()}): ` +
        "timings now would not be results. Stop them, or pass --allow-busy to mark the figures as taken under load",
    );
  }
  return { busy, machineBusy };
}

/**
 * Seconds per call of each of `runs`, timed side by side: one warm-up call
 * each, then `rounds` rounds in which the runs take turns, each timed over
 * whole calls lasting at least `minSeconds`; each run's figure is its median
 * round, so a drift in the machine's speed falls on all of them alike.
 */
export async function timeSideBySide(
  runs: Record<string, () => Promise<unknown>>,
  rounds = 5,
  minSeconds = 0.5,
): Promise<Record<string, number>> {
  for (const run of Object.values(runs)) await run();
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(runs).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of Object.entries(runs)) {
      const start = performance.now();
      let calls = 0, elapsed = 0;
      do {
        await run();
        calls++;
        elapsed = (performance.now() - start) / 1000;
      } while (elapsed < minSeconds);
      times[name].push(elapsed / calls);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([name, t]) => [name, t.sort((a, b) => a - b)[t.length >> 1]]));
}
