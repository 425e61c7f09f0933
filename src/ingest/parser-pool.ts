import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Chunk, ChunkingOptions } from './chunk.js';
import { FileParseError } from './parse.js';
import type { ParseReply, ParseRequest } from './parse-worker.js';

const WORKER_URL = new URL('./parse-worker.js', import.meta.url);

/**
 * Worker threads that parse and chunk files (parse-worker.ts), one file at a time each, files
 * spread over them by queue. A worker that dies is replaced; the file it had fails with its error.
 */
export class ParserPool {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly queue: { request: ParseRequest; resolve: (reply: ParseReply) => void }[] = [];
  private readonly waiting = new Map<Worker, (reply: ParseReply) => void>();
  private closed = false;

  constructor(private readonly size = Math.max(1, Math.min(4, availableParallelism() - 1))) {}

  /** The document's text and chunks; a FileParseError for what cannot be read. */
  async parse(bytes: Buffer, filename: string, options: ChunkingOptions): Promise<{ text: string; chunks: Chunk[]; tokens: number }> {
    const reply = await new Promise<ParseReply>((resolve) => {
      this.queue.push({ request: { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), filename, maxTokens: options.maxTokens, overlapTokens: options.overlapTokens }, resolve });
      this.dispatch();
    });
    if (reply.ok) return { text: reply.text, chunks: reply.chunks, tokens: reply.tokens };
    if (reply.parseError) throw new FileParseError(reply.parseError.code, reply.parseError.message);
    throw new Error(reply.message);
  }

  private dispatch() {
    while (this.queue.length > 0 && !this.closed) {
      const worker = this.idle.pop() ?? (this.all.size < this.size ? this.spawn() : undefined);
      if (!worker) return;
      const { request, resolve } = this.queue.shift()!;
      // One file per worker at a time: its next reply is this file's.
      this.waiting.set(worker, resolve);
      worker.postMessage(request);
    }
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_URL);
    worker.unref();
    this.all.add(worker);
    worker.on('message', (reply: ParseReply) => {
      const resolve = this.waiting.get(worker);
      this.waiting.delete(worker);
      this.idle.push(worker);
      resolve?.(reply);
      this.dispatch();
    });
    const gone = (message: string) => {
      this.all.delete(worker);
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
      const resolve = this.waiting.get(worker);
      this.waiting.delete(worker);
      resolve?.({ ok: false, parseError: null, message });
      this.dispatch();
    };
    worker.on('error', (error) => gone(`the parser failed: ${error.message}`));
    worker.on('exit', (code) => gone(`the parser stopped (exit code ${code})`));
    return worker;
  }

  async close() {
    this.closed = true;
    const workers = [...this.all];
    this.all.clear();
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}
