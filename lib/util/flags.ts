/**
 * Command-line flags declared once per command: a table of name, type,
 * default and help text, from which come parsing, validation, `--help`, and
 * (for training) the command that reproduces a run.
 *
 *   const FLAGS = { epochs: { type: "integer", min: 1, default: 45, help: "epochs to train" } } as const;
 *   const { values } = parseFlags({ name: "train", summary: "Train a model." }, FLAGS, Deno.args);
 */

import { BACKEND_CHOICES } from "../backend/backend.ts";

/** One flag. Numbers are checked against `min`; strings against `choices`. */
export interface FlagSpec {
  type: "string" | "number" | "integer" | "boolean";
  help: string;
  default?: string | number | boolean;
  /** Smallest and largest value a number may take. */
  min?: number;
  max?: number;
  /** Values a string may take. */
  choices?: readonly string[];
  /** Placeholder of the value in help texts, e.g. DIR. */
  value?: string;
  /** May be given several times (strings only); the values come as an array. */
  multiple?: boolean;
  /** The settings field the flag sets, for commands whose flags fill a config object. */
  key?: string;
  /** A boolean flag that sets its `key` to false (`--no-augment`). */
  invert?: boolean;
}

export type FlagTable = Readonly<Record<string, FlagSpec>>;

type ValueOf<F extends FlagSpec> = F["type"] extends "boolean" ? boolean
  : F["type"] extends "string" ? (F["multiple"] extends true ? string[] : string)
  : number;

/** The --backend flag of the commands that run a model (predict, evaluate, serve, ...): declared once. */
export const BACKEND_FLAG = {
  type: "string",
  choices: BACKEND_CHOICES,
  default: "wasm",
  help: "tfjs backend: wasm, webgpu, or auto (WebGPU on a hardware GPU, else WASM)",
} as const satisfies FlagSpec;

/** Parsed values: flags with a default (and booleans, multiples) are always set; others may be undefined. */
export type FlagValues<T extends FlagTable> = {
  [K in keyof T]: T[K] extends { default: unknown } | { type: "boolean" } | { multiple: true } ? ValueOf<T[K]>
    : ValueOf<T[K]> | undefined;
};

/** The data flag every command that reads FER2013 shares. */
export const DATA_FLAG = {
  type: "string",
  value: "PATH",
  help: "FER2013 CSV, .csv.gz or image folder (default: found)",
} as const satisfies FlagSpec;

/** What a command needs besides its flags. */
export interface CommandInfo {
  name: string;
  summary: string;
  /** Positional arguments, for the usage line (e.g. "PHOTOS..."); none when absent. */
  positionals?: string;
  /** Defaults to show in --help for flags that take theirs from elsewhere (a settings object), by flag name. */
  shownDefaults?: Record<string, unknown>;
}

/** Edit distance, for suggesting the closest known flag. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The placeholder of a flag's value in help texts. */
function placeholder(spec: FlagSpec): string {
  if (spec.type === "boolean") return "";
  if (spec.choices && !spec.value) return ` ${spec.choices.join("|")}`;
  return ` ${spec.value ?? (spec.type === "string" ? "TEXT" : "N")}`;
}

/** The `--help` text of a command. */
export function helpText(command: CommandInfo, table: FlagTable): string {
  const rows = Object.entries(table).map(([name, spec]) => {
    const shown = spec.default ?? command.shownDefaults?.[name];
    const more = shown !== undefined && spec.type !== "boolean" ? ` (default ${shown})` : "";
    const choices = spec.choices && spec.value ? ` (${spec.choices.join(", ")})` : "";
    return [`  --${name}${placeholder(spec)}`, `${spec.help}${choices}${more}${spec.multiple ? "; repeatable" : ""}`];
  });
  const width = Math.max(...rows.map(([flag]) => flag.length), 10) + 2;
  return [
    `${command.summary}`,
    "",
    `usage: deno task ${command.name} [flags]${command.positionals ? ` ${command.positionals}` : ""}`,
    "",
    ...rows.map(([flag, help]) => flag.padEnd(width) + help),
    "  --help".padEnd(width) + "print this help",
  ].join("\n");
}

/** The value of one flag occurrence, checked against its spec. */
function convert(name: string, spec: FlagSpec, raw: string | true): string | number | boolean {
  if (spec.type === "boolean") {
    if (raw !== true) throw new Error(`--${name} takes no value (got ${raw})`);
    return true;
  }
  if (raw === true || raw === "") throw new Error(`--${name} needs a value${placeholder(spec)}`);
  if (spec.type === "string") {
    if (spec.choices && !spec.choices.includes(raw)) {
      throw new Error(`--${name} ${raw}: choose one of ${spec.choices.join(", ")}`);
    }
    return raw;
  }
  const n = Number(raw);
  const whole = spec.type === "integer";
  if (!Number.isFinite(n) || (whole && !Number.isInteger(n)) || raw.trim() === "") {
    throw new Error(`--${name} ${raw}: expected a ${whole ? "whole " : ""}number`);
  }
  if (spec.min !== undefined && n < spec.min) throw new Error(`--${name} ${raw}: must be at least ${spec.min}`);
  if (spec.max !== undefined && n > spec.max) throw new Error(`--${name} ${raw}: must be at most ${spec.max}`);
  return n;
}

/**
 * Parse `args` against `table`: `--name value`, `--name=value`, booleans as
 * `--name`. Unknown flags are refused with the closest known one named;
 * `--help` prints the help text and exits. `given` holds the flags that
 * were on the command line.
 */
export function parseFlags<T extends FlagTable>(
  command: CommandInfo,
  table: T,
  args: string[],
): { values: FlagValues<T>; positionals: string[]; given: Set<string> } {
  const values: Record<string, unknown> = {};
  const given = new Set<string>();
  const positionals: string[] = [];
  for (const [name, spec] of Object.entries(table)) {
    if (spec.multiple) values[name] = [];
    else if (spec.type === "boolean") values[name] = spec.default ?? false;
    else if (spec.default !== undefined) values[name] = spec.default;
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(helpText(command, table));
      Deno.exit(0);
    }
    if (!arg.startsWith("--") || arg === "--") {
      if (!command.positionals) throw new Error(`unexpected argument ${arg}; see --help`);
      positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const spec = table[name];
    if (!spec) {
      const known = Object.keys(table);
      const closest = known.sort((a, b) => distance(name, a) - distance(name, b))[0];
      throw new Error(`unknown flag --${name}${closest ? `; did you mean --${closest}?` : ""} (see --help)`);
    }
    let raw: string | true = true;
    if (inline !== undefined) raw = inline;
    else if (spec.type !== "boolean") {
      if (i + 1 >= args.length) throw new Error(`--${name} needs a value${placeholder(spec)}`);
      raw = args[++i];
    }
    const value = convert(name, spec, raw);
    given.add(name);
    if (spec.multiple) (values[name] as unknown[]).push(value);
    else values[name] = value;
  }
  return { values: values as FlagValues<T>, positionals, given };
}

/**
 * The command-line flags for an options object, so that a function of the
 * package (`train({ epochs: 5 })`) goes through the command's own parser
 * and checks: each option is a flag's name in camelCase (`batchSize` for
 * `--batch-size`) or the setting its `key` names; `true` gives a boolean
 * flag, `false` its inverted one (`augment: false` is `--no-augment`).
 * An option no flag takes is refused in one line listing those there are.
 */
export function flagArgs(table: FlagTable, options: Record<string, unknown>): string[] {
  const args: string[] = [];
  const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const found = Object.entries(table).find(([flag, spec]) => camel(flag) === name || (spec.key === name));
    if (!found) {
      const known = Object.entries(table).map(([flag, spec]) => spec.invert ? spec.key : camel(flag));
      throw new Error(`option "${name}": not one of ${[...new Set(known)].join(", ")}`);
    }
    const [flag, spec] = found;
    if (spec.type === "boolean") {
      if (typeof value !== "boolean") throw new Error(`option "${name}": expected true or false, got ${value}`);
      if (value === !spec.invert) args.push(`--${flag}`);
    } else {
      for (const each of spec.multiple && Array.isArray(value) ? value : [value]) args.push(`--${flag}`, String(each));
    }
  }
  return args;
}
