/** What every provider client does with an upstream's answer: when to retry, and how to name a failure. */

/** The longest delay a Node timer takes (about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * `retry-after-ms` (OpenAI's) first, then `Retry-After` in seconds or as an HTTP date; `header`
 * reads one response header by its lower-case name.
 */
export function retryAfterMs(header: (name: string) => string | null | undefined): number | null {
  const milliseconds = Number(header('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(milliseconds) && milliseconds >= 0) return Math.round(milliseconds);
  const value = header('retry-after')?.trim();
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** An error's message with its cause's (and the cause's code), as fetch failures hide the reason there. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause : null;
  const code = cause && 'code' in cause && typeof cause.code === 'string' ? cause.code : null;
  if (cause && cause.message && cause.message !== error.message) {
    return `${error.message} (${code && !cause.message.includes(code) ? `${code}: ` : ''}${cause.message})`;
  }
  return error.message;
}
