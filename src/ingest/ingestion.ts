import { randomUUID } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import type { AssistdSettings } from '../config.js';
import { Semaphore } from '../async.js';
import type { ModelRegistry } from '../providers/registry.js';
import { ProviderError } from '../providers/types.js';
import type { Storage } from '../storage/index.js';
import type { PendingFile } from '../storage/vector-stores.js';
import { AUTO_CHUNKING } from './chunk.js';
import { ParserPool } from './parser-pool.js';
import { embedAll } from './embed.js';
import { FileParseError } from './parse.js';
import { ensureVectorIndex } from './search.js';

const POLL_MS = 1_000;
/** Files indexed at once by one process: enough that parsing here and writing in the database overlap. */
const CONCURRENT_FILES = 4;
/** Embedding requests in flight at once from one process. */
const CONCURRENT_EMBEDDINGS = 4;
/** A file whose indexing broke this often (crashes, upstream failures) fails for good. */
const MAX_ATTEMPTS = 3;
const RETRY_AFTER_MS = 5_000;
/** OpenAI's limit for a file in a vector store. */
const MAX_FILE_TOKENS = 5_000_000;

export interface IngestionDeps {
  storage: Storage;
  models: ModelRegistry;
  settings: AssistdSettings;
  log: { warn(object: unknown, message?: string): void; error(object: unknown, message?: string): void };
}

/**
 * Indexes files added to vector stores, in the background: parse → chunk → embed → store, one
 * file at a time per slot. Each file is claimed with a lease (kept alive while it is worked on),
 * so a crash leaves it for any process to take up again, and its chunks are written in the same
 * transaction that marks it completed, so nothing is ever indexed twice.
 */
export class IngestionService {
  readonly owner = randomUUID();
  private readonly working = new Map<string, { file: PendingFile; controller: AbortController; done: Promise<void> }>();
  private readonly gate = new Semaphore(CONCURRENT_EMBEDDINGS);
  private readonly parsers = new ParserPool();
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private polling = false;
  private pollAgain = false;
  private closing = false;

  /** As a run's (assistd_settings.run_lease_seconds): another process takes a dead one's file up that long after its last heartbeat. */
  private readonly leaseMs: number;

  constructor(private readonly deps: IngestionDeps) {
    this.leaseMs = Math.max(1, deps.settings.runLeaseSeconds) * 1000;
  }

  private get stores() {
    return this.deps.storage.vectorStores;
  }

  /** Starts taking work. An embedded store is this process's alone: every lease in it is a dead process's. */
  async start(options: { recoverAll: boolean }): Promise<void> {
    if (options.recoverAll) await this.stores.releaseAll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
    // Renewed three times a lease, so one late renewal never loses a file.
    this.heartbeat = setInterval(() => void this.extendLeases(), Math.max(250, Math.floor(this.leaseMs / 3)));
    this.heartbeat.unref();
    this.poll();
  }

  /** New work was added here: take it now rather than at the next poll. */
  notify(): void {
    this.poll();
  }

  /** Resolves once nothing is being indexed here (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.working.size > 0 || this.polling) {
      await Promise.all([...this.working.values()].map((work) => work.done));
      if (this.polling) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private poll(): void {
    if (this.closing || this.working.size >= CONCURRENT_FILES) return;
    // A wake-up during a claim is not lost: the claim runs again for the slots freed meanwhile.
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    this.pollAgain = false;
    void (async () => {
      let claimed = 0;
      try {
        const files = await this.stores.claimPending(this.owner, CONCURRENT_FILES - this.working.size, this.leaseMs);
        for (const file of files) this.begin(file);
        claimed = files.length;
      } catch (error) {
        this.deps.log.warn({ err: error }, 'claiming files to index failed; retrying');
      } finally {
        this.polling = false;
      }
      if (this.pollAgain && claimed > 0) this.poll();
    })();
  }

  private begin(file: PendingFile): void {
    const key = `${file.vectorStoreId} ${file.fileId}`;
    const controller = new AbortController();
    const done = this.index(file, controller.signal)
      .catch((error: unknown) => this.deps.log.error({ err: error, vectorStoreId: file.vectorStoreId, fileId: file.fileId }, 'indexing crashed'))
      .finally(() => {
        this.working.delete(key);
        this.poll();
      });
    this.working.set(key, { file, controller, done });
  }

  private async extendLeases(): Promise<void> {
    if (this.working.size === 0) return;
    try {
      // Only the files asked about can be found no longer held: one claimed while the query ran is not among them.
      const asked = [...this.working.entries()];
      const held = await this.stores.extendLeases(this.owner, asked.map(([, work]) => work.file), this.leaseMs);
      // A file cancelled, removed or taken over meanwhile: its work stops.
      for (const [key, work] of asked) if (!held.has(key) && this.working.get(key) === work) work.controller.abort(new Error('no longer held'));
    } catch (error) {
      this.deps.log.warn({ err: error }, 'extending ingestion leases failed; retrying');
    }
  }

  private async index(file: PendingFile, signal: AbortSignal): Promise<void> {
    const { storage } = this.deps;
    try {
      const stored = await storage.files.getStoredFile(file.fileId);
      if (!stored) return await this.stores.failFile(this.owner, file, { code: 'invalid_file', message: 'The file no longer exists.' });
      const strategy = file.chunkingStrategy.type === 'static' ? file.chunkingStrategy.static : { max_chunk_size_tokens: AUTO_CHUNKING.maxTokens, chunk_overlap_tokens: AUTO_CHUNKING.overlapTokens };
      const { text, chunks, tokens } = await this.parsers.parse(await buffer(storage.blobs.get(stored.blobId)), stored.file.filename, {
        maxTokens: strategy.max_chunk_size_tokens,
        overlapTokens: strategy.chunk_overlap_tokens,
      });
      const texts = chunks.map((chunk) => chunk.text);
      if (tokens > MAX_FILE_TOKENS) {
        return await this.stores.failFile(this.owner, file, { code: 'invalid_file', message: `The file holds more than ${MAX_FILE_TOKENS.toLocaleString('en')} tokens of text, the most a vector store file may.` });
      }
      let embeddings: number[][] | null = null;
      if (file.embeddingModel !== null) {
        const model = this.deps.models.resolveEmbeddings(file.embeddingModel, file.embeddingDimensions);
        if (!model) throw new ProviderError(`The store's embedding model '${file.embeddingModel}' routes to no configured deployment.`, null, { retryable: false });
        embeddings = await embedAll(model, texts, { gate: this.gate, maxRetries: this.deps.settings.modelMaxRetries, signal });
        const sizes = new Set(embeddings.map((vector) => vector.length));
        if (sizes.size > 1) throw new ProviderError('The embedding model returned vectors of different sizes.', null, { retryable: false });
        const [dimensions] = sizes;
        if (dimensions !== undefined) await ensureVectorIndex(storage.sql, dimensions);
      }
      signal.throwIfAborted();
      const completed = await this.stores.completeFile(this.owner, file, {
        content: text,
        chunks: chunks.map((chunk, position) => ({ position, text: chunk.text, own: chunk.own, embedding: embeddings?.[position] ?? null })),
        usageBytes: texts.reduce((sum, chunk) => sum + Buffer.byteLength(chunk), 0),
      });
      if (!completed) return;
    } catch (error) {
      if (signal.aborted) {
        // Cancelled or taken from us, or the process is stopping: whoever holds it next decides.
        // (A lease still ours, when we were wrong to stop, is let go rather than left to lapse.)
        await this.stores.releaseFile(this.owner, file, 0).catch(() => {});
        return;
      }
      if (error instanceof FileParseError) return await this.stores.failFile(this.owner, file, { code: error.code, message: error.message });
      const retryable = !(error instanceof ProviderError) || error.isRetryable;
      if (retryable && file.attempts < MAX_ATTEMPTS) {
        this.deps.log.warn({ err: error, vectorStoreId: file.vectorStoreId, fileId: file.fileId, attempt: file.attempts }, 'indexing failed; retrying');
        return await this.stores.releaseFile(this.owner, file, RETRY_AFTER_MS);
      }
      const message = error instanceof ProviderError ? `Embedding failed: ${error.message}` : 'The server had an error while indexing the file.';
      if (!(error instanceof ProviderError)) this.deps.log.error({ err: error, vectorStoreId: file.vectorStoreId, fileId: file.fileId }, 'indexing failed');
      await this.stores.failFile(this.owner, file, { code: 'server_error', message });
    }
  }

  /** Stops taking work and stops what is under way; those files are taken up again at the next start. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const work of this.working.values()) work.controller.abort(new Error('shutting down'));
    await this.idle();
    await this.parsers.close();
  }
}
