/**
 * The real CLI with runs in flight, a scripted fake model behind it: what a run logs when it names
 * tools this server does not run yet, and what SIGTERM does to streamed and background runs (they
 * finish within the grace period; past it, or at a second signal, streams get an `error` event and
 * the run resumes at the next start; requests arriving meanwhile get a 503 in OpenAI's shape).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { startFakeModel, type FakeModel, type FakeTurn } from './helpers/fake-model.js';
import { pollRun, withTimeout } from './helpers/harness.js';
import { preparedDataDir, tempDir } from './helpers/storage.js';

type Json = any;

let fake: FakeModel;
// The tests run at once: each tags its user messages, and the fake answers a request with the turns
// scripted for the tag it carries.
const scripts = new Map<string, FakeTurn[]>();
let tags = 0;
function script(...turns: FakeTurn[]): string {
  const tag = `[[C${++tags}]]`;
  scripts.set(tag, turns);
  return tag;
}
before(async () => {
  fake = await startFakeModel();
  fake.onRequest((request) => {
    const text = JSON.stringify(request.body?.messages ?? []);
    for (const [tag, turns] of scripts) if (text.includes(tag)) return turns.shift();
    return undefined;
  });
});
after(async () => {
  await cleanUpCliProcesses();
  await fake?.close();
});

interface Serving {
  cli: CliProcess;
  url: string;
  client: OpenAI;
}

/** `assistd serve` on `dataDir`, every model routed to the fake, no master key, `settings` as assistd_settings. */
async function serve(dataDir: string, settings: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<Serving> {
  const config = join(tempDir('cli-runs'), 'config.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }],
      assistd_settings: settings,
    }),
  );
  const cli = new CliProcess(['serve', '--port', '0', '--data-dir', dataDir, '--config', config], { env: assistdEnv(env) });
  const { url } = listening(await cli.waitFor(LISTENING));
  await cli.waitFor(/^assistd: model: /m);
  return { cli, url, client: new OpenAI({ apiKey: 'unused', baseURL: `${url}/v1`, maxRetries: 0 }) };
}

const COUNT = ['one', ' two', ' three', ' four', ' five', ' six', ' seven', ' eight'];

/** A streamed run whose answer takes `COUNT.length × delayMs`; resolves once its first text delta arrived. */
async function slowStream(server: Serving, delayMs: number, ...later: FakeTurn[]) {
  const tag = script({ chunks: COUNT, chunkDelayMs: delayMs }, ...later);
  const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
  const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `count ${tag}` }] });
  const stream = server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
  const text: string[] = [];
  const firstDelta = new Promise<void>((resolve) =>
    stream.on('textDelta', (delta) => {
      text.push(delta.value ?? '');
      resolve();
    }),
  );
  const finalRun = stream.finalRun();
  finalRun.catch(() => {}); // awaited by the tests; an early failure is theirs to report
  await withTimeout(firstDelta, 'first text delta');
  return { thread, stream, text, finalRun };
}

describe('the real CLI with runs in flight', { concurrency: true }, () => {
  test('at info level the logs are JSON lines naming their request or run, with no key and no message text', async () => {
    const server = await serve(await preparedDataDir(), {}, { ASSISTD_LOG_LEVEL: 'info' });
    const question = 'the harbour code is zq-7391-kx';
    const answer = 'the ledger says ab-4410-yw';
    const tag = script({ text: answer }, { status: 500, errorMessage: `upstream trouble about ${question}` }, { text: answer });
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o', instructions: 'Keep the ledger.' });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `${question} ${tag}` }] });
    const streamed = await withTimeout(server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }).finalRun(), 'streamed run');
    assert.equal(streamed.status, 'completed');
    // A model error that is retried logs a warning with the run's id.
    const polled = await server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, { pollIntervalMs: 20 });
    assert.equal(polled.status, 'completed');
    await server.cli.stop();
    const lines = server.cli.stdout.split('\n').filter((line) => line.startsWith('{'));
    assert.ok(lines.length > 4, server.cli.describe());
    let runLines = 0;
    for (const line of lines) {
      const entry = JSON.parse(line) as { reqId?: string; runId?: string; req?: unknown; res?: unknown; name?: string; msg?: string };
      if (entry.req || entry.res) assert.ok(entry.reqId, `a request's log line names the request: ${line}`);
      if (entry.name === 'runs' && /\brun\b|model call/.test(entry.msg ?? '')) assert.ok(entry.runId, `a run's log line names the run: ${line}`);
      if (entry.runId) runLines++;
      // (Markers no number in a log line can contain: timestamps and durations are digits.)
      for (const secret of [question, answer, 'Keep the ledger', 'sk-fake', 'zq-7391-kx', 'ab-4410-yw']) assert.ok(!line.includes(secret), `a log line carries '${secret}': ${line}`);
    }
    assert.ok(runLines > 0, 'the retried model call is logged with its run id');
  });

  test('the start-up says how code_interpreter runs, and a run with every kind of tool offers the model its functions and both built-in tools', async () => {
    const server = await serve(await preparedDataDir());
    try {
      await server.cli.waitFor(/^assistd: code_interpreter: Python in a bubblewrap sandbox \(\/usr\/bin\/python3; no network; .*sessions in /m);
      const weather = { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } };
      const assistant = await server.client.beta.assistants.create({
        model: 'gpt-4o-every-tool',
        tools: [{ type: 'code_interpreter' }, { type: 'file_search' }, weather],
      });
      const run: Json = await withTimeout(
        server.client.beta.threads.createAndRunPoll({ assistant_id: assistant.id, thread: { messages: [{ role: 'user', content: 'hi' }] } }),
        'createAndRunPoll',
      );
      assert.equal(run.status, 'completed');
      const request = fake.requests.find((item) => item.body?.model === 'gpt-4o-every-tool')!;
      assert.deepEqual(request.body.tools.map((tool: Json) => tool.function.name), ['get_weather', 'file_search', 'code_interpreter']);
      assert.match(request.body.messages[0].content, /code_interpreter tool/);
    } finally {
      await server.cli.stop();
    }
  });

  test('SIGTERM while a run streams: the stream finishes (finalRun completes with the whole answer), then the process exits 0', async () => {
    const server = await serve(await preparedDataDir());
    // 8 chunks 800 ms apart: longer than the 5 s streams used to get.
    const { text, finalRun } = await slowStream(server, 800);
    server.cli.proc.kill('SIGTERM');
    await server.cli.waitFor(/^assistd: SIGTERM received: /m);
    const run: Json = await withTimeout(finalRun, 'finalRun');
    assert.equal(run.status, 'completed');
    assert.equal(text.join(''), COUNT.join(''));
    assert.deepEqual(await server.cli.waitExit(), { code: 0, signal: null }, server.cli.describe());
    assert.match(server.cli.stdout, /^assistd: stopped$/m);
  });

  test('past the grace period (shutdown_grace_seconds: 1) the stream gets an error event, the process exits 0, and the run completes at the next start with one answer', async () => {
    const dataDir = await preparedDataDir();
    const server = await serve(dataDir, { shutdown_grace_seconds: 1 });
    const { thread, finalRun } = await slowStream(server, 1_000, { text: 'one two three four five six seven eight' });
    server.cli.proc.kill('SIGTERM');
    await assert.rejects(withTimeout(finalRun, 'finalRun'), /shutting down; the run resumes when it is back/);
    assert.deepEqual(await server.cli.waitExit(), { code: 0, signal: null }, server.cli.describe());

    const again = await serve(dataDir);
    try {
      const runs = await again.client.beta.threads.runs.list(thread.id);
      const run = await pollRun(again.client, thread.id, runs.data[0]!.id, ['completed']);
      assert.equal(run.status, 'completed');
      const messages = await again.client.beta.threads.messages.list(thread.id, { run_id: run.id });
      const answers = messages.data.filter((message) => message.status === 'completed');
      assert.equal(answers.length, 1, JSON.stringify(messages.data));
    } finally {
      await again.cli.stop();
    }
  });

  test('a second SIGTERM stops at once: the stream gets the error event and the process exits 0 without waiting out the grace period', async () => {
    const server = await serve(await preparedDataDir());
    const { finalRun } = await slowStream(server, 2_000);
    server.cli.proc.kill('SIGTERM');
    await server.cli.waitFor(/^assistd: SIGTERM received: /m);
    server.cli.proc.kill('SIGTERM');
    await server.cli.waitFor(/^assistd: SIGTERM received again: stopping now; runs still in progress resume at the next start$/m);
    await assert.rejects(withTimeout(finalRun, 'finalRun'), /shutting down/);
    assert.deepEqual(await server.cli.waitExit(), { code: 0, signal: null }, server.cli.describe());
  });

  test('SIGTERM while a client reads its finished stream slowly: it still gets the whole stream, to [DONE]', async () => {
    const server = await serve(await preparedDataDir(), { shutdown_grace_seconds: 5 });
    try {
      // About 12 MB of text, 25 MB of events: far more than the sockets buffer, so most of it waits
      // in the server while the client does not read.
      const tag = script({ chunks: Array.from({ length: 3_000 }, () => 'x'.repeat(4_096)) });
      const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      let received = 0;
      let head = '';
      let tail = '';
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const started = new Promise<void>((resolve) =>
        socket.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (head.length < 4_096) head += chunk.toString('latin1');
          tail = (tail + chunk.toString('latin1')).slice(-200);
          if (received > 100_000) resolve();
        }),
      );
      const body = JSON.stringify({ assistant_id: assistant.id, stream: true, thread: { messages: [{ role: 'user', content: `write ${tag}` }] } });
      socket.write(`POST /v1/threads/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await withTimeout(started, 'the stream started');
      socket.pause();
      // The run completes while the client is not reading; then the server is told to stop.
      const threadId = /"id":"(thread_\w+)","object":"thread"/.exec(head)?.[1];
      assert.ok(threadId, head.slice(0, 500));
      const [run] = (await server.client.beta.threads.runs.list(threadId)).data;
      await pollRun(server.client, threadId, run!.id, ['completed'], 30_000);
      server.cli.proc.kill('SIGTERM');
      await server.cli.waitFor(/^assistd: SIGTERM received: /m);
      await new Promise((resolve) => setTimeout(resolve, 500));
      socket.resume();
      await withTimeout(closed, 'connection closed', 30_000);
      assert.match(tail, /event: done\ndata: \[DONE\]\n\n\r\n0\r\n\r\n$/, `${received} bytes, ending ${JSON.stringify(tail.slice(-80))}`);
      assert.ok(received > 20_000_000, `${received} bytes`);
      assert.deepEqual(await server.cli.waitExit(), { code: 0, signal: null }, server.cli.describe());
    } finally {
      await server.cli.stop();
    }
  });

  test('a request that arrives during the grace period, on a connection a stream still holds, gets a 503 in OpenAI shape; the stream finishes first', async () => {
    const server = await serve(await preparedDataDir());
    try {
      const tag = script({ chunks: COUNT, chunkDelayMs: 1_000 });
      const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o' });
      const { port } = new URL(server.url);
      const socket = connect(Number(port), '127.0.0.1');
      socket.setEncoding('utf8');
      let received = '';
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const firstDelta = new Promise<void>((resolve) =>
        socket.on('data', (chunk: string) => {
          received += chunk;
          if (received.includes('thread.message.delta')) resolve();
        }),
      );
      const body = JSON.stringify({ assistant_id: assistant.id, stream: true, thread: { messages: [{ role: 'user', content: `count ${tag}` }] } });
      socket.write(`POST /v1/threads/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await withTimeout(firstDelta, 'first delta');
      server.cli.proc.kill('SIGTERM');
      await server.cli.waitFor(/^assistd: SIGTERM received: /m);
      // The next request on the same keep-alive connection, sent while the stream still runs.
      socket.write('GET /v1/assistants HTTP/1.1\r\nHost: x\r\n\r\n');
      await withTimeout(closed, 'connection closed');
      const split = received.indexOf('HTTP/1.1 503');
      assert.ok(split > 0, received);
      const stream = received.slice(0, split);
      assert.match(stream, /event: thread\.run\.completed/);
      assert.match(stream, /data: \[DONE\]/);
      const late = received.slice(split);
      assert.match(late.toLowerCase(), /\r\nconnection: close\r\n/);
      assert.deepEqual(JSON.parse(late.slice(late.indexOf('\r\n\r\n') + 4)), {
        error: { message: 'The server is shutting down. Retry the request in a moment.', type: 'server_error', param: null, code: null },
      });
      assert.deepEqual(await server.cli.waitExit(), { code: 0, signal: null }, server.cli.describe());
    } finally {
      await server.cli.stop();
    }
  });
});
