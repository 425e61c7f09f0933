import { countTokens } from 'gpt-tokenizer';
import { ProviderError, type EmbeddingModel } from '../providers/types.js';
import { sleep, type Semaphore } from '../async.js';

/** OpenAI's embeddings endpoint takes at most 2,048 inputs and 300,000 tokens a request; stay well inside. */
const MAX_INPUTS = 96;
const MAX_TOKENS = 200_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 8_000;
const RETRY_AFTER_CAP_MS = 60_000;

/** `texts` in requests of bounded size. */
function batches(texts: readonly string[]): string[][] {
  const out: string[][] = [];
  let current: string[] = [];
  let tokens = 0;
  for (const text of texts) {
    const cost = countTokens(text);
    if (current.length > 0 && (current.length >= MAX_INPUTS || tokens + cost > MAX_TOKENS)) {
      out.push(current);
      current = [];
      tokens = 0;
    }
    current.push(text);
    tokens += cost;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Embeds `texts` in batches, each retried with backoff (honouring Retry-After) on retryable
 * failures, through `gate` (which bounds the requests in flight across the process).
 */
export async function embedAll(
  model: EmbeddingModel,
  texts: readonly string[],
  options: { gate: Semaphore; maxRetries: number; signal?: AbortSignal },
): Promise<number[][]> {
  const results = await Promise.all(
    batches(texts).map((batch) =>
      options.gate.run(async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await model.embed(batch, { signal: options.signal });
          } catch (error) {
            if (!(error instanceof ProviderError) || !error.isRetryable || attempt >= options.maxRetries || options.signal?.aborted) throw error;
            const backoff = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
            await sleep(error.retryAfterMs !== null ? Math.min(RETRY_AFTER_CAP_MS, error.retryAfterMs) : backoff, options.signal);
          }
        }
      }),
    ),
  );
  return results.flat();
}
