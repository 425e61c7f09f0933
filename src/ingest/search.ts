import type { AssistdSettings } from '../config.js';
import type { FileAttributes } from '../api/objects.js';
import { Semaphore } from '../async.js';
import type { ModelRegistry } from '../providers/registry.js';
import type { Storage } from '../storage/index.js';
import type { SqlClient } from '../storage/sql.js';
import type { StoredVectorStore } from '../storage/vector-stores.js';
import { embedAll } from './embed.js';

// ------------------------------------------------------------------ vector indexes

/** pgvector's HNSW takes `vector` up to 2,000 dimensions and `halfvec` up to 4,000. */
const MAX_VECTOR_INDEX_DIMENSIONS = 2_000;
const MAX_HALFVEC_INDEX_DIMENSIONS = 4_000;

/** The expression chunks of `dimensions` are indexed and searched by (the two must match for the index to serve). */
function vectorExpression(dimensions: number): { column: string; cast: string; ops: string } {
  const type = dimensions <= MAX_VECTOR_INDEX_DIMENSIONS ? 'vector' : 'halfvec';
  return { column: `(c.embedding::${type}(${dimensions}))`, cast: `::${type}(${dimensions})`, ops: `${type}_cosine_ops` };
}

/**
 * A denser graph than pgvector's defaults (ef_construction 64), and a wider search (ef_search 40):
 * bench/file-search measured recall@10 against exact search of 0.943–0.952 at 10,000 chunks and
 * about 0.61 at 100,000 (the fake model's near-random vectors), for a millisecond or two.
 */
const HNSW_BUILD = 'WITH (m = 16, ef_construction = 128)';
const EF_SEARCH = 200;

const indexed = new WeakMap<SqlClient, Set<number>>();

/** Makes sure chunks of `dimensions` have an HNSW index of their own (a partial index over a cast). */
/** The index DDL for chunks of `dimensions` (the benchmark builds it after a bulk load). */
export function vectorIndexSql(dimensions: number): string {
  const { column, ops } = vectorExpression(dimensions);
  return `CREATE INDEX IF NOT EXISTS chunks_embedding_${dimensions} ON chunks USING hnsw (${column.replace('c.', '')} ${ops}) ${HNSW_BUILD} WHERE dimensions = ${dimensions}`;
}

export async function ensureVectorIndex(sql: SqlClient, dimensions: number): Promise<void> {
  let done = indexed.get(sql);
  if (!done) indexed.set(sql, (done = new Set()));
  if (done.has(dimensions) || dimensions > MAX_HALFVEC_INDEX_DIMENSIONS) return;
  try {
    await sql.exec(vectorIndexSql(dimensions));
  } catch (error) {
    // Another process created it at the same moment.
    if (!['23505', '42P07'].includes((error as { code?: string }).code ?? '')) throw error;
  }
  done.add(dimensions);
}

// ------------------------------------------------------------------ attribute filters

export type ComparisonFilter = {
  type: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte' | 'in' | 'nin';
  key: string;
  value: string | number | boolean | (string | number)[];
};
export type CompoundFilter = { type: 'and' | 'or'; filters: Filter[] };
export type Filter = ComparisonFilter | CompoundFilter;

const COMPARISON_SQL = { gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

/** `filter` as SQL over the file's attributes (`f.attributes`), its values pushed onto `values`. */
export function filterSql(filter: Filter, values: unknown[]): string {
  if ('filters' in filter) {
    if (filter.filters.length === 0) return filter.type === 'and' ? 'true' : 'false';
    return `(${filter.filters.map((inner) => filterSql(inner, values)).join(filter.type === 'and' ? ' AND ' : ' OR ')})`;
  }
  values.push(filter.key);
  const key = `$${values.length}`;
  const attribute = `(f.attributes::jsonb -> ${key})`;
  const { value } = filter;
  switch (filter.type) {
    case 'eq':
    case 'ne': {
      values.push(JSON.stringify(value));
      const same = `${attribute} = $${values.length}::jsonb`;
      return filter.type === 'eq' ? `COALESCE(${same}, false)` : `NOT COALESCE(${same}, false)`;
    }
    case 'in':
    case 'nin': {
      values.push(JSON.stringify(Array.isArray(value) ? value : [value]));
      const member = `COALESCE($${values.length}::jsonb @> jsonb_build_array(${attribute}), false)`;
      return filter.type === 'in' ? member : `NOT ${member}`;
    }
    default: {
      const operator = COMPARISON_SQL[filter.type];
      values.push(String(value));
      // Numbers compare as numbers and strings as strings; an attribute of another type never matches.
      return typeof value === 'number'
        ? `(jsonb_typeof(${attribute}) = 'number' AND (f.attributes::jsonb ->> ${key})::numeric ${operator} $${values.length}::numeric)`
        : `(jsonb_typeof(${attribute}) = 'string' AND (f.attributes::jsonb ->> ${key}) COLLATE "C" ${operator} $${values.length})`;
    }
  }
}

// ------------------------------------------------------------------ hybrid search

/** Reciprocal rank fusion's constant (the usual 60: a result's rank matters less the further down it is). */
const RRF_K = 60;
/** Candidates taken from each list before fusing. */
const CANDIDATES = 50;

export interface SearchRequest {
  stores: StoredVectorStore[];
  queries: string[];
  maxResults: number;
  scoreThreshold: number;
  filters?: Filter | undefined;
}

export interface SearchHit {
  chunkId: number;
  vectorStoreId: string;
  fileId: string;
  filename: string;
  attributes: FileAttributes;
  /** In [0, 1]: the fused reciprocal rank over the best a result could have had. */
  score: number;
  text: string;
}

export interface SearchDeps {
  storage: Storage;
  models: ModelRegistry;
  settings: AssistdSettings;
}

const queryGate = new Semaphore(8);

/**
 * Searches `stores` for `queries`: PostgreSQL full-text search over every store, and, for stores
 * that have an embedding model, pgvector's HNSW over each model's vectors, the ranked lists fused
 * by reciprocal rank. Stores without an embedding model are searched by full text alone.
 */
export async function searchStores(deps: SearchDeps, request: SearchRequest): Promise<SearchHit[]> {
  const storeIds = request.stores.map((stored) => stored.store.id);
  if (storeIds.length === 0 || request.queries.length === 0) return [];
  const byModel = new Map<string, { model: string; dimensions: number | null; storeIds: string[] }>();
  for (const stored of request.stores) {
    if (stored.embeddingModel === null) continue;
    const key = `${stored.embeddingModel} ${stored.embeddingDimensions ?? ''}`;
    const group = byModel.get(key) ?? { model: stored.embeddingModel, dimensions: stored.embeddingDimensions, storeIds: [] };
    group.storeIds.push(stored.store.id);
    byModel.set(key, group);
  }

  const lists: number[][] = [];
  for (const query of request.queries) {
    lists.push(await textCandidates(deps.storage.sql, storeIds, query, request.filters));
    for (const group of byModel.values()) {
      const model = deps.models.resolveEmbeddings(group.model, group.dimensions);
      if (!model) continue; // the model left the config: these stores answer by full text alone
      const [vector] = await embedAll(model, [query], { gate: queryGate, maxRetries: deps.settings.modelMaxRetries });
      if (vector) lists.push(await vectorCandidates(deps.storage.sql, group.storeIds, vector, request.filters));
    }
  }

  const fused = new Map<number, number>();
  for (const list of lists) list.forEach((id, rank) => fused.set(id, (fused.get(id) ?? 0) + 1 / (RRF_K + rank + 1)));
  const best = lists.length / (RRF_K + 1);
  const ranked = [...fused.entries()]
    .map(([id, score]) => ({ id, score: score / best }))
    .filter((hit) => hit.score >= request.scoreThreshold)
    .sort((a, b) => b.score - a.score || a.id - b.id)
    .slice(0, request.maxResults);
  if (ranked.length === 0) return [];

  const { rows } = await deps.storage.sql.query<{ id: number; vector_store_id: string; file_id: string; text: string; filename: string; attributes: FileAttributes | null }>(
    `SELECT c.id, c.vector_store_id, c.file_id, c.text, files.filename, f.attributes
     FROM chunks c
     JOIN vector_store_files f ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id
     JOIN files ON files.id = c.file_id
     WHERE c.id = ANY($1)`,
    [ranked.map((hit) => hit.id)],
  );
  const byId = new Map(rows.map((row) => [Number(row.id), row]));
  return ranked.flatMap((hit) => {
    const row = byId.get(hit.id);
    return row
      ? [{ chunkId: hit.id, vectorStoreId: row.vector_store_id, fileId: row.file_id, filename: row.filename, attributes: row.attributes ?? {}, score: hit.score, text: row.text }]
      : [];
  });
}

/** Chunk ids matching any word of `query`, best first (ts_rank). */
async function textCandidates(sql: SqlClient, storeIds: string[], query: string, filters: Filter | undefined): Promise<number[]> {
  const values: unknown[] = [storeIds, query];
  const { join, filter } = attributeFilter(filters, values);
  values.push(CANDIDATES);
  const { rows } = await sql.query<{ id: number }>(
    `WITH q AS (
       SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) AS query
       FROM unnest(tsvector_to_array(to_tsvector('english', $2))) AS lexeme
     )
     SELECT c.id FROM q, chunks c${join}
     WHERE c.vector_store_id = ANY($1) AND c.search @@ q.query${filter}
     ORDER BY ts_rank(c.search, q.query) DESC, c.id
     LIMIT $${values.length}`,
    values,
  );
  return rows.map((row) => Number(row.id));
}

/** The join to the chunks' files and the condition, when there is an attribute filter. */
function attributeFilter(filters: Filter | undefined, values: unknown[]): { join: string; filter: string } {
  if (!filters) return { join: '', filter: '' };
  return {
    join: ' JOIN vector_store_files f ON f.vector_store_id = c.vector_store_id AND f.file_id = c.file_id',
    filter: ` AND ${filterSql(filters, values)}`,
  };
}

/** Chunk ids nearest `vector` by cosine distance, nearest first. */
export async function vectorCandidates(sql: SqlClient, storeIds: string[], vector: number[], filters: Filter | undefined): Promise<number[]> {
  const { column, cast } = vectorExpression(vector.length);
  const values: unknown[] = [storeIds, `[${vector.join(',')}]`];
  const { join, filter } = attributeFilter(filters, values);
  values.push(CANDIDATES);
  // The index returns nearest neighbours across every store; iterative scans keep reading until
  // enough of them pass the WHERE clause (pgvector 0.8), rather than returning too few.
  return sql.transaction(async (tx) => {
    await tx.exec(`SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = ${EF_SEARCH}`);
    // The size is written into the SQL (an integer): a partial index's predicate must be seen at
    // planning, which a parameter (in a prepared statement's generic plan) is not.
    // relaxed_order may hand neighbours back a little out of order: they are sorted again.
    const { rows } = await tx.query<{ id: number }>(
      `WITH nearest AS MATERIALIZED (
         SELECT c.id, ${column} <=> $2${cast} AS distance FROM chunks c${join}
         WHERE c.vector_store_id = ANY($1) AND c.dimensions = ${vector.length}${filter}
         ORDER BY distance
         LIMIT $${values.length}
       )
       SELECT id FROM nearest ORDER BY distance, id`,
      values,
    );
    return rows.map((row) => Number(row.id));
  });
}
