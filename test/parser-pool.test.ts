/**
 * Parsing and chunking in worker threads: the same text and chunks as on the main thread, parse
 * errors arrive as FileParseError with their code, and files queue when every worker is busy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParserPool } from '../src/ingest/parser-pool.js';
import { chunkText } from '../src/ingest/chunk.js';
import { FileParseError } from '../src/ingest/parse.js';
import { makePdf } from './helpers/documents.js';

test('the worker pool parses and chunks as the main thread would, reports parse errors by code, and queues files', async () => {
  const pool = new ParserPool(1);
  try {
    const words = Array.from({ length: 3_000 }, (_, index) => `word${index % 997}`).join(' ');
    const options = { maxTokens: 200, overlapTokens: 50 };
    const parsed = await pool.parse(Buffer.from(words), 'notes.txt', options);
    assert.equal(parsed.text, words);
    assert.deepEqual(parsed.chunks, chunkText(words, options).chunks);
    assert.equal(parsed.tokens, chunkText(words, options).tokens);

    const pdf = await makePdf(['Page one says hello.', 'Page two says the code is 7.']);
    const results = await Promise.all([pool.parse(pdf, 'a.pdf', options), pool.parse(Buffer.from('plain'), 'b.md', options), pool.parse(pdf, 'c.pdf', options)]);
    assert.match(results[0].text, /the code is 7/);
    assert.equal(results[1].text, 'plain');
    assert.equal(results[2].text, results[0].text);

    await assert.rejects(pool.parse(Buffer.from('%PDF-1.4 not really'), 'broken.pdf', options), (error: unknown) => error instanceof FileParseError && error.code === 'invalid_file');
    await assert.rejects(pool.parse(Buffer.from([0, 1, 2]), 'image.bin', options), (error: unknown) => error instanceof FileParseError && error.code === 'unsupported_file');
    assert.equal((await pool.parse(Buffer.from('still working'), 'after.txt', options)).text, 'still working');
  } finally {
    await pool.close();
  }
});
