/**
 * Restart safety with a real process: `assistd serve` in a child, killed with SIGKILL at awkward
 * moments, then started again on the same storage. A run must neither be lost (stuck queued or
 * in_progress) nor answered twice (a duplicate or half-written assistant message).
 *
 * - killed mid-stream (the model has sent a few of 40 slow chunks): after the restart the model
 *   call is redone, the run completes with the second call's text, and the thread holds exactly
 *   one assistant message for it (PGlite; and PostgreSQL when DATABASE_URL is set, where the dead
 *   process's 15 s run lease has to lapse first);
 * - killed while the run waits in requires_action: it still waits after the restart, and
 *   submit_tool_outputs completes it;
 * - killed right after the run was created, before it started: it completes after the restart.
 *
 * No wall-time assertions: every wait is bounded, nothing is timed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startFakeModel, type FakeModel, type FakeTurn, type RecordedRequest } from './helpers/fake-model.js';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { http } from './helpers/server.js';
import { preparedDataDir, tempDir } from './helpers/storage.js';
import { openStorage } from '../src/storage/index.js';
import { chunkText } from '../src/ingest/chunk.js';

type Json = any;

const MASTER_KEY = `sk-restart-${randomBytes(8).toString('hex')}`;

const REQUEST_MS = 15_000;
const EXIT_MS = 10_000;
/** A resumed run on PGlite (recovered at start-up). */
const PGLITE_RESUME_MS = 30_000;
/** On PostgreSQL the dead owner's lease (15 s) lapses first, then a sweep (every 5 s) picks the run up. */
const POSTGRES_RESUME_MS = 40_000;

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired', 'incomplete']);

// ---------------------------------------------------------------------------------------------
// the fake model: turns scripted per scenario, recognised by a marker in the conversation

let fake: FakeModel;
const scripts = new Map<string, FakeTurn[]>();

function script(marker: string, ...turns: FakeTurn[]) {
  if (!scripts.has(marker)) scripts.set(marker, []);
  scripts.get(marker)!.push(...turns);
}

function requestsFor(marker: string): RecordedRequest[] {
  return fake.requests.filter((request) => request.path.endsWith('/chat/completions') && JSON.stringify(request.body?.messages ?? []).includes(marker));
}

function newMarker(label: string) {
  return `restart-${label}-${randomBytes(6).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// child processes

const cleanupPaths: string[] = [];
const databasesToDrop: string[] = [];

after(async () => {
  await cleanUpCliProcesses(EXIT_MS);
  await fake?.close();
  for (const path of cleanupPaths) rmSync(path, { recursive: true, force: true });
  if (databasesToDrop.length > 0) {
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    try {
      for (const name of databasesToDrop) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  }
});

before(async () => {
  fake = await startFakeModel();
  fake.onRequest((request) => {
    const conversation = JSON.stringify(request.body?.messages ?? []);
    for (const [marker, turns] of scripts) {
      if (conversation.includes(marker)) return turns.shift() ?? { text: `UNSCRIPTED TURN for ${marker}` };
    }
    return undefined;
  });
});

function scratchDir(label: string): string {
  const dir = tempDir(`restart-${label}`);
  cleanupPaths.push(dir);
  return dir;
}

/** Where a server keeps its data: a PGlite dir, or a fresh PostgreSQL database (plus an unused dir). */
interface Store {
  dataDir: string;
  databaseUrl?: string;
  configFile: string;
}

async function pgliteStore(): Promise<Store> {
  const dataDir = await preparedDataDir();
  cleanupPaths.push(dataDir);
  return { dataDir, configFile: writeConfig() };
}

async function postgresStore(): Promise<Store> {
  const name = `assistd_restart_${process.pid}`;
  const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  databasesToDrop.push(name);
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${name}`;
  return { dataDir: scratchDir('pg-data'), databaseUrl: url.toString(), configFile: writeConfig() };
}

/** LiteLLM-style config (JSON is YAML): every model name routes to the fake model; a master key. */
function writeConfig(): string {
  const file = join(scratchDir('config'), 'config.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'x' } }],
      general_settings: { master_key: MASTER_KEY },
      assistd_settings: { embedding_model: 'text-embedding-3-small' },
    }),
  );
  return file;
}

interface Server {
  child: CliProcess;
  url: string;
}

async function serve(store: Store): Promise<Server> {
  const child = new CliProcess(
    ['serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', store.dataDir, '--config', store.configFile],
    { env: assistdEnv({ DATABASE_URL: store.databaseUrl }) },
  );
  const { url } = listening(await child.waitFor(LISTENING));
  const health = await call(url, 'GET', '/health');
  assert.equal(health.status, 200, `GET /health: ${JSON.stringify(health.json)}\n${child.describe()}`);
  return { child, url };
}

/** A request with the master key and the assistants v2 header; `json` is the body's text when it is not JSON. */
async function call(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const response = await http({ url, apiKey: MASTER_KEY }, method, path, {
    body,
    headers: { 'openai-beta': 'assistants=v2' },
    signal: AbortSignal.timeout(REQUEST_MS),
  });
  return { status: response.status, json: response.json === undefined ? response.text : response.json };
}

async function api(server: Server, method: string, path: string, body?: unknown): Promise<Json> {
  const response = await call(server.url, method, `/v1${path}`, body);
  assert.equal(response.status, 200, `${method} ${path}: ${JSON.stringify(response.json)}\n${server.child.describe()}`);
  return response.json;
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls the run until it is terminal (or `status`); returns it with every status seen on the way. */
async function pollRun(server: Server, threadId: string, runId: string, timeoutMs: number, status?: string) {
  const seen: string[] = [];
  let last: Json;
  try {
    const run = await waitUntil(`run ${runId} to end`, timeoutMs, async () => {
      last = await api(server, 'GET', `/threads/${threadId}/runs/${runId}`);
      if (seen.at(-1) !== last.status) seen.push(last.status);
      return TERMINAL.has(last.status) || last.status === status ? last : undefined;
    });
    return { run, seen };
  } catch (error) {
    throw new Error(`${(error as Error).message}; statuses seen: ${seen.join(' → ')}; last: ${JSON.stringify(last)}\n${server.child.describe()}`);
  }
}

async function assistantMessages(server: Server, threadId: string): Promise<Json[]> {
  const list = await api(server, 'GET', `/threads/${threadId}/messages?order=asc&limit=100`);
  assert.equal(list.has_more, false);
  return list.data.filter((message: Json) => message.role === 'assistant');
}

/** Exactly one assistant message, completed, written by the run, with `text`; and one step that made it. */
async function assertOneAnswer(server: Server, threadId: string, runId: string, text: string) {
  const messages = await assistantMessages(server, threadId);
  assert.equal(messages.length, 1, `one assistant message on the thread, got ${JSON.stringify(messages, null, 1)}`);
  const [message] = messages;
  assert.equal(message.run_id, runId);
  assert.equal(message.status, 'completed');
  assert.deepEqual(message.content, [{ type: 'text', text: { value: text, annotations: [] } }]);

  const steps = (await api(server, 'GET', `/threads/${threadId}/runs/${runId}/steps?order=asc&limit=100`)).data;
  const creations = steps.filter((step: Json) => step.type === 'message_creation');
  assert.equal(creations.length, 1, `one message_creation step, got ${JSON.stringify(steps, null, 1)}`);
  assert.equal(creations[0].status, 'completed');
  assert.equal(creations[0].step_details.message_creation.message_id, message.id);
  for (const step of steps) assert.equal(step.status, 'completed', `step ${step.id} (${step.type}) completed`);
}

async function setUp(server: Server, marker: string, tools: unknown[] = []) {
  const assistant = await api(server, 'POST', '/assistants', { model: 'gpt-4o', tools });
  const thread = await api(server, 'POST', '/threads', { messages: [{ role: 'user', content: `Please answer. (${marker})` }] });
  return { assistant, thread };
}

const SLOW_CHUNKS = Array.from({ length: 40 }, (_, index) => `slow${index} `);
const SLOW_TURN: FakeTurn = { chunks: SLOW_CHUNKS, chunkDelayMs: 100 };

// ---------------------------------------------------------------------------------------------
// scenarios

/** kill -9 while the model streams; the restarted server redoes the call and answers once. */
async function killedMidStream(store: Store, resumeMs: number) {
  const marker = newMarker('midstream');
  const first = await serve(store);
  const { assistant, thread } = await setUp(first, marker);
  script(marker, SLOW_TURN);
  const run = await api(first, 'POST', `/threads/${thread.id}/runs`, { assistant_id: assistant.id });
  assert.equal(run.status, 'queued');

  await waitUntil('the fake model to have sent a few chunks', REQUEST_MS, () => {
    const [request] = requestsFor(marker);
    return request && request.chunksSent >= 5 ? request : undefined;
  });
  const during = await api(first, 'GET', `/threads/${thread.id}/runs/${run.id}`);
  assert.equal(during.status, 'in_progress');
  // The answer being written is on the thread already: a restart that kept it would show two.
  const partial = await waitUntil('the in-progress assistant message', REQUEST_MS, async () => {
    const [message] = await assistantMessages(first, thread.id);
    return message;
  });
  assert.equal(partial.status, 'in_progress');
  assert.equal(partial.run_id, run.id);
  await first.child.stop('SIGKILL', EXIT_MS);
  const [cut] = requestsFor(marker);
  assert.ok(cut!.chunksSent < SLOW_CHUNKS.length + 2, `the first model call was cut off (${cut!.chunksSent} chunks sent)`);

  const answer = 'The answer, given after the restart.';
  script(marker, { text: answer });
  const second = await serve(store);
  const { run: ended, seen } = await pollRun(second, thread.id, run.id, resumeMs);
  assert.equal(ended.status, 'completed', `run ended ${ended.status} (statuses seen: ${seen.join(' → ')}): ${JSON.stringify(ended.last_error)}`);
  assert.equal(ended.last_error, null);
  assert.notEqual(ended.completed_at, null);

  await assertOneAnswer(second, thread.id, run.id, answer);
  const requests = requestsFor(marker);
  assert.equal(requests.length, 2, 'the model was asked twice: the cut-off call, then once again');
  assert.ok(
    !requests[1]!.body.messages.some((message: Json) => message.role === 'assistant'),
    `the redone call carries nothing of the cut-off answer: ${JSON.stringify(requests[1]!.body.messages)}`,
  );
  await second.child.stop('SIGKILL', EXIT_MS);
}

/** kill -9 while a file is being indexed; after the restart it is indexed once, chunks and all. */
async function killedMidIngestion(store: Store, resumeMs: number) {
  const first = await serve(store);
  const text = Array.from({ length: 60 }, (_, index) => `Sentence ${index} tells of the harbour, the ships and the tides.`).join(' ');
  const form = new FormData();
  form.append('purpose', 'assistants');
  form.append('file', new Blob([text], { type: 'text/plain' }), 'harbour.txt');
  const uploaded = await fetch(`${first.url}/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${MASTER_KEY}` }, body: form });
  assert.equal(uploaded.status, 200);
  const file = (await uploaded.json()) as Json;
  const vectorStore = await api(first, 'POST', '/vector_stores', {});
  const strategy = { type: 'static', static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 20 } };
  const seen = fake.requests.length;
  fake.embeddings.delayMs = 60_000;
  try {
    await api(first, 'POST', `/vector_stores/${vectorStore.id}/files`, { file_id: file.id, chunking_strategy: strategy });
    await waitUntil('indexing to reach the embedding model', REQUEST_MS, () =>
      fake.requests.slice(seen).some((request) => request.path.endsWith('/embeddings')) ? true : undefined,
    );
    assert.equal((await api(first, 'GET', `/vector_stores/${vectorStore.id}/files/${file.id}`)).status, 'in_progress');
    await first.child.stop('SIGKILL', EXIT_MS);
  } finally {
    fake.embeddings.delayMs = 0;
  }

  const second = await serve(store);
  const indexed = await waitUntil('the file to be indexed after the restart', resumeMs, async () => {
    const current = await api(second, 'GET', `/vector_stores/${vectorStore.id}/files/${file.id}`);
    return current.status === 'in_progress' ? undefined : current;
  });
  assert.equal(indexed.status, 'completed', JSON.stringify(indexed.last_error));
  const counts = await api(second, 'GET', `/vector_stores/${vectorStore.id}`);
  assert.deepEqual(counts.file_counts, { in_progress: 0, completed: 1, failed: 0, cancelled: 0, total: 1 });
  const hits = await api(second, 'POST', `/vector_stores/${vectorStore.id}/search`, { query: 'harbour ships tides', max_num_results: 50 });
  await second.child.stop('SIGTERM', EXIT_MS);

  // Exactly the chunks one indexing writes: none left over from the cut-off attempt.
  const expected = chunkText(text, { maxTokens: 100, overlapTokens: 20 }).chunks.length;
  const storage = await openStorage({ databaseUrl: store.databaseUrl ?? null, dataDir: store.dataDir });
  try {
    const { rows } = await storage.sql.query<{ n: number; positions: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT position)::int AS positions FROM chunks WHERE file_id = $1',
      [file.id],
    );
    assert.deepEqual(rows[0], { n: expected, positions: expected });
  } finally {
    await storage.close();
  }
  assert.equal(new Set(hits.data.map((hit: Json) => hit.content[0].text)).size, hits.data.length, 'no passage found twice');
}

describe('restart safety: kill -9 and start again (PGlite)', () => {
  test('killed while a file is being indexed: after the restart it is indexed once, with no duplicate chunks', async () => {
    await killedMidIngestion(await pgliteStore(), PGLITE_RESUME_MS);
  });

  test('killed while the model streams: the run completes after the restart, with one answer', async () => {
    await killedMidStream(await pgliteStore(), PGLITE_RESUME_MS);
  });

  test('killed while the run waits in requires_action: still waiting after the restart; tool outputs complete it', async () => {
    const store = await pgliteStore();
    const marker = newMarker('action');
    const first = await serve(store);
    const tool = {
      type: 'function',
      function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
    };
    const { assistant, thread } = await setUp(first, marker, [tool]);
    script(marker, { toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] });
    const run = await api(first, 'POST', `/threads/${thread.id}/runs`, { assistant_id: assistant.id });
    const { run: waiting } = await pollRun(first, thread.id, run.id, REQUEST_MS, 'requires_action');
    assert.equal(waiting.status, 'requires_action');
    await first.child.stop('SIGKILL', EXIT_MS);

    const answer = 'It is sunny in Paris.';
    script(marker, { text: answer });
    const second = await serve(store);
    const afterRestart = await api(second, 'GET', `/threads/${thread.id}/runs/${run.id}`);
    assert.equal(afterRestart.status, 'requires_action');
    assert.deepEqual(afterRestart.required_action, waiting.required_action);
    assert.equal(requestsFor(marker).length, 1, 'a run waiting for tool outputs is not resumed on its own');
    // Past a maintenance tick of the new process, it is still waiting.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const later = await api(second, 'GET', `/threads/${thread.id}/runs/${run.id}`);
    assert.equal(later.status, 'requires_action');
    assert.equal(requestsFor(marker).length, 1);

    const [toolCall] = waiting.required_action.submit_tool_outputs.tool_calls;
    const submitted = await api(second, 'POST', `/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, {
      tool_outputs: [{ tool_call_id: toolCall.id, output: '22 C and sunny' }],
    });
    assert.equal(submitted.status, 'queued');
    const { run: ended, seen } = await pollRun(second, thread.id, run.id, PGLITE_RESUME_MS);
    assert.equal(ended.status, 'completed', `statuses seen: ${seen.join(' → ')}; ${JSON.stringify(ended.last_error)}`);
    await assertOneAnswer(second, thread.id, run.id, answer);

    const requests = requestsFor(marker);
    assert.equal(requests.length, 2);
    const toolMessage = requests[1]!.body.messages.find((message: Json) => message.role === 'tool');
    assert.equal(toolMessage?.tool_call_id, toolCall.id);
    assert.equal(toolMessage?.content, '22 C and sunny');
    await second.child.stop('SIGKILL', EXIT_MS);
  });

  test('killed right after a run was created, before it started: it completes after the restart', async () => {
    const store = await pgliteStore();
    let server = await serve(store);
    const statusesAtKill: string[] = [];
    // The kill follows the create response at once, which in practice is before the executor
    // moves the run on; should it lose that race, the attempt still has to end well, and another
    // is made (up to three) so that the queued case is the one exercised.
    for (let attempt = 0; attempt < 3 && !statusesAtKill.includes('queued'); attempt++) {
      const marker = newMarker(`queued${attempt}`);
      const { assistant, thread } = await setUp(server, marker);
      const answer = `Answered by the restarted server (${attempt}).`;
      script(marker, { text: answer });
      const run = await api(server, 'POST', `/threads/${thread.id}/runs`, { assistant_id: assistant.id });
      await server.child.stop('SIGKILL', EXIT_MS);
      assert.equal(run.status, 'queued');

      // What the dead process left behind, read from a copy so the restart finds the crashed files untouched.
      const copy = scratchDir('copy');
      cpSync(store.dataDir, copy, { recursive: true });
      const inspection = await openStorage({ dataDir: copy });
      const atKill = (await inspection.runs.getRunById(run.id))?.status;
      await inspection.close();
      rmSync(copy, { recursive: true, force: true });
      assert.ok(atKill === 'queued' || atKill === 'in_progress', `status at kill: ${atKill}`);
      statusesAtKill.push(atKill);
      const modelCalledBeforeKill = requestsFor(marker).length > 0;
      if (atKill === 'queued') assert.equal(modelCalledBeforeKill, false);

      server = await serve(store);
      const { run: ended, seen } = await pollRun(server, thread.id, run.id, PGLITE_RESUME_MS);
      assert.equal(ended.status, 'completed', `status at kill: ${atKill}; statuses seen: ${seen.join(' → ')}; ${JSON.stringify(ended.last_error)}`);
      await assertOneAnswer(server, thread.id, run.id, answer);
      // A model call the first process had begun was cut off and made again.
      assert.equal(requestsFor(marker).length, modelCalledBeforeKill ? 2 : 1);
    }
    assert.ok(statusesAtKill.includes('queued'), `a run was still queued when the process died (statuses at kill: ${statusesAtKill.join(', ')})`);
    await server.child.stop('SIGKILL', EXIT_MS);
  });
});

describe('restart safety: kill -9 and start again (PostgreSQL)', { skip: process.env.DATABASE_URL ? false : 'DATABASE_URL is not set' }, () => {
  test('killed while a file is being indexed: once the dead lease lapses it is indexed once, with no duplicate chunks', async () => {
    await killedMidIngestion(await postgresStore(), POSTGRES_RESUME_MS);
  });

  test('killed while the model streams: once the dead lease lapses the run completes, with one answer', async () => {
    await killedMidStream(await postgresStore(), POSTGRES_RESUME_MS);
  });
});
