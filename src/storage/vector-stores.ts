import type {
  ChunkingStrategy,
  FileAttributes,
  FileCounts,
  ListObject,
  Metadata,
  VectorStoreFileBatchObject,
  VectorStoreFileObject,
  VectorStoreObject,
} from '../api/objects.js';
import { newId, nowSeconds } from '../ids.js';
import { listPage, toList, type PageRequest } from './repositories.js';
import { NOW_MS } from './runs.js';
import type { SqlClient } from './sql.js';

const DAY_SECONDS = 86_400;
const json = (value: unknown) => (value === undefined || value === null ? null : JSON.stringify(value));

/** Counts of a set of vector store files by status, with their bytes: one aggregate over `vector_store_files f`. */
const STATS = `json_build_object(
  'in_progress', count(*) FILTER (WHERE f.status = 'in_progress'),
  'completed', count(*) FILTER (WHERE f.status = 'completed'),
  'failed', count(*) FILTER (WHERE f.status = 'failed'),
  'cancelled', count(*) FILTER (WHERE f.status = 'cancelled'),
  'total', count(*),
  'usage_bytes', COALESCE(sum(f.usage_bytes), 0))`;

interface Stats extends FileCounts {
  usage_bytes: number;
}

const counts = (stats: Stats): FileCounts => ({
  in_progress: stats.in_progress,
  completed: stats.completed,
  failed: stats.failed,
  cancelled: stats.cancelled,
  total: stats.total,
});

const STORE_COLUMNS = `id, created_at, name, expires_after, expires_at, last_active_at, metadata, embedding_model, embedding_dimensions,
  (SELECT ${STATS} FROM vector_store_files f WHERE f.vector_store_id = vector_stores.id) AS stats`;

interface StoreRow {
  id: string;
  created_at: number;
  name: string;
  expires_after: VectorStoreObject['expires_after'];
  expires_at: number | null;
  last_active_at: number | null;
  metadata: Metadata;
  embedding_model: string | null;
  embedding_dimensions: number | null;
  stats: Stats;
}

/** A store as the API shows it, with what only the engine sees. */
export interface StoredVectorStore {
  store: VectorStoreObject;
  embeddingModel: string | null;
  embeddingDimensions: number | null;
}

function toStore(row: StoreRow, now = nowSeconds()): StoredVectorStore {
  const expired = row.expires_at !== null && row.expires_at <= now;
  return {
    store: {
      id: row.id,
      object: 'vector_store',
      created_at: row.created_at,
      name: row.name,
      usage_bytes: row.stats.usage_bytes,
      file_counts: counts(row.stats),
      status: expired ? 'expired' : row.stats.in_progress > 0 ? 'in_progress' : 'completed',
      expires_after: row.expires_after,
      expires_at: row.expires_at,
      last_active_at: row.last_active_at,
      metadata: row.metadata,
    },
    embeddingModel: row.embedding_model,
    embeddingDimensions: row.embedding_dimensions,
  };
}

const FILE_COLUMNS = `file_id AS id, 'vector_store.file' AS object, usage_bytes, created_at, vector_store_id, status, last_error,
  chunking_strategy, COALESCE(attributes, '{}'::json) AS attributes`;

const fileCursor = (placeholder: string) => `(SELECT seq FROM vector_store_files WHERE vector_store_id = $1 AND file_id = ${placeholder})`;

export interface NewStoreFile {
  fileId: string;
  chunkingStrategy: ChunkingStrategy;
  attributes: FileAttributes | null;
}

/** A file claimed for ingestion: what to read, how to chunk it, which vector space it goes to. */
export interface PendingFile {
  vectorStoreId: string;
  fileId: string;
  chunkingStrategy: ChunkingStrategy;
  attempts: number;
  embeddingModel: string | null;
  embeddingDimensions: number | null;
}

export interface NewChunk {
  position: number;
  text: string;
  /** The part of `text` full-text search indexes (see chunkText). */
  own: { from: number; length: number };
  embedding: number[] | null;
}

type StoreFileFilter = VectorStoreFileObject['status'];

export class VectorStoreRepository {
  constructor(private readonly sql: SqlClient) {}

  // ---- stores

  async createStore(input: {
    name: string;
    description: string | null;
    expiresAfter: { anchor: 'last_active_at'; days: number } | null;
    metadata: Metadata;
    embeddingModel: string | null;
    embeddingDimensions: number | null;
  }, client: SqlClient = this.sql): Promise<VectorStoreObject> {
    const now = nowSeconds();
    const { rows } = await client.query<StoreRow>(
      `INSERT INTO vector_stores (id, created_at, name, description, expires_after, expires_at, last_active_at, metadata, embedding_model, embedding_dimensions)
       VALUES ($1, $2, $3, $4, $5, $6, $2, $7, $8, $9) RETURNING ${STORE_COLUMNS}`,
      [
        newId('vectorStore'),
        now,
        input.name,
        input.description,
        json(input.expiresAfter),
        input.expiresAfter ? now + input.expiresAfter.days * DAY_SECONDS : null,
        json(input.metadata),
        input.embeddingModel,
        input.embeddingDimensions,
      ],
    );
    return toStore(rows[0]!, now).store;
  }

  async getStore(id: string, client: SqlClient = this.sql): Promise<StoredVectorStore | undefined> {
    const { rows } = await client.query<StoreRow>(`SELECT ${STORE_COLUMNS} FROM vector_stores WHERE id = $1`, [id]);
    return rows[0] ? toStore(rows[0]) : undefined;
  }

  /** The stores among `ids`, by id (missing ones left out). */
  async getStores(ids: readonly string[]): Promise<Map<string, StoredVectorStore>> {
    if (ids.length === 0) return new Map();
    const { rows } = await this.sql.query<StoreRow>(`SELECT ${STORE_COLUMNS} FROM vector_stores WHERE id = ANY($1)`, [ids]);
    return new Map(rows.map((row) => [row.id, toStore(row)]));
  }

  async listStores(page: PageRequest): Promise<ListObject<VectorStoreObject>> {
    const { rows, hasMore } = await listPage<StoreRow>(this.sql, 'vector_stores', STORE_COLUMNS, 'true', [], page);
    const now = nowSeconds();
    return toList(rows.map((row) => toStore(row, now).store), hasMore);
  }

  async modifyStore(
    id: string,
    changes: { name?: string | null | undefined; expiresAfter?: { anchor: 'last_active_at'; days: number } | null | undefined; metadata?: Metadata | null | undefined },
  ): Promise<VectorStoreObject | undefined> {
    const assignments: string[] = [];
    const values: unknown[] = [id];
    if (changes.name !== undefined) {
      values.push(changes.name ?? '');
      assignments.push(`name = $${values.length}`);
    }
    if (changes.expiresAfter !== undefined) {
      values.push(json(changes.expiresAfter), changes.expiresAfter ? changes.expiresAfter.days * DAY_SECONDS : null);
      // The expiry counts from the last activity, which a change of policy does not move.
      assignments.push(`expires_after = $${values.length - 1}`, `expires_at = COALESCE(last_active_at, created_at) + $${values.length}`);
    }
    if (changes.metadata !== undefined) {
      values.push(json(changes.metadata ?? {}));
      assignments.push(`metadata = $${values.length}`);
    }
    if (assignments.length > 0) {
      const { rowCount } = await this.sql.query(`UPDATE vector_stores SET ${assignments.join(', ')} WHERE id = $1`, values);
      if (rowCount === 0) return undefined;
    }
    return (await this.getStore(id))?.store;
  }

  async deleteStore(id: string): Promise<boolean> {
    return (await this.sql.query('DELETE FROM vector_stores WHERE id = $1', [id])).rowCount > 0;
  }

  /** A store was used (files added, searched): its activity clock, and its expiry, move. */
  async touchStores(ids: readonly string[], client: SqlClient = this.sql): Promise<void> {
    if (ids.length === 0) return;
    const now = nowSeconds();
    await client.query(
      `UPDATE vector_stores SET last_active_at = $2,
         expires_at = CASE WHEN expires_after IS NULL THEN NULL ELSE $2 + (expires_after->>'days')::bigint * ${DAY_SECONDS} END
       WHERE id = ANY($1) AND (expires_at IS NULL OR expires_at > $2)`,
      [ids, now],
    );
  }

  /** The vector size a store's chunks have, fixed by its first embedding; false if it is fixed at another. */
  async fixDimensions(id: string, dimensions: number): Promise<boolean> {
    await this.sql.query('UPDATE vector_stores SET embedding_dimensions = $2 WHERE id = $1 AND embedding_dimensions IS NULL', [id, dimensions]);
    const { rows } = await this.sql.query<{ embedding_dimensions: number | null }>('SELECT embedding_dimensions FROM vector_stores WHERE id = $1', [id]);
    return rows[0]?.embedding_dimensions === dimensions;
  }

  // ---- files in stores

  /**
   * Adds (or re-adds, which re-indexes) files to a store, in progress; returns them. `batchId`
   * ties them to a batch.
   */
  async addFiles(storeId: string, files: readonly NewStoreFile[], batchId: string | null = null, client: SqlClient = this.sql): Promise<VectorStoreFileObject[]> {
    const added: VectorStoreFileObject[] = [];
    const now = nowSeconds();
    for (const file of files) {
      const { rows } = await client.query<VectorStoreFileObject>(
        `INSERT INTO vector_store_files (vector_store_id, file_id, created_at, status, chunking_strategy, attributes, batch_id)
         VALUES ($1, $2, $3, 'in_progress', $4, $5, $6)
         ON CONFLICT (vector_store_id, file_id) DO UPDATE SET
           status = 'in_progress', last_error = NULL, usage_bytes = 0, chunking_strategy = EXCLUDED.chunking_strategy,
           attributes = EXCLUDED.attributes, batch_id = EXCLUDED.batch_id, locked_by = NULL, locked_until = NULL, attempts = 0
         RETURNING ${FILE_COLUMNS}`,
        [storeId, file.fileId, now, json(file.chunkingStrategy), json(file.attributes), batchId],
      );
      added.push(rows[0]!);
    }
    await this.touchStores([storeId], client);
    return added;
  }

  async getStoreFile(storeId: string, fileId: string): Promise<VectorStoreFileObject | undefined> {
    const { rows } = await this.sql.query<VectorStoreFileObject>(
      `SELECT ${FILE_COLUMNS} FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2`,
      [storeId, fileId],
    );
    return rows[0];
  }

  async listStoreFiles(storeId: string, page: PageRequest & { filter?: StoreFileFilter | undefined; batchId?: string }): Promise<ListObject<VectorStoreFileObject>> {
    const values: unknown[] = [storeId];
    let where = 'vector_store_id = $1';
    if (page.filter !== undefined) {
      values.push(page.filter);
      where += ` AND status = $${values.length}`;
    }
    if (page.batchId !== undefined) {
      values.push(page.batchId);
      where += ` AND batch_id = $${values.length}`;
    }
    const { rows, hasMore } = await listPage<VectorStoreFileObject>(this.sql, 'vector_store_files', FILE_COLUMNS, where, values, page, fileCursor);
    return toList(rows, hasMore);
  }

  async updateFileAttributes(storeId: string, fileId: string, attributes: FileAttributes | null): Promise<VectorStoreFileObject | undefined> {
    const { rows } = await this.sql.query<VectorStoreFileObject>(
      `UPDATE vector_store_files SET attributes = $3 WHERE vector_store_id = $1 AND file_id = $2 RETURNING ${FILE_COLUMNS}`,
      [storeId, fileId, json(attributes)],
    );
    return rows[0];
  }

  /** Removes the file from the store, chunks and all (the file itself stays). */
  async deleteStoreFile(storeId: string, fileId: string): Promise<boolean> {
    return (await this.sql.query('DELETE FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2', [storeId, fileId])).rowCount > 0;
  }

  /** The file's parsed text, as ingestion extracted it; undefined when it is not (yet) in the store. */
  async fileContent(storeId: string, fileId: string): Promise<string | null | undefined> {
    const { rows } = await this.sql.query<{ content: string | null }>(
      'SELECT content FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2',
      [storeId, fileId],
    );
    return rows[0] ? rows[0].content : undefined;
  }

  // ---- batches

  async createBatch(storeId: string, files: readonly NewStoreFile[]): Promise<VectorStoreFileBatchObject> {
    const id = newId('fileBatch');
    await this.sql.transaction(async (tx) => {
      await tx.query(`INSERT INTO vector_store_file_batches (id, vector_store_id, created_at, status) VALUES ($1, $2, $3, 'in_progress')`, [
        id,
        storeId,
        nowSeconds(),
      ]);
      await this.addFiles(storeId, files, id, tx);
    });
    return (await this.getBatch(storeId, id))!;
  }

  async getBatch(storeId: string, batchId: string): Promise<VectorStoreFileBatchObject | undefined> {
    const { rows } = await this.sql.query<{ id: string; created_at: number; vector_store_id: string; status: string; stats: Stats }>(
      `SELECT id, created_at, vector_store_id, status,
         (SELECT ${STATS} FROM vector_store_files f WHERE f.batch_id = b.id) AS stats
       FROM vector_store_file_batches b WHERE id = $2 AND vector_store_id = $1`,
      [storeId, batchId],
    );
    const row = rows[0];
    if (!row) return undefined;
    const fileCounts = counts(row.stats);
    // A batch is done when its files are (some may have failed: the counts say so); it failed
    // only when every one of them did.
    const status: VectorStoreFileBatchObject['status'] =
      row.status === 'cancelled'
        ? 'cancelled'
        : fileCounts.in_progress > 0
          ? 'in_progress'
          : fileCounts.total > 0 && fileCounts.failed === fileCounts.total
            ? 'failed'
            : 'completed';
    return { id: row.id, object: 'vector_store.files_batch', created_at: row.created_at, vector_store_id: row.vector_store_id, status, file_counts: fileCounts };
  }

  /** Cancels a batch: its files not yet indexed stop (cancelled); those done stay. */
  async cancelBatch(storeId: string, batchId: string): Promise<VectorStoreFileBatchObject | undefined> {
    await this.sql.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE vector_store_file_batches SET status = 'cancelled' WHERE id = $2 AND vector_store_id = $1 AND status = 'in_progress'`,
        [storeId, batchId],
      );
      if (rowCount === 0) return;
      await tx.query(
        `UPDATE vector_store_files SET status = 'cancelled', locked_by = NULL, locked_until = NULL
         WHERE batch_id = $1 AND status = 'in_progress'`,
        [batchId],
      );
    });
    return this.getBatch(storeId, batchId);
  }

  // ---- ingestion

  /** Claims up to `limit` files waiting to be indexed (none held by a live lease), for `leaseMs`. */
  async claimPending(owner: string, limit: number, leaseMs: number): Promise<PendingFile[]> {
    const { rows } = await this.sql.query<{
      vector_store_id: string;
      file_id: string;
      chunking_strategy: ChunkingStrategy;
      attempts: number;
      embedding_model: string | null;
      embedding_dimensions: number | null;
    }>(
      `WITH claimable AS (
         SELECT vector_store_id, file_id FROM vector_store_files
         WHERE status = 'in_progress' AND (locked_until IS NULL OR locked_until < ${NOW_MS})
         ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED
       )
       UPDATE vector_store_files f SET locked_by = $1, locked_until = ${NOW_MS} + $3::bigint, attempts = f.attempts + 1
       FROM claimable c, vector_stores s
       WHERE f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id AND s.id = f.vector_store_id
       RETURNING f.vector_store_id, f.file_id, f.chunking_strategy, f.attempts, s.embedding_model, s.embedding_dimensions`,
      [owner, limit, leaseMs],
    );
    return rows.map((row) => ({
      vectorStoreId: row.vector_store_id,
      fileId: row.file_id,
      chunkingStrategy: row.chunking_strategy,
      attempts: row.attempts,
      embeddingModel: row.embedding_model,
      embeddingDimensions: row.embedding_dimensions,
    }));
  }

  /**
   * Extends the leases `owner` holds on these files; returns those still held and still in progress.
   * A claim is fenced by its attempt number (each claim takes the next): a lease that lapsed, or a
   * file claimed again since, is not this claim's any more.
   */
  async extendLeases(owner: string, files: readonly ClaimedFile[], leaseMs: number): Promise<Set<string>> {
    if (files.length === 0) return new Set();
    const { rows } = await this.sql.query<{ key: string }>(
      `UPDATE vector_store_files f SET locked_until = ${NOW_MS} + $2::bigint
       FROM unnest($3::text[], $4::int[]) AS held (key, attempts)
       WHERE f.locked_by = $1 AND f.status = 'in_progress' AND f.locked_until >= ${NOW_MS}
         AND (f.vector_store_id || ' ' || f.file_id) = held.key AND f.attempts = held.attempts
       RETURNING f.vector_store_id || ' ' || f.file_id AS key`,
      [owner, leaseMs, files.map((file) => `${file.vectorStoreId} ${file.fileId}`), files.map((file) => file.attempts)],
    );
    return new Set(rows.map((row) => row.key));
  }

  /**
   * Indexes a file in one transaction: its chunks replace any a cut-off attempt wrote, and it turns
   * completed. Returns false (writing nothing) when the file is no longer this owner's to finish
   * (cancelled, removed, taken over).
   */
  async completeFile(owner: string, file: ClaimedFile, result: { content: string; chunks: NewChunk[]; usageBytes: number }): Promise<boolean> {
    return this.sql.transaction(async (tx) => {
      const { rows } = await tx.query(
        `SELECT 1 FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2 AND status = 'in_progress' AND ${CLAIM_HELD('$3', '$4')} FOR UPDATE`,
        [file.vectorStoreId, file.fileId, owner, file.attempts],
      );
      if (rows.length === 0) return false;
      // Not waiting for the WAL flush: a completion lost to a crash leaves the file in progress under
      // a lapsing lease, and it is indexed again (this transaction replaces its chunks whole).
      await tx.query('SET LOCAL synchronous_commit = off');
      await tx.query('DELETE FROM chunks WHERE vector_store_id = $1 AND file_id = $2', [file.vectorStoreId, file.fileId]);
      // A thousand rows a statement, as arrays: one statement text however many rows (prepared once).
      for (let start = 0; start < result.chunks.length; start += CHUNK_INSERT_BATCH) {
        const batch = result.chunks.slice(start, start + CHUNK_INSERT_BATCH);
        await tx.query(
          `INSERT INTO chunks (vector_store_id, file_id, position, text, own_from, own_length, dimensions, embedding)
           SELECT $1, $2, position, text, own_from, own_length, dimensions, embedding::vector
           FROM unnest($3::int[], $4::text[], $5::int[], $6::int[], $7::int[], $8::text[]) AS row (position, text, own_from, own_length, dimensions, embedding)`,
          [
            file.vectorStoreId,
            file.fileId,
            batch.map((chunk) => chunk.position),
            batch.map((chunk) => chunk.text),
            batch.map((chunk) => chunk.own.from),
            batch.map((chunk) => chunk.own.length),
            batch.map((chunk) => chunk.embedding?.length ?? null),
            batch.map((chunk) => (chunk.embedding ? `[${chunk.embedding.join(',')}]` : null)),
          ],
        );
      }
      await tx.query(
        `UPDATE vector_store_files SET status = 'completed', usage_bytes = $3, content = $4, last_error = NULL, locked_by = NULL, locked_until = NULL
         WHERE vector_store_id = $1 AND file_id = $2`,
        [file.vectorStoreId, file.fileId, result.usageBytes, result.content],
      );
      return true;
    });
  }

  /** Marks a file failed with `error`, if it is still this owner's. */
  async failFile(owner: string, file: ClaimedFile, error: NonNullable<VectorStoreFileObject['last_error']>): Promise<void> {
    await this.sql.query(
      `UPDATE vector_store_files SET status = 'failed', last_error = $4, locked_by = NULL, locked_until = NULL
       WHERE vector_store_id = $1 AND file_id = $2 AND status = 'in_progress' AND ${CLAIM_HELD('$3', '$5')}`,
      [file.vectorStoreId, file.fileId, owner, json(error), file.attempts],
    );
  }

  /** Lets go of every lease (an embedded store at start: whoever held them is gone). */
  async releaseAll(): Promise<void> {
    await this.sql.query(`UPDATE vector_store_files SET locked_by = NULL, locked_until = NULL WHERE status = 'in_progress'`);
  }

  /** Lets go of a file to be tried again later (by any process). */
  async releaseFile(owner: string, file: ClaimedFile, retryAfterMs: number): Promise<void> {
    await this.sql.query(
      `UPDATE vector_store_files SET locked_by = NULL, locked_until = ${NOW_MS} + $4::bigint
       WHERE vector_store_id = $1 AND file_id = $2 AND locked_by = $3 AND attempts = $5`,
      [file.vectorStoreId, file.fileId, owner, retryAfterMs, file.attempts],
    );
  }

  /** Files of these stores still being indexed (a run waits for them). */
  async pendingCount(storeIds: readonly string[], fileIds?: readonly string[]): Promise<number> {
    if (storeIds.length === 0) return 0;
    const values: unknown[] = [storeIds];
    let where = `vector_store_id = ANY($1) AND status = 'in_progress'`;
    if (fileIds) {
      values.push(fileIds);
      where += ' AND file_id = ANY($2)';
    }
    const { rows } = await this.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM vector_store_files WHERE ${where}`, values);
    return rows[0]!.n;
  }
}

const CHUNK_INSERT_BATCH = 1_000;

/** A claim on a file: which one, and its attempt number, the claim's fencing token. */
export type ClaimedFile = Pick<PendingFile, 'vectorStoreId' | 'fileId' | 'attempts'>;

/** The claim still holds: this owner, this attempt, and a lease that has not lapsed. */
const CLAIM_HELD = (ownerParameter: string, attemptsParameter: string) =>
  `locked_by = ${ownerParameter} AND attempts = ${attemptsParameter}::int AND locked_until >= ${NOW_MS}`;
