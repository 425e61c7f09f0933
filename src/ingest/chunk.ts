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
export interface Chunk {
  text: string;
  /**
   * The part of `text` no other chunk holds (a character offset and length): consecutive chunks'
   * own parts tile the document, each cut in the middle of an overlap. Full-text search indexes
   * only these, so each word is indexed once however much the chunks overlap.
   */
  own: { from: number; length: number };
}

export function chunkText(text: string, options: ChunkingOptions): { chunks: Chunk[]; tokens: number } {
  const tokens = encode(text);
  const step = Math.max(1, options.maxTokens - options.overlapTokens);
  const halfOverlap = Math.floor((options.maxTokens - step) / 2);
  const chunks: Chunk[] = [];
  for (let start = 0; start < tokens.length; start += step) {
    const end = Math.min(tokens.length, start + options.maxTokens);
    const last = end >= tokens.length;
    const raw = decode(tokens.slice(start, end));
    const chunk = raw.replace(EDGE_REPLACEMENTS, '');
    if (chunk.trim() !== '') {
      // Characters the edge clean-up took off the front shift the offsets.
      const leading = raw.length - raw.replace(/^\ufffd+/, '').length;
      const ownStart = start === 0 ? start : start + halfOverlap;
      const ownEnd = last ? end : start + step + halfOverlap;
      const from = Math.max(0, decode(tokens.slice(start, ownStart)).length - leading);
      chunks.push({ text: chunk, own: { from, length: Math.min(chunk.length - from, decode(tokens.slice(ownStart, ownEnd)).length) } });
    }
    if (last) break;
  }
  return { chunks, tokens: tokens.length };
}
