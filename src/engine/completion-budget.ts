import { countTokens, decode, encode } from 'gpt-tokenizer';

const MAX_STEPS_BACK = 4;

/**
 * A model call's `max_completion_tokens`, enforced here for upstreams that ignore the limit they are
 * sent. Counting the whole answer on every delta would cost O(n²); instead each delta's own count is
 * added to an estimate (tokens merge across delta boundaries, so in practice it overstates), and the
 * answer is counted exactly only once the estimate passes the limit.
 */
export class CompletionBudget {
  private estimate = 0;

  constructor(private readonly limit: number) {}

  /** Whether `piece` takes the answer past the limit; `exactAfter` counts the answer with it, when needed. */
  exceeds(piece: string, exactAfter: () => number): boolean {
    this.estimate += countTokens(piece);
    if (this.estimate <= this.limit) return false;
    this.estimate = exactAfter();
    return this.estimate > this.limit;
  }

  /**
   * The part of `delta` that fits after `text` when the answer is that text alone (text streams
   * before any tool call): the longest token prefix of both within the limit, less `text`.
   */
  fit(text: string, delta: string): string {
    const whole = text + delta;
    const tokens = encode(whole);
    // A token can end inside a multi-byte character (a UTF-8 character is at most 4 bytes, a token
    // at least 1), so a cut that does not decode to a prefix moves back a few tokens; text that no
    // cut reproduces (an unpaired surrogate) keeps none of the delta rather than search further.
    const longest = Math.min(tokens.length, this.limit);
    for (let keep = longest; keep > 0 && keep > longest - MAX_STEPS_BACK; keep--) {
      const prefix = decode(tokens.slice(0, keep));
      if (whole.startsWith(prefix)) return prefix.length > text.length ? prefix.slice(text.length) : '';
    }
    return '';
  }
}

/** Tokens of a model call's output: its text, and the names and arguments of its tool calls. */
export function completionTokens(text: string, calls: Iterable<{ name: string; arguments: string }>): number {
  let total = countTokens(text);
  for (const call of calls) total += countTokens(call.name) + countTokens(call.arguments);
  return total;
}
