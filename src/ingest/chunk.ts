import { decode, encode } from 'gpt-tokenizer';

export interface ChunkingOptions {
  maxTokens: number;
  overlapTokens: number;
}

/** OpenAI's `auto` chunking: 800-token chunks overlapping by 400. */
export const AUTO_CHUNKING: ChunkingOptions = { maxTokens: 800, overlapTokens: 400 };

/** Token windows cut across a multi-byte character decode to replacement characters at their edges. */
const EDGE_REPLACEMENTS = /^\ufffd+|\ufffd+$/g;

/**
 * Cuts `text` into windows of at most `maxTokens` tokens (the project's tokenizer), each starting
 * `maxTokens - overlapTokens` tokens after the one before, as OpenAI's static chunking does.
 */
export function chunkText(text: string, options: ChunkingOptions): { chunks: string[]; tokens: number } {
  const tokens = encode(text);
  const step = Math.max(1, options.maxTokens - options.overlapTokens);
  const chunks: string[] = [];
  for (let start = 0; start < tokens.length; start += step) {
    const chunk = decode(tokens.slice(start, start + options.maxTokens)).replace(EDGE_REPLACEMENTS, '');
    if (chunk.trim() !== '') chunks.push(chunk);
    if (start + options.maxTokens >= tokens.length) break;
  }
  return { chunks, tokens: tokens.length };
}
