/** The shared ending of every command: errors become one `error:` line and an exit status. */

/**
 * Run a command's `main` on Deno.args; a returned number is the exit status,
 * a thrown error exits with `errorStatus`. Under `deno task`, which runs in
 * the project root, the command first returns to the folder it was typed in
 * (INIT_CWD), so relative paths mean what the user meant.
 */
export async function runCommand(
  main: (args: string[]) => Promise<number | void> | number | void,
  errorStatus = 1,
): Promise<void> {
  try {
    const typedIn = Deno.env.get("INIT_CWD");
    if (typedIn) Deno.chdir(typedIn);
    const status = await main(Deno.args);
    if (typeof status === "number") Deno.exit(status);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    Deno.exit(errorStatus);
  }
}
