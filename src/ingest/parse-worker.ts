/**
 * Parsing and chunking off the main thread: PDF and DOCX text extraction and tokenising take tens
 * of milliseconds a file, which would otherwise hold up every request and stream this process
 * serves while files are indexed.
 */
import { parentPort } from 'node:worker_threads';
import { chunkText, type Chunk } from './chunk.js';
import { extractText, FileParseError } from './parse.js';

export interface ParseRequest {
  bytes: Uint8Array;
  filename: string;
  maxTokens: number;
  overlapTokens: number;
}

export type ParseReply =
  | { ok: true; text: string; chunks: Chunk[]; tokens: number }
  | { ok: false; parseError: { code: FileParseError['code']; message: string } | null; message: string };

parentPort?.on('message', async (request: ParseRequest) => {
  let reply: ParseReply;
  try {
    const text = await extractText(Buffer.from(request.bytes.buffer, request.bytes.byteOffset, request.bytes.byteLength), request.filename);
    const { chunks, tokens } = chunkText(text, { maxTokens: request.maxTokens, overlapTokens: request.overlapTokens });
    reply = { ok: true, text, chunks, tokens };
  } catch (error) {
    reply = {
      ok: false,
      parseError: error instanceof FileParseError ? { code: error.code, message: error.message } : null,
      message: error instanceof Error ? error.message : String(error),
    };
  }
  parentPort!.postMessage(reply);
});
