/**
 * What the browser pages share: the status line under the title, which
 * shows progress and errors (tests read `body[data-state]`).
 */
const status = document.getElementById("status");

/** Show one line of progress, or an error in red. */
export function say(text, isError = false) {
  status.textContent = text;
  status.className = isError ? "error" : "";
  document.body.dataset.state = isError ? "error" : "ok";
}
