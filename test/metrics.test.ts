/**
 * GET /metrics: Prometheus text from prom-client, open to scrapers like /health. Runs by status from
 * the database, runs this process finished and how long they took, model calls and time to first
 * token by model, streams open, the queue's oldest wait, ingestion backlog, live kernels, the
 * database pool, HTTP requests by route pattern (never by id), and no message contents.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { withTimeout } from './helpers/harness.js';
import { http, startTestServer, type TestServer } from './helpers/server.js';

let fake: FakeModel;
let server: TestServer;
before(async () => {
  fake = await startFakeModel();
  server = await startTestServer({ modelUrl: fake.url });
});
after(async () => {
  await server?.close();
  await fake?.close();
});

async function scrape(): Promise<{ text: string; value: (series: string) => number | undefined }> {
  const response = await http(server, 'GET', '/metrics', { auth: false });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const values = new Map<string, number>();
  for (const line of response.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { text: response.text, value: (series) => values.get(series) };
}

describe('GET /metrics', () => {
  test('runs, model calls, time to first token and HTTP routes, counted as they happen', async () => {
    const before = await scrape();
    const finished = (status: string) => before.value(`assistd_runs_finished_total{status="${status}"}`) ?? 0;
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'a private question about my taxes' }] });
    fake.enqueue({ text: 'A polled answer.' }, { text: 'A streamed answer.' });
    await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 10 }), 'createAndPoll');
    await withTimeout(server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }).finalRun(), 'stream');

    const after = await scrape();
    assert.equal(after.value('assistd_runs_finished_total{status="completed"}'), finished('completed') + 2);
    assert.ok((after.value('assistd_runs{status="completed"}') ?? 0) >= 2);
    assert.equal(after.value('assistd_runs{status="queued"}'), 0);
    assert.equal(after.value('assistd_queue_oldest_seconds'), 0);
    assert.equal(after.value('assistd_run_duration_seconds_count{status="completed"}'), (before.value('assistd_run_duration_seconds_count{status="completed"}') ?? 0) + 2);
    assert.equal(after.value('assistd_model_calls_total{model="gpt-4o",outcome="ok"}'), (before.value('assistd_model_calls_total{model="gpt-4o",outcome="ok"}') ?? 0) + 2);
    assert.equal(after.value('assistd_time_to_first_token_seconds_count{model="gpt-4o"}'), (before.value('assistd_time_to_first_token_seconds_count{model="gpt-4o"}') ?? 0) + 2);
    assert.equal(after.value('assistd_active_streams'), 0);
    assert.equal(after.value('assistd_ingestion_backlog_files'), 0);
    assert.equal(after.value('assistd_code_interpreter_kernels') !== undefined, true);
    assert.ok((after.value('assistd_http_request_duration_seconds_count{method="POST",route="/v1/threads/:thread_id/runs",status="200"}') ?? 0) >= 2);
    assert.ok(after.value('assistd_process_resident_memory_bytes')! > 0, "Node's process metrics");
    // Route patterns, never paths: no id becomes a series, and no content leaves.
    assert.doesNotMatch(after.text, new RegExp(thread.id));
    assert.doesNotMatch(after.text, /taxes|polled answer/);
    assert.doesNotMatch(after.text, new RegExp(server.apiKey));
    if (server.storage.sql.kind === 'postgres') assert.ok((after.value('assistd_database_connections{state="max"}') ?? 0) > 0);
  });

  test('a stream counts as open while it runs; a failing model call counts as an error', async () => {
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
    fake.enqueue({ text: 'slow words arrive one at a time here', chunkDelayMs: 150 });
    const stream = server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    await new Promise<void>((resolve) => stream.once('textDelta', () => resolve()));
    assert.equal((await scrape()).value('assistd_active_streams'), 1);
    await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal((await scrape()).value('assistd_active_streams'), 0);

    const errorsBefore = (await scrape()).value('assistd_model_calls_total{model="gpt-4o",outcome="error"}') ?? 0;
    fake.enqueue({ status: 400, errorMessage: 'refused' });
    const failed = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 10 }), 'createAndPoll');
    assert.equal(failed.status, 'failed');
    const after = await scrape();
    assert.equal(after.value('assistd_model_calls_total{model="gpt-4o",outcome="error"}'), errorsBefore + 1);
    assert.ok((after.value('assistd_runs_finished_total{status="failed"}') ?? 0) >= 1);
  });

  test('open to scrapers with no key, while the API needs one', async () => {
    assert.equal((await http(server, 'GET', '/metrics', { auth: false })).status, 200);
    assert.equal((await http(server, 'GET', '/v1/assistants', { auth: false })).status, 401);
  });
});
