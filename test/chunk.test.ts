/**
 * Chunking by tokens: windows of at most max tokens, `max - overlap` apart, and each chunk's own
 * part (what full-text search indexes) tiling the document exactly once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countTokens } from 'gpt-tokenizer';
import { AUTO_CHUNKING, chunkText } from '../src/ingest/chunk.js';

const words = (count: number, seed = 1) => {
  let state = seed;
  const out: string[] = [];
  for (let index = 0; index < count; index++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    out.push(['harbour', 'ship', 'tide', 'lantern', 'north', 'quay', 'rope', 'gull', 'storm', 'anchor'][state % 10]! + (state % 7));
  }
  return out.join(' ');
};

test('chunks hold at most max tokens, overlap their neighbours, and their own parts tile the text', () => {
  const text = words(5_000);
  for (const options of [AUTO_CHUNKING, { maxTokens: 100, overlapTokens: 0 }, { maxTokens: 300, overlapTokens: 150 }, { maxTokens: 101, overlapTokens: 33 }]) {
    const { chunks, tokens } = chunkText(text, options);
    assert.equal(tokens, countTokens(text));
    for (const chunk of chunks) assert.ok(countTokens(chunk.text) <= options.maxTokens + 1, `${countTokens(chunk.text)} tokens`);
    assert.equal(chunks.map((chunk) => chunk.text.slice(chunk.own.from, chunk.own.from + chunk.own.length)).join(''), text, JSON.stringify(options));
    if (options.overlapTokens > 0 && chunks.length > 1) {
      const tail = chunks[0]!.text.slice(-20);
      assert.ok(chunks[1]!.text.includes(tail), 'consecutive chunks overlap');
    }
  }
});

test('a text shorter than one chunk is one chunk, all of it its own', () => {
  const { chunks } = chunkText('A short note.', AUTO_CHUNKING);
  assert.deepEqual(chunks, [{ text: 'A short note.', own: { from: 0, length: 13 } }]);
});
