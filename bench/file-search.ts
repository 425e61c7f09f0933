/**
 * file_search benchmark: what indexing and searching cost, and how well the search finds things.
 * Runs in one process against the real storage code (embedded PGlite, and PostgreSQL when
 * DATABASE_URL is set, in a fresh database dropped afterwards), with the scripted fake model's
 * embeddings (deterministic word hashing, 256 dimensions) served over loopback.
 *
 *   1. ingest  a mixed corpus (text, Markdown, HTML, JSON, CSV, Python, PDF, DOCX) uploaded through
 *              the HTTP API into two stores, one with embeddings and one with full-text search alone:
 *              MB of extracted text and chunks per second; the gap between the two is the embedding time
 *   2. search  stores of 10,000 and 100,000 chunks (written straight to the chunks table, HNSW index
 *              built after): hybrid search p50/p99 (query embedding over loopback included), and
 *              the vector index alone
 *   3. recall  on labelled queries (words drawn from one chunk, which is the label): recall@10 of the
 *              HNSW index against exact brute-force vector search, and the share of queries whose
 *              labelled chunk is in the top 10, for exact vector search and for the hybrid search
 *
 * It prints figures; it never judges them. Exit code 1 only when something failed.
 *
 *   npm run bench:file-search
 *   npm run bench:file-search -- --backend postgres
 *
 * Environment: DATABASE_URL (adds PostgreSQL), BENCH_FS_SIZES ("10000,100000"), BENCH_FS_QUERIES (200),
 * BENCH_FS_CORPUS_MB (10).
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config.js';
import { startServer } from '../src/server.js';
import { embedAll } from '../src/ingest/embed.js';
import { searchStores, vectorCandidates, vectorIndexSql } from '../src/ingest/search.js';
import { Semaphore } from '../src/async.js';
import { embed, startFakeModel } from '../test/helpers/fake-model.js';
import { makeDocx, makePdf } from '../test/helpers/documents.js';
import { cleanup, cleanups, createBenchDatabase, envPositive, installCleanupHandlers, machine, parseIntList, percentile, progress, selectBackends, sourceRevision, table, type Backend } from './lib.js';

const { values: flags } = parseArgs({ options: { backend: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } }, strict: true });
if (flags.help) {
  process.stdout.write('Usage: node dist/bench/file-search.js [--backend pglite|postgres]...\n');
  process.exit(0);
}
installCleanupHandlers('bench:file-search');
const { backends, databaseUrl } = selectBackends((flags.backend ?? []) as string[]);
const SIZES = parseIntList('BENCH_FS_SIZES', process.env.BENCH_FS_SIZES || '10000,100000', 1_000_000);
const QUERIES = envPositive('BENCH_FS_QUERIES', 200, true);
const CORPUS_MB = envPositive('BENCH_FS_CORPUS_MB', 10, false);
const DIMENSIONS = 256;
const EMBEDDING_MODEL = 'text-embedding-3-small';
let failures = 0;

// ------------------------------------------------------------------ synthetic text

/** A deterministic pseudo-random stream (mulberry32). */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = Math.imul(state ^ (state >>> 15), state | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Word-like tokens from syllables: a vocabulary big enough that chunks are told apart by their words. */
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'qu', 'da', 'fe', 'gi', 'ho', 'ju', 'bre', 'str', 'ion', 'ent'];
const COMMON = 'the of and to in is was for on with as by at from that this which are be an or'.split(' ');
const vocabulary = (() => {
  const next = random(7);
  const words = new Set<string>();
  while (words.size < 20_000) {
    let word = '';
    const length = 2 + Math.floor(next() * 3);
    for (let index = 0; index < length; index++) word += SYLLABLES[Math.floor(next() * SYLLABLES.length)];
    words.add(word);
  }
  return [...words];
})();

function sentence(next: () => number, words: number, stopWords: number): string {
  const out: string[] = [];
  for (let index = 0; index < words; index++) out.push(next() < stopWords ? COMMON[Math.floor(next() * COMMON.length)]! : vocabulary[Math.floor(next() * vocabulary.length)]!);
  return `${out.join(' ')}.`;
}

/** About `words` words in sentences of 12, a share `stopWords` of them common ones. */
function paragraph(next: () => number, words: number, stopWords = 0.3): string {
  const sentences: string[] = [];
  for (let written = 0; written < words; written += 12) sentences.push(sentence(next, 12, stopWords));
  return sentences.join(' ');
}

// ------------------------------------------------------------------ 1. ingestion

interface IngestRow {
  backend: Backend;
  mode: string;
  files: number;
  textMb: number;
  chunks: number;
  seconds: number;
}

async function corpus(): Promise<{ name: string; bytes: Buffer }[]> {
  const next = random(11);
  const files: { name: string; bytes: Buffer }[] = [];
  const target = CORPUS_MB * 1024 * 1024;
  let size = 0;
  for (let index = 0; size < target; index++) {
    const text = paragraph(next, 4_000);
    let file: { name: string; bytes: Buffer };
    switch (index % 8) {
      case 0: file = { name: `doc${index}.txt`, bytes: Buffer.from(text) }; break;
      case 1: file = { name: `doc${index}.md`, bytes: Buffer.from(`# Title ${index}\n\n${text}\n\n## More\n\n${paragraph(next, 200)}`) }; break;
      case 2: file = { name: `doc${index}.html`, bytes: Buffer.from(`<html><body><h1>Page ${index}</h1><p>${text}</p></body></html>`) }; break;
      case 3: file = { name: `doc${index}.json`, bytes: Buffer.from(JSON.stringify({ id: index, body: text })) }; break;
      case 4: file = { name: `doc${index}.csv`, bytes: Buffer.from(`id,text\n${text.split('. ').map((line, row) => `${row},"${line}"`).join('\n')}`) }; break;
      case 5: file = { name: `doc${index}.py`, bytes: Buffer.from(`def f${index}():\n    """${text}"""\n    return ${index}\n`) }; break;
      case 6: file = { name: `doc${index}.pdf`, bytes: await makePdf(text.match(/.{1,1500}(\s|$)/g)!.map((page) => page.match(/.{1,90}(\s|$)/g)!.join('\n'))) }; break;
      default: file = { name: `doc${index}.docx`, bytes: await makeDocx(text.split('. ')) };
    }
    files.push(file);
    size += text.length;
  }
  return files;
}

async function measureIngestion(backend: Backend, fakeUrl: string): Promise<IngestRow[]> {
  const dataDir = join(tmpdir(), `assistd-bench-fs-ingest-${process.pid}-${backend}`);
  rmSync(dataDir, { recursive: true, force: true });
  const url = backend === 'postgres' ? (await createBenchDatabase(databaseUrl!, `assistd_bench_fs_ingest_${process.pid}`)).url : null;
  const config = parseConfig({ model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fakeUrl, api_key: 'x' } }] }, {});
  config.databaseUrl = url;
  const rows: IngestRow[] = [];
  const files = await corpus();
  progress(`${backend} ingest: ${files.length} files`);
  for (const mode of ['full text alone', 'hybrid (embeddings)'] as const) {
    config.settings.embeddingModel = mode === 'hybrid (embeddings)' ? EMBEDDING_MODEL : null;
    const server = await startServer({ config, dataDir, port: 0, host: '127.0.0.1' });
    try {
      const fileIds: string[] = [];
      for (const file of files) {
        const form = new FormData();
        form.append('purpose', 'assistants');
        form.append('file', new Blob([new Uint8Array(file.bytes)]), file.name);
        const response = await fetch(`${server.url}/v1/files`, { method: 'POST', body: form });
        fileIds.push(((await response.json()) as { id: string }).id);
      }
      const started = performance.now();
      const store = await server.vectorStores.createStore({ file_ids: fileIds });
      for (;;) {
        const current = (await server.storage.vectorStores.getStore(store.id))!.store;
        if (current.file_counts.in_progress === 0) {
          if (current.file_counts.failed > 0) {
            failures++;
            progress(`${backend} ${mode}: ${current.file_counts.failed} files failed`);
          }
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const seconds = (performance.now() - started) / 1000;
      const { rows: totals } = await server.storage.sql.query<{ chunks: number; bytes: number }>(
        `SELECT count(*)::int AS chunks, (SELECT sum(length(content))::bigint FROM vector_store_files WHERE vector_store_id = $1) AS bytes FROM chunks WHERE vector_store_id = $1`,
        [store.id],
      );
      rows.push({ backend, mode, files: files.length, textMb: Number(totals[0]!.bytes) / 1024 / 1024, chunks: totals[0]!.chunks, seconds });
    } finally {
      await server.close();
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
  return rows;
}

// ------------------------------------------------------------------ 2 and 3. search and recall

interface SearchRow {
  backend: Backend;
  chunks: number;
  buildSeconds: number;
  hybridP50: number | null;
  hybridP99: number | null;
  vectorP50: number | null;
  vectorP99: number | null;
  annRecall: number;
  exactLabelled: number;
  hybridLabelled: number;
}

async function measureSearch(backend: Backend, fakeUrl: string, size: number): Promise<SearchRow> {
  const dataDir = join(tmpdir(), `assistd-bench-fs-search-${process.pid}-${backend}-${size}`);
  rmSync(dataDir, { recursive: true, force: true });
  const url = backend === 'postgres' ? (await createBenchDatabase(databaseUrl!, `assistd_bench_fs_${process.pid}_${size}`)).url : null;
  const config = parseConfig(
    { model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fakeUrl, api_key: 'x' } }], assistd_settings: { embedding_model: EMBEDDING_MODEL } },
    {},
  );
  config.databaseUrl = url;
  const server = await startServer({ config, dataDir, port: 0, host: '127.0.0.1' });
  try {
    const { storage } = server;
    const sql = storage.sql;
    const next = random(size);
    const store = await server.vectorStores.createStore({});
    const FILES = 100;
    const fileIds: string[] = [];
    for (let index = 0; index < FILES; index++) {
      const file = await storage.files.createFile({ filename: `f${index}.txt`, purpose: 'assistants', bytes: 0, blobId: 'none', mimeType: null, expiresAt: null });
      fileIds.push(file.id);
    }
    await storage.vectorStores.addFiles(store.id, fileIds.map((fileId) => ({ fileId, chunkingStrategy: { type: 'other' }, attributes: null })));
    await sql.query(`UPDATE vector_store_files SET status = 'completed' WHERE vector_store_id = $1`, [store.id]);

    progress(`${backend} search ${size}: writing chunks`);
    const started = performance.now();
    const texts: string[] = [];
    const vectors: Float32Array[] = [];
    const BATCH = 500;
    for (let start = 0; start < size; start += BATCH) {
      const values: unknown[] = [store.id];
      const tuples: string[] = [];
      for (let index = start; index < Math.min(size, start + BATCH); index++) {
        // No stop words: the fake's hashed vectors weigh every word alike (no IDF), so shared stop
        // words would make all vectors near-identical, as no real embedding model's are.
        const text = paragraph(next, 80, 0);
        const vector = embed(text, DIMENSIONS);
        texts.push(text);
        vectors.push(vector);
        values.push(fileIds[index % FILES], index, text, `[${Array.from(vector).join(',')}]`);
        const at = values.length;
        tuples.push(`($1, $${at - 3}, $${at - 2}, $${at - 1}, ${DIMENSIONS}, $${at}::vector)`);
      }
      await sql.query(`INSERT INTO chunks (vector_store_id, file_id, position, text, dimensions, embedding) VALUES ${tuples.join(', ')}`, values);
    }
    progress(`${backend} search ${size}: building the HNSW index`);
    // Room for the whole graph in memory: a build that spills to disk is many times slower.
    await sql.exec(`SET maintenance_work_mem = '${sql.kind === 'postgres' ? '1GB' : '512MB'}'`);
    await sql.exec(vectorIndexSql(DIMENSIONS));
    await sql.exec('ANALYZE chunks');
    const buildSeconds = (performance.now() - started) / 1000;

    const stored = (await storage.vectorStores.getStore(store.id))!;
    const { rows: idRows } = await sql.query<{ id: number; position: number }>('SELECT id, position FROM chunks WHERE vector_store_id = $1', [store.id]);
    const idByPosition = new Map(idRows.map((row) => [row.position, Number(row.id)]));
    const model = server.models.resolveEmbeddings(EMBEDDING_MODEL, null)!;
    const gate = new Semaphore(1);
    const hybrid: number[] = [];
    const vectorOnly: number[] = [];
    let annHits = 0;
    let exactLabelled = 0;
    let hybridLabelled = 0;
    progress(`${backend} search ${size}: ${QUERIES} labelled queries`);
    for (let query = 0; query < QUERIES; query++) {
      const label = Math.floor(next() * size);
      const words = texts[label]!.replace(/\./g, '').split(' ').filter((word) => !COMMON.includes(word));
      const text = Array.from({ length: 5 }, () => words[Math.floor(next() * words.length)]).join(' ');
      const queryVector = embed(text, DIMENSIONS);

      // exact: brute force over every vector
      const scored = vectors.map((vector, position) => {
        let dot = 0;
        for (let index = 0; index < DIMENSIONS; index++) dot += vector[index]! * queryVector[index]!;
        return { position, dot };
      });
      scored.sort((a, b) => b.dot - a.dot);
      const exact = new Set(scored.slice(0, 10).map((item) => idByPosition.get(item.position)!));
      if (exact.has(idByPosition.get(label)!)) exactLabelled++;

      let started = performance.now();
      const [embedded] = await embedAll(model, [text], { gate, maxRetries: config.settings.modelMaxRetries });
      const ann = (await vectorCandidates(sql, [store.id], embedded!, undefined)).slice(0, 10);
      vectorOnly.push(performance.now() - started);
      annHits += ann.filter((id) => exact.has(id)).length;

      started = performance.now();
      const hits = await searchStores({ storage, models: server.models, settings: config.settings }, { stores: [stored], queries: [text], maxResults: 10, scoreThreshold: 0 });
      hybrid.push(performance.now() - started);
      if (hits.some((hit) => hit.chunkId === idByPosition.get(label))) hybridLabelled++;
    }
    return {
      backend,
      chunks: size,
      buildSeconds,
      hybridP50: percentile(hybrid, 0.5),
      hybridP99: percentile(hybrid, 0.99),
      vectorP50: percentile(vectorOnly, 0.5),
      vectorP99: percentile(vectorOnly, 0.99),
      annRecall: annHits / (QUERIES * 10),
      exactLabelled: exactLabelled / QUERIES,
      hybridLabelled: hybridLabelled / QUERIES,
    };
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ run

const fake = await startFakeModel();
cleanups.push(() => fake.close());
const ms = (value: number | null) => (value === null ? '-' : value.toFixed(1));
const ingestRows: IngestRow[] = [];
const searchRows: SearchRow[] = [];
try {
  for (const backend of backends) {
    ingestRows.push(...(await measureIngestion(backend, fake.url)));
    for (const size of SIZES) searchRows.push(await measureSearch(backend, fake.url, size));
  }
} catch (error) {
  failures++;
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
}

const { node, platform, cpus, cpuModel } = machine();
const out: string[] = [];
out.push(`bench:file-search  source ${sourceRevision()}  node ${node} ${platform}, ${cpus} cpus (${cpuModel})`);
out.push(`embeddings: the fake model's (word hashing, ${DIMENSIONS} dimensions) over loopback, in this process`);
out.push('');
out.push(`1. ingestion of a mixed corpus (txt, md, html, json, csv, py, pdf, docx), from adding the files to the store to the last one indexed`);
const fullText = new Map(ingestRows.filter((row) => row.mode === 'full text alone').map((row) => [row.backend, row]));
out.push(
  table(
    ['backend', 'mode', 'files', 'text MB', 'chunks', 'seconds', 'MB/s', 'chunks/s', 'embedding s'],
    ingestRows.map((row) => [
      row.backend,
      row.mode,
      String(row.files),
      row.textMb.toFixed(1),
      String(row.chunks),
      row.seconds.toFixed(2),
      (row.textMb / row.seconds).toFixed(2),
      (row.chunks / row.seconds).toFixed(0),
      row.mode === 'full text alone' ? '-' : (row.seconds - (fullText.get(row.backend)?.seconds ?? row.seconds)).toFixed(2),
    ]),
    2,
  ),
);
out.push('   embedding s: the hybrid run less the full-text run on the same corpus: the embedding calls and the vector index writes');
out.push('');
out.push(`2. search latency in ms (${QUERIES} queries of 5 words; hybrid = query embedding + HNSW + full text + fusion + fetch; vector = embedding + HNSW top 50)`);
out.push('3. recall: ANN = HNSW top 10 against exact brute-force top 10; labelled = queries whose source chunk is in the top 10');
out.push(
  table(
    ['backend', 'chunks', 'write+index s', 'hybrid p50', 'hybrid p99', 'vector p50', 'vector p99', 'ANN recall@10', 'labelled@10 exact', 'labelled@10 hybrid'],
    searchRows.map((row) => [
      row.backend,
      String(row.chunks),
      row.buildSeconds.toFixed(1),
      ms(row.hybridP50),
      ms(row.hybridP99),
      ms(row.vectorP50),
      ms(row.vectorP99),
      row.annRecall.toFixed(3),
      row.exactLabelled.toFixed(3),
      row.hybridLabelled.toFixed(3),
    ]),
  ),
);
out.push('');
out.push(failures === 0 ? 'no errors' : `${failures} error(s)`);
process.stdout.write(`${out.join('\n')}\n`);
await cleanup();
process.exit(failures === 0 ? 0 : 1);
