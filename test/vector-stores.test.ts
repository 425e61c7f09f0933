/**
 * Vector stores through the official SDKs against a real server and a fake embeddings model:
 * stores, their files and batches with every field the spec has; ingestion of real documents
 * (PDF, DOCX, PPTX, HTML, JSON, CSV, code) with failures kept to the file that failed; hybrid and
 * full-text search with attribute filters; the embedding model recorded with each store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { makeDocx, makePdf, makePptx } from './helpers/documents.js';
import { http, startTestServer, type TestServer } from './helpers/server.js';

type Json = any;

const STORE_KEYS = ['id', 'object', 'created_at', 'name', 'usage_bytes', 'file_counts', 'status', 'expires_after', 'expires_at', 'last_active_at', 'metadata'];
const FILE_KEYS = ['id', 'object', 'usage_bytes', 'created_at', 'vector_store_id', 'status', 'last_error', 'chunking_strategy', 'attributes'];
const AUTO = { type: 'static', static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 400 } };
const POLL = { pollIntervalMs: 20 };

let fake: FakeModel;
let server: TestServer;

before(async () => {
  fake = await startFakeModel();
  server = await startTestServer({ modelUrl: fake.url, config: { assistd_settings: { embedding_model: 'text-embedding-3-small' } } });
});
after(async () => {
  await server?.close();
  await fake?.close();
});

const text = (name: string, contents: string) => toFile(Buffer.from(contents), name);
const embeddingRequests = () => fake.requests.filter((request) => request.path.endsWith('/embeddings'));

describe('vector stores', () => {
  test('create, retrieve, update, list and delete, field for field', async () => {
    const client = server.client;
    const store: Json = await client.vectorStores.create({ name: 'handbook', metadata: { team: 'docs' }, expires_after: { anchor: 'last_active_at', days: 7 } });
    assert.deepEqual(Object.keys(store), STORE_KEYS);
    assert.match(store.id, /^vs_[A-Za-z0-9]{24}$/);
    assert.equal(store.object, 'vector_store');
    assert.equal(store.name, 'handbook');
    assert.equal(store.usage_bytes, 0);
    assert.deepEqual(store.file_counts, { in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 });
    assert.equal(store.status, 'completed');
    assert.deepEqual(store.expires_after, { anchor: 'last_active_at', days: 7 });
    assert.equal(store.expires_at, store.last_active_at + 7 * 86_400);
    assert.deepEqual(store.metadata, { team: 'docs' });
    assert.deepEqual(await client.vectorStores.retrieve(store.id), store);

    const updated: Json = await client.vectorStores.update(store.id, { name: 'renamed', metadata: { team: 'eng' }, expires_after: null });
    assert.equal(updated.name, 'renamed');
    assert.deepEqual(updated.metadata, { team: 'eng' });
    assert.equal(updated.expires_after, null);
    assert.equal(updated.expires_at, null);

    const unnamed: Json = await client.vectorStores.create({});
    assert.equal(unnamed.name, '');
    const page = await client.vectorStores.list({ limit: 1 });
    assert.deepEqual(page.data.map((item) => item.id), [unnamed.id]);
    assert.equal((page as Json).has_more, true);
    const next = await client.vectorStores.list({ limit: 1, after: unnamed.id });
    assert.deepEqual(next.data.map((item) => item.id), [store.id]);

    assert.deepEqual(await client.vectorStores.delete(store.id), { id: store.id, object: 'vector_store.deleted', deleted: true });
    const gone = await http(server, 'GET', `/v1/vector_stores/${store.id}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.json.error, { message: `No vector store found with id '${store.id}'.`, type: 'invalid_request_error', param: null, code: null });
  });

  test('an expired store reads expired, and cannot be searched or added to', async () => {
    const store: Json = await server.client.vectorStores.create({ expires_after: { anchor: 'last_active_at', days: 1 } });
    await server.storage.sql.query('UPDATE vector_stores SET expires_at = $2 WHERE id = $1', [store.id, Math.floor(Date.now() / 1000) - 1]);
    assert.equal((await server.client.vectorStores.retrieve(store.id)).status, 'expired');
    const search = await http(server, 'POST', `/v1/vector_stores/${store.id}/search`, { body: { query: 'x' } });
    assert.equal(search.status, 400);
    assert.equal(search.json.error.message, `Vector store ${store.id} has expired.`);
  });

  test('files: uploadAndPoll, attributes, filter, content; deleting the file takes it out of the store', async () => {
    const client = server.client;
    const store = await client.vectorStores.create({ name: 'files' });
    const file: Json = await client.vectorStores.files.uploadAndPoll(store.id, await text('notes.txt', 'The spare key hangs behind the blue door.'), POLL);
    assert.deepEqual(Object.keys(file), FILE_KEYS);
    assert.equal(file.object, 'vector_store.file');
    assert.equal(file.vector_store_id, store.id);
    assert.equal(file.status, 'completed');
    assert.equal(file.last_error, null);
    assert.deepEqual(file.chunking_strategy, AUTO);
    assert.deepEqual(file.attributes, {});
    assert.equal(file.usage_bytes, Buffer.byteLength('The spare key hangs behind the blue door.'));

    const withAttributes: Json = await client.vectorStores.files.update(file.id, { vector_store_id: store.id, attributes: { author: 'ann', year: 2024, draft: false } });
    assert.deepEqual(withAttributes.attributes, { author: 'ann', year: 2024, draft: false });
    const content = await client.vectorStores.files.content(file.id, { vector_store_id: store.id });
    assert.deepEqual((content as Json).data ?? content, [{ type: 'text', text: 'The spare key hangs behind the blue door.' }]);

    const completed = await client.vectorStores.files.list(store.id, { filter: 'completed' });
    assert.deepEqual(completed.data.map((item) => item.id), [file.id]);
    assert.deepEqual((await client.vectorStores.files.list(store.id, { filter: 'failed' })).data, []);
    const stored: Json = await client.vectorStores.retrieve(store.id);
    assert.deepEqual(stored.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
    assert.equal(stored.usage_bytes, file.usage_bytes);

    const hits = await client.vectorStores.search(store.id, { query: 'where is the spare key?' });
    assert.equal(hits.data[0]?.file_id, file.id);
    await client.files.delete(file.id);
    assert.equal((await http(server, 'GET', `/v1/vector_stores/${store.id}/files/${file.id}`)).status, 404);
    assert.deepEqual((await client.vectorStores.search(store.id, { query: 'where is the spare key?' })).data, []);
    assert.equal((await client.vectorStores.retrieve(store.id)).file_counts.total, 0);
  });

  test('a batch of real documents: every kind is indexed, an unsupported and a corrupt file fail alone with a clear last_error', async () => {
    const client = server.client;
    const store = await client.vectorStores.create({ name: 'mixed' });
    const files = [
      await toFile(await makePdf(['Page one: the introduction.', 'Page two: methods.', 'Page three: the launch code is ZEBRA-42.']), 'report.pdf'),
      await toFile(await makeDocx(['Quarterly memo.', 'The budget for lanterns is 300 euros.']), 'memo.docx'),
      await toFile(await makePptx([['Roadmap'], ['Milestone: ship the glider in May']]), 'deck.pptx'),
      await text('page.html', '<html><body><h1>Garden</h1><p>Tulips bloom in <b>April</b>.</p><script>ignored()</script></body></html>'),
      await text('data.json', '{"river": "Danube", "length_km": 2850}'),
      await text('table.csv', 'city,population\nVienna,2000000\n'),
      await text('main.py', 'def greet():\n    return "hello from python"\n'),
      await toFile(Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe]), 'blob.bin'),
      await toFile(Buffer.from('%PDF-1.7\nthis is not really a pdf'), 'broken.pdf'),
    ];
    const batch: Json = await client.vectorStores.fileBatches.uploadAndPoll(store.id, { files }, POLL);
    assert.equal(batch.object, 'vector_store.files_batch');
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.file_counts, { in_progress: 0, completed: 7, failed: 2, cancelled: 0, total: 9 });
    const listed = await client.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: store.id, limit: 100 });
    assert.equal(listed.data.length, 9);
    const failed = (await client.vectorStores.files.list(store.id, { filter: 'failed' })).data as Json[];
    const errors = failed.map((file) => file.last_error.code).sort();
    assert.deepEqual(errors, ['invalid_file', 'unsupported_file']);
    for (const file of failed) assert.ok(file.last_error.message.length > 10, file.last_error.message);

    for (const [query, expected] of [
      ['What is the launch code?', 'ZEBRA-42'],
      ['budget for lanterns', '300 euros'],
      ['when do we ship the glider', 'glider in May'],
      ['When do tulips bloom?', 'April'],
      ['length of the Danube river', '2850'],
      ['population of Vienna', '2000000'],
      ['python greet function', 'hello from python'],
    ] as const) {
      const hits = await client.vectorStores.search(store.id, { query, max_num_results: 3 });
      assert.ok(hits.data[0]?.content[0]?.text.includes(expected), `${query}: ${JSON.stringify(hits.data.map((hit) => hit.content[0]?.text.slice(0, 60)))}`);
    }
    const html = (await client.vectorStores.search(store.id, { query: 'tulips' })).data[0]!;
    assert.doesNotMatch(html.content[0]!.text, /ignored\(\)|<p>/);
  });

  test('search: attribute filters, max_num_results, score_threshold, several queries; the result page shape', async () => {
    const client = server.client;
    const store = await client.vectorStores.create({ name: 'filters' });
    const uploads = [
      { name: 'a.txt', body: 'Apples are red fruit.', attributes: { kind: 'fruit', year: 2021, organic: true } },
      { name: 'b.txt', body: 'Bananas are yellow fruit.', attributes: { kind: 'fruit', year: 2023, organic: false } },
      { name: 'c.txt', body: 'Carrots are orange vegetables.', attributes: { kind: 'vegetable', year: 2024, organic: true } },
    ];
    const ids: string[] = [];
    for (const upload of uploads) {
      const file = await client.files.create({ file: await text(upload.name, upload.body), purpose: 'assistants' });
      await client.vectorStores.files.createAndPoll(store.id, { file_id: file.id, attributes: upload.attributes }, POLL);
      ids.push(file.id);
    }
    const search = async (body: Json) => {
      const response = await http(server, 'POST', `/v1/vector_stores/${store.id}/search`, { body });
      assert.equal(response.status, 200, response.text);
      return response.json;
    };
    const page = await search({ query: 'fruit' });
    assert.deepEqual(Object.keys(page), ['object', 'search_query', 'data', 'has_more', 'next_page']);
    assert.equal(page.object, 'vector_store.search_results.page');
    assert.deepEqual(page.search_query, ['fruit']);
    assert.deepEqual(Object.keys(page.data[0]), ['file_id', 'filename', 'score', 'attributes', 'content']);
    for (const hit of page.data) assert.ok(hit.score >= 0 && hit.score <= 1, String(hit.score));

    const files = (body: Json) => search({ query: 'fruit vegetables', ...body }).then((result) => result.data.map((hit: Json) => hit.filename).sort());
    assert.deepEqual(await files({ filters: { type: 'eq', key: 'kind', value: 'fruit' } }), ['a.txt', 'b.txt']);
    assert.deepEqual(await files({ filters: { type: 'ne', key: 'kind', value: 'fruit' } }), ['c.txt']);
    assert.deepEqual(await files({ filters: { type: 'gte', key: 'year', value: 2023 } }), ['b.txt', 'c.txt']);
    assert.deepEqual(await files({ filters: { type: 'lt', key: 'year', value: 2023 } }), ['a.txt']);
    assert.deepEqual(await files({ filters: { type: 'in', key: 'year', value: [2021, 2024] } }), ['a.txt', 'c.txt']);
    assert.deepEqual(await files({ filters: { type: 'nin', key: 'kind', value: ['vegetable'] } }), ['a.txt', 'b.txt']);
    assert.deepEqual(await files({ filters: { type: 'eq', key: 'organic', value: true } }), ['a.txt', 'c.txt']);
    assert.deepEqual(
      await files({ filters: { type: 'and', filters: [{ type: 'eq', key: 'organic', value: true }, { type: 'eq', key: 'kind', value: 'fruit' }] } }),
      ['a.txt'],
    );
    assert.deepEqual(
      await files({ filters: { type: 'or', filters: [{ type: 'eq', key: 'year', value: 2021 }, { type: 'eq', key: 'kind', value: 'vegetable' }] } }),
      ['a.txt', 'c.txt'],
    );
    assert.equal((await search({ query: 'fruit', max_num_results: 1 })).data.length, 1);
    const all = await search({ query: 'fruit' });
    const threshold = await search({ query: 'fruit', ranking_options: { score_threshold: all.data[0].score } });
    assert.ok(threshold.data.every((hit: Json) => hit.score >= all.data[0].score));
    assert.ok(threshold.data.length < all.data.length || all.data.length === 1);
    assert.deepEqual((await search({ query: ['apples', 'carrots'] })).search_query, ['apples', 'carrots']);

    const bad = await http(server, 'POST', `/v1/vector_stores/${store.id}/search`, { body: { query: 'x', filters: { type: 'gt', key: 'organic', value: true } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'filters.value');
  });

  test('file batches: create from file_ids with attributes, retrieve, cancel what is not yet indexed', async () => {
    const client = server.client;
    const store = await client.vectorStores.create({});
    const ids: string[] = [];
    for (let index = 0; index < 4; index++) ids.push((await client.files.create({ file: await text(`f${index}.txt`, `File number ${index}.`), purpose: 'assistants' })).id);
    fake.embeddings.delayMs = 400;
    try {
      const batch: Json = await client.vectorStores.fileBatches.create(store.id, { file_ids: ids, attributes: { source: 'batch' } });
      assert.equal(batch.status, 'in_progress');
      assert.equal(batch.file_counts.total, 4);
      const cancelled: Json = await client.vectorStores.fileBatches.cancel(batch.id, { vector_store_id: store.id });
      assert.equal(cancelled.status, 'cancelled');
      assert.ok(cancelled.file_counts.cancelled >= 1, JSON.stringify(cancelled.file_counts));
      assert.equal(cancelled.file_counts.in_progress, 0);
      await server.ingestion.idle();
      const after: Json = await client.vectorStores.fileBatches.retrieve(batch.id, { vector_store_id: store.id });
      assert.equal(after.file_counts.cancelled + after.file_counts.completed, 4);
      const listed = (await client.vectorStores.files.list(store.id)).data as Json[];
      for (const file of listed) assert.deepEqual(file.attributes, { source: 'batch' });
    } finally {
      fake.embeddings.delayMs = 0;
    }
  });

  test('a failing embeddings endpoint is retried; one that refuses fails the file with server_error', async () => {
    const client = server.client;
    const store = await client.vectorStores.create({});
    fake.embeddings.failures.push(503);
    const retried: Json = await client.vectorStores.files.uploadAndPoll(store.id, await text('retry.txt', 'Retried and indexed.'), POLL);
    assert.equal(retried.status, 'completed');
    fake.embeddings.failures.push(400);
    const refused: Json = await client.vectorStores.files.uploadAndPoll(store.id, await text('refused.txt', 'Never indexed.'), POLL);
    assert.equal(refused.status, 'failed');
    assert.equal(refused.last_error.code, 'server_error');
    assert.match(refused.last_error.message, /^Embedding failed: /);
  });

  test('openai 4.x: create, uploadAndPoll and search', async () => {
    const v4 = server.clientV4;
    const store: Json = await v4.vectorStores.create({ name: 'v4' });
    const file: Json = await v4.vectorStores.files.uploadAndPoll(store.id, await text('v4.txt', 'The lighthouse keeper is named Ola.'), POLL);
    assert.equal(file.status, 'completed');
    const hits: Json = await v4.vectorStores.search(store.id, { query: 'who keeps the lighthouse?' });
    assert.equal(hits.data[0].file_id, file.id);
  });

  test('each store keeps the embedding model it was made with', async () => {
    const store: Json = await server.client.vectorStores.create({});
    const row = await server.storage.sql.query<{ embedding_model: string }>('SELECT embedding_model FROM vector_stores WHERE id = $1', [store.id]);
    assert.equal(row.rows[0]!.embedding_model, 'text-embedding-3-small');
    const seen = embeddingRequests().length;
    await server.client.vectorStores.files.uploadAndPoll(store.id, await text('m.txt', 'Model check.'), POLL);
    const requests = embeddingRequests().slice(seen);
    assert.ok(requests.length >= 1);
    for (const request of requests) assert.equal(request.body.model, 'text-embedding-3-small');
  });
});

describe('vector stores with no embedding model: full-text search alone', () => {
  let plain: TestServer;
  before(async () => {
    plain = await startTestServer({ modelUrl: fake.url });
  });
  after(async () => {
    await plain?.close();
  });

  test('files are indexed without embeddings and found by their words', async () => {
    const seen = embeddingRequests().length;
    const store = await plain.client.vectorStores.create({});
    await plain.client.vectorStores.files.uploadAndPoll(store.id, await text('owl.txt', 'The owl hunts at night in the pine forest.'), POLL);
    await plain.client.vectorStores.files.uploadAndPoll(store.id, await text('bee.txt', 'The bee gathers pollen in the meadow.'), POLL);
    const hits = await plain.client.vectorStores.search(store.id, { query: 'where does the owl hunt?' });
    assert.equal(hits.data[0]?.filename, 'owl.txt');
    assert.equal(hits.data[0]?.score, 1);
    assert.equal(embeddingRequests().length, seen, 'no embeddings were asked for');
  });
});
