/**
 * Faults with real processes over one PostgreSQL database (a database of the test's own): an API
 * replica (`serve --no-worker`) and workers (`assistd worker`), leases of 2 s. Workers are paused
 * past their lease (SIGSTOP) and resumed, killed (-9) mid-stream, mid-tool-loop, mid-ingestion and
 * mid-code-execution; an API replica holding a stream is killed; every database connection is cut.
 * Each time the run ends completed, every message is there once, and the other processes serve on.
 *
 * A stalled worker that resumes after another took its run over must write nothing: without the
 * fencing token (every executor write conditioned on its claim), its buffered answer would be
 * written over the new owner's work, or its lease check would cancel a run nobody cancelled.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { startFakeModel, type FakeModel, type FakeTurn } from './helpers/fake-model.js';
import { chatRequests, pollRun, sleep, taggedRuns, waitFor, withTimeout } from './helpers/harness.js';
import { adminQuery, createTestDatabase, tempDir } from './helpers/storage.js';
import { SANDBOX_DEFAULTS, BubblewrapDriver } from '../src/sandbox/sandbox.js';

type Json = any;

const skip = process.env.DATABASE_URL ? false : 'needs DATABASE_URL (processes share a PostgreSQL database)';
const sandboxProblem = skip ? 'no database' : await new BubblewrapDriver(SANDBOX_DEFAULTS).check();
const LEASE_SECONDS = 2;
/** Long enough for any takeover here (a lease, a sweep, a model call) on a loaded machine. */
const TAKEOVER_MS = 30_000;

const { newTag, tagOf } = taggedRuns('F');
const scripts = new Map<string, FakeTurn[]>();
const script = (tag: string, ...turns: FakeTurn[]) => scripts.set(tag, turns);
const slow = (word: string, count: number, delayMs = 100): FakeTurn => ({ chunks: Array.from({ length: count }, (_, index) => `${word}${index} `), chunkDelayMs: delayMs });
const textOf = (turn: FakeTurn) => turn.chunks!.join('');

let fake: FakeModel;
let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
let config: string;
let client: OpenAI;
let assistantId: string;
/** Every worker's code sessions (one machine's workers share them, as a deployment on one host would). */
let sessionsDir: string;

/** A worker, and its data dir (where its code sessions live). */
function startWorker(configFile = config): Promise<CliProcess & { dataDir: string }> {
  const dataDir = tempDir('faults-worker');
  const worker = Object.assign(new CliProcess(['worker', '--config', configFile, '--data-dir', dataDir], { env: assistdEnv() }), { dataDir });
  return worker.waitFor(/^assistd: worker: no HTTP/m).then(() => worker);
}

async function startApi(): Promise<{ api: CliProcess; client: OpenAI }> {
  const api = new CliProcess(['serve', '--no-worker', '--port', '0', '--config', config, '--data-dir', tempDir('faults-api')], { env: assistdEnv() });
  const { url } = listening(await api.waitFor(LISTENING));
  return { api, client: new OpenAI({ apiKey: 'unused', baseURL: `${url}/v1`, maxRetries: 0 }) };
}

async function threadWith(tag: string) {
  return client.beta.threads.create({ messages: [{ role: 'user', content: `Go on. ${tag}` }] });
}

/** The thread's assistant messages, oldest first. */
async function assistantMessages(threadId: string): Promise<Json[]> {
  const page = await client.beta.threads.messages.list(threadId, { order: 'asc' });
  return page.data.filter((message) => message.role === 'assistant');
}

const textOfMessage = (message: Json) => message.content.map((part: Json) => part.text?.value ?? '').join('');

async function steps(threadId: string, runId: string): Promise<Json[]> {
  return (await client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc' })).data;
}

/** The run ended completed with exactly one answer, `text`, in one completed message step after `toolSteps` tool steps. */
async function assertCompletedOnce(threadId: string, runId: string, text: string, toolSteps = 0) {
  const run = await pollRun(client, threadId, runId, ['completed', 'failed', 'cancelled', 'expired', 'incomplete'], TAKEOVER_MS);
  assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
  const messages = await assistantMessages(threadId);
  assert.deepEqual(messages.map((message) => [message.status, textOfMessage(message)]), [['completed', text]]);
  const all = await steps(threadId, runId);
  assert.deepEqual(
    all.map((step) => [step.type, step.status]),
    [...Array.from({ length: toolSteps }, () => ['tool_calls', 'completed']), ['message_creation', 'completed']],
  );
  assert.equal(all.at(-1).step_details.message_creation.message_id, messages[0].id);
  return { run, steps: all };
}

/** Waits until the run has an assistant message being written (the executor is mid-answer). */
function answering(threadId: string, exceptId?: string): Promise<Json> {
  return waitFor('an answer being written', async () => (await assistantMessages(threadId)).find((message) => message.status === 'in_progress' && message.id !== exceptId), TAKEOVER_MS);
}

before(async () => {
  if (skip) return;
  fake = await startFakeModel();
  fake.onRequest((request) => {
    const tag = tagOf(request.body);
    return tag ? scripts.get(tag)?.shift() : undefined;
  });
  database = await createTestDatabase('faults');
  config = join(tempDir('faults'), 'config.json');
  sessionsDir = tempDir('faults-sessions');
  chmodSync(sessionsDir, 0o755);
  writeFileSync(
    config,
    JSON.stringify({
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }],
      general_settings: { database_url: database.url },
      assistd_settings: { run_lease_seconds: LEASE_SECONDS, code_interpreter_timeout_seconds: 60, code_interpreter_sessions_dir: sessionsDir, embedding_model: 'text-embedding-3-small' },
    }),
  );
  client = (await startApi()).client;
  assistantId = (await client.beta.assistants.create({ model: 'gpt-4o' })).id;
});
after(async () => {
  await cleanUpCliProcesses();
  await fake?.close();
  await database?.drop();
});

describe('faults, with real processes over one PostgreSQL database', { skip }, () => {
  let survivor: CliProcess & { dataDir: string };

  test('a worker paused past its lease and resumed while another finishes its run writes nothing', async () => {
    const stalled = await startWorker();
    const tag = newTag();
    const requests = () => chatRequests(fake).filter((request) => tagOf(request.body) === tag);
    // The paused worker's answer arrives whole while it is stopped; it reads it when resumed.
    const first: FakeTurn = { text: 'The stalled answer.', firstByteDelayMs: 2_500 };
    const second = slow('taken', 40, 150);
    script(tag, first, second);
    const thread = await threadWith(tag);
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    await waitFor('the model asked', () => requests().length === 1, TAKEOVER_MS);
    const askedAt = Date.now();
    stalled.proc.kill('SIGSTOP');
    const taker = await startWorker();
    // The other worker takes the run up once the lease lapses, and starts its own answer.
    await answering(thread.id);
    await sleep(Math.max(0, askedAt + 3_000 - Date.now()));
    stalled.proc.kill('SIGCONT');
    await assertCompletedOnce(thread.id, run.id, textOf(second));
    // The resumed worker found its claim stale at its first write or lease renewal, and wrote nothing.
    await stalled.waitFor(/lost the lease on a run/, 'stdout', TAKEOVER_MS);
    await assertCompletedOnce(thread.id, run.id, textOf(second));
    assert.equal(requests().length, 2);

    // The resumed worker serves on: with the other one gone, it runs the next run.
    await taker.stop('SIGTERM');
    const next = newTag();
    script(next, { text: 'Still here.' });
    const again = await threadWith(next);
    const done = await client.beta.threads.runs.createAndPoll(again.id, { assistant_id: assistantId }, { pollIntervalMs: 20 });
    assert.equal(done.status, 'completed');
    survivor = stalled;
  });

  test('kill -9 of a worker mid-stream: another takes the run over and answers it once', async () => {
    const tag = newTag();
    script(tag, slow('killed', 60), { text: 'Answered after the crash.' });
    const thread = await threadWith(tag);
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    await answering(thread.id);
    const next = await startWorker();
    survivor.proc.kill('SIGKILL');
    await survivor.waitExit();
    survivor = next;
    await assertCompletedOnce(thread.id, run.id, 'Answered after the crash.');
  });

  test('kill -9 of the API replica holding a streamed run: a worker finishes it, another replica serves it', async () => {
    const tag = newTag();
    script(tag, slow('streamed', 60), { text: 'Finished by a worker.' });
    const thread = await threadWith(tag);
    const doomed = await startApi();
    const stream = doomed.client.beta.threads.runs.stream(thread.id, { assistant_id: assistantId });
    const broken = stream.finalRun().then(
      () => assert.fail('the stream ended normally though its server was killed'),
      () => 'broken',
    );
    const runId = await withTimeout(new Promise<string>((resolve) => stream.once('textDelta', () => resolve(stream.currentRun()!.id))), 'first delta');
    doomed.api.proc.kill('SIGKILL');
    assert.equal(await withTimeout(broken, 'the stream breaks'), 'broken');
    await assertCompletedOnce(thread.id, runId, 'Finished by a worker.');
  });

  test('kill -9 of a worker mid-ingestion: another indexes the file, its chunks once', async () => {
    const store = await client.vectorStores.create({ name: 'faults' });
    fake.embeddings.delayMs = 60_000;
    const embeddingsBefore = fake.requests.filter((request) => request.path.endsWith('/embeddings')).length;
    const lines = Array.from({ length: 400 }, (_, index) => `Line ${index}: the harbour master keeps the ledger of ships number ${index}.`).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(lines), 'ledger.txt'), purpose: 'assistants' });
    await client.vectorStores.files.create(store.id, { file_id: file.id });
    await waitFor('the worker embedding the file', () => fake.requests.filter((request) => request.path.endsWith('/embeddings')).length > embeddingsBefore, TAKEOVER_MS);
    fake.embeddings.delayMs = 0;
    const next = await startWorker();
    survivor.proc.kill('SIGKILL');
    await survivor.waitExit();
    survivor = next;
    const indexed = await waitFor('the file indexed', async () => {
      const current = await client.vectorStores.files.retrieve(file.id, { vector_store_id: store.id });
      return current.status !== 'in_progress' ? current : undefined;
    }, TAKEOVER_MS);
    assert.equal(indexed.status, 'completed', JSON.stringify(indexed.last_error));
    const [counts] = await adminQuery<{ chunks: number; positions: number }>(
      `SELECT count(*)::int AS chunks, count(DISTINCT position)::int AS positions FROM chunks WHERE file_id = $1`,
      [file.id],
      database!.name,
    );
    assert.ok(counts!.chunks > 1, 'the file was chunked');
    assert.equal(counts!.chunks, counts!.positions, 'each chunk stored once');
    assert.equal((await client.vectorStores.retrieve(store.id)).file_counts.completed, 1);
    storeId = store.id;
  });

  let storeId: string;

  test('kill -9 of a worker mid-tool-loop: the finished search is kept, only the cut-off answer is redone', async () => {
    const searching = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [storeId] } } });
    const tag = newTag();
    script(
      tag,
      { toolCalls: [{ name: 'file_search', arguments: JSON.stringify({ queries: ['ledger of ships'] }) }] },
      slow('cut', 60),
      { text: 'The ledger lists the ships.' },
    );
    const thread = await threadWith(tag);
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: searching.id });
    await answering(thread.id);
    const next = await startWorker();
    survivor.proc.kill('SIGKILL');
    await survivor.waitExit();
    survivor = next;
    const { steps: all } = await assertCompletedOnce(thread.id, run.id, 'The ledger lists the ships.', 1);
    const call = all[0].step_details.tool_calls[0];
    assert.equal(call.type, 'file_search');
    const requests = chatRequests(fake).filter((request) => tagOf(request.body) === tag);
    assert.equal(requests.length, 3, 'the search once, the answer twice');
    // The retried answer was asked with the search's results, as the cut-off one was.
    assert.deepEqual(requests[2]!.body.messages, requests[1]!.body.messages);
  });

  test('kill -9 of a worker mid-code-execution: the code runs again elsewhere, its kernel gone with the worker', { skip: sandboxProblem ? `no sandbox here: ${sandboxProblem}` : false }, async () => {
    const coding = await client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
    const tag = newTag();
    script(
      tag,
      { toolCalls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: "import time\nopen('started', 'w').write('1')\ntime.sleep(120)" }) }] },
      { toolCalls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code: 'print(6 * 7)' }) }] },
      { text: 'It is 42.' },
    );
    const thread = await threadWith(tag);
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: coding.id });
    const killed = survivor;
    const session = join(sessionsDir, createHash('sha256').update(thread.id).digest('hex').slice(0, 32));
    await waitFor('the code running', () => existsSync(join(session, 'started')), TAKEOVER_MS);
    const kernel = processesMatching(session);
    assert.ok(kernel.length > 0, 'its kernel runs');
    const next = await startWorker();
    killed.proc.kill('SIGKILL');
    await killed.waitExit();
    survivor = next;
    // The kernel (bubblewrap and the Python in it) dies with the worker.
    await waitFor('the killed worker\'s kernel gone', () => kernel.every((pid) => !isAlive(pid)), TAKEOVER_MS);
    const { steps: all } = await assertCompletedOnce(thread.id, run.id, 'It is 42.', 1);
    const call = all[0].step_details.tool_calls[0];
    assert.equal(call.code_interpreter.input, 'print(6 * 7)');
    assert.deepEqual(call.code_interpreter.outputs, [{ type: 'logs', logs: '42\n' }]);
  });

  test('every database connection cut mid-stream: the processes reconnect and the run completes once', async () => {
    const tag = newTag();
    const answer = slow('through', 30);
    script(tag, answer, answer);
    const thread = await threadWith(tag);
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    await answering(thread.id);
    const cut = await adminQuery<{ ended: boolean }>(
      `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [database!.name],
    );
    assert.ok(cut.length > 0, 'connections were cut');
    // A request that meets a cut connection gets 503 database_unavailable (Retry-After: 1), which
    // the SDK retries: from here on this client retries, as clients with default settings do.
    const noRetries = client;
    client = client.withOptions({ maxRetries: 5 });
    try {
      await assertCompletedOnce(thread.id, run.id, textOf(answer));
      // Both processes serve on.
      const next = newTag();
      script(next, { text: 'After the cut.' });
      const again = await threadWith(next);
      const done = await client.beta.threads.runs.createAndPoll(again.id, { assistant_id: assistantId }, { pollIntervalMs: 20 });
      assert.equal(done.status, 'completed');
    } finally {
      client = noRetries;
    }
  });

  test('the model failing: 429 then an answer, a broken stream then an answer, 500s throughout, a hang; every run ends, each answer once', async () => {
    // A worker of its own with short model timeouts and one retry, so a hang ends within seconds.
    const modelConfig = join(tempDir('faults-model'), 'config.json');
    const settings = JSON.parse(readFileSync(config, 'utf8'));
    settings.assistd_settings = { ...settings.assistd_settings, model_timeout_seconds: 2, model_max_retries: 1 };
    writeFileSync(modelConfig, JSON.stringify(settings));
    await survivor?.stop('SIGTERM');
    survivor = await startWorker(modelConfig);
    const cases: { turns: FakeTurn[]; status: string; answer?: string; code?: string }[] = [
      { turns: [{ status: 429, retryAfter: '0', errorMessage: 'slow down' }, { text: 'After the 429.' }], status: 'completed', answer: 'After the 429.' },
      { turns: [{ chunks: ['Cut ', 'off ', 'here '], breakAfterChunks: 2 }, { text: 'After the broken stream.' }], status: 'completed', answer: 'After the broken stream.' },
      { turns: [{ status: 500, errorMessage: 'down' }, { status: 500, errorMessage: 'still down' }], status: 'failed', code: 'server_error' },
      { turns: [{ hang: true }, { hang: true }], status: 'failed', code: 'server_error' },
    ];
    const runs = await Promise.all(
      cases.map(async (entry) => {
        const tag = newTag();
        script(tag, ...entry.turns);
        const thread = await threadWith(tag);
        return { entry, thread, run: await client.beta.threads.runs.create(thread.id, { assistant_id: assistantId }) };
      }),
    );
    for (const { entry, thread, run } of runs) {
      const final = await pollRun(client, thread.id, run.id, ['completed', 'failed', 'cancelled', 'expired', 'incomplete'], TAKEOVER_MS);
      assert.equal(final.status, entry.status, JSON.stringify(final.last_error));
      if (entry.answer) await assertCompletedOnce(thread.id, run.id, entry.answer);
      else {
        assert.equal(final.last_error?.code, entry.code);
        assert.ok((await assistantMessages(thread.id)).every((message) => message.status !== 'in_progress'), 'no message left in progress');
      }
    }
  });

  test('SIGTERM drains a worker: past the grace period it hands its run on at once (not at its lease\'s end) and exits 0', async () => {
    // Leases of 300 s here (swept for every 100 s): only the hand-back lets another worker finish the run within TAKEOVER_MS.
    const drainConfig = join(tempDir('faults-drain'), 'config.json');
    const settings = JSON.parse(readFileSync(config, 'utf8'));
    settings.assistd_settings = { ...settings.assistd_settings, run_lease_seconds: 300, shutdown_grace_seconds: 1 };
    writeFileSync(drainConfig, JSON.stringify(settings));
    const draining = await startWorker(drainConfig);
    await survivor?.stop('SIGTERM');
    const tag = newTag();
    script(tag, slow('drained', 100), { text: 'Finished after the hand-back.' });
    const thread = await threadWith(tag);
    const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    await answering(thread.id);
    const taker = await startWorker(drainConfig);
    const exit = await draining.stop('SIGTERM', TAKEOVER_MS);
    assert.deepEqual(exit, { code: 0, signal: null }, draining.describe());
    assert.match(draining.stdout, /SIGTERM received: .*in flight have up to 1 s to finish/);
    await assertCompletedOnce(thread.id, run.id, 'Finished after the hand-back.');
    survivor = taker;
  });
});

/** The processes on this machine with `marker` in their command line. */
function processesMatching(marker: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
