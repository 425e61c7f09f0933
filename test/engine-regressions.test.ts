/**
 * Regression tests for defects a code review found in the run engine. Each test fails on the
 * engine as it was before the fixes:
 *
 * 1. a run interrupted (server shut down) after a turn wrote its text and began a tool call is
 *    resumed by redoing the whole turn, not completed with the preamble as its final answer
 *    (PGlite only: two servers one after the other on one data dir);
 * 2. a cancel racing the end of a fast stream, or the start of a run: the run always ends
 *    terminal (never stuck in `cancelling`), and a stream never announces `thread.run.completed`
 *    for a run that is not. The plain races rarely hit the old window on PGlite, so two variants
 *    widen it by making one database step slow (a method of the server's storage wrapped with a
 *    delay) and land the cancel inside it every time;
 * 3. a thread deleted while its run streams: no `data: undefined` (or any non-JSON data) on the
 *    stream, the stream ends, and the lease heartbeat aborts the upstream call;
 * 4. a stream cut off mid tool call and retried with a text answer: the text is stored, the
 *    cut-off tool step fails, and the retry does not replay the failed attempt;
 * 5. submit_tool_outputs streamed right as requires_action arrives gets its own pass (events, not
 *    an empty "queued then done" stream); a variant keeps the paused pass finishing (its lease
 *    release slowed) so the submit always arrives while it is still running;
 * 6. afterwards nothing is left running or listening.
 *
 * Every wait is bounded; nothing is timed beyond those bounds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import { parseConfig } from '../src/config.js';
import { startServer, type RunningServer } from '../src/server.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { chatRequests, pollRun, sleep, taggedRuns, waitFor, withTimeout } from './helpers/harness.js';
import { http, type TestServer } from './helpers/server.js';
import { preparedDataDir } from './helpers/storage.js';

type Json = any;

// ---------------------------------------------------------------- helpers

const TERMINAL = ['completed', 'failed', 'cancelled', 'expired', 'incomplete'];
const SETTINGS = { model_max_retries: 1, model_timeout_seconds: 2 };
const textContent = (value: string) => [{ type: 'text', text: { value, annotations: [] } }];

const lookupTool = {
  type: 'function' as const,
  function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } },
};

const { newTag, useHarness } = taggedRuns('R');

function configDocument(fakeUrl: string, masterKey: string) {
  return {
    model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fakeUrl, api_key: 'x' } }],
    general_settings: { master_key: masterKey },
    assistd_settings: SETTINGS,
  };
}

/**
 * Replaces `target[key]` (an own or inherited method) with a wrapper of the original until the
 * returned function is called. Used to stand in for a slow database at one precise moment.
 */
function patchMethod(target: object, key: string, wrap: (original: (...args: any[]) => any) => (...args: any[]) => any): () => void {
  const object = target as Record<string, any>;
  const own = Object.prototype.hasOwnProperty.call(object, key);
  const original = object[key] as (...args: any[]) => any;
  object[key] = wrap((...args: any[]) => original.apply(object, args));
  return () => {
    if (own) object[key] = original;
    else delete object[key];
  };
}

/** A wrapper that waits `ms` before calling the original. */
const delayed = (ms: number) => (original: (...args: any[]) => any) => async (...args: any[]) => {
  await sleep(ms);
  return original(...args);
};

/** A wrapper that waits `ms` after the original answered, before handing its result on. */
const delayedAfter = (ms: number) => (original: (...args: any[]) => any) => async (...args: any[]) => {
  const result = await original(...args);
  await sleep(ms);
  return result;
};

// ---------------------------------------------------------------- raw SSE

interface SseEvent {
  event: string;
  data: string;
}

interface SseCapture {
  text: string;
  events: SseEvent[];
  ended: boolean;
  error: unknown;
  /** Resolves when the response body ends (or fails). */
  done: Promise<void>;
  abort(): void;
  count(event: string): number;
  find(event: string): SseEvent | undefined;
}

/** POSTs `body` and reads the SSE answer as it arrives, keeping the raw text and the parsed events. */
async function openSse(server: { url: string; apiKey: string }, path: string, body: unknown): Promise<SseCapture> {
  const controller = new AbortController();
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  if (response.status !== 200) assert.fail(`POST ${path} → ${response.status}: ${await response.text()}`);
  const capture: SseCapture = {
    text: '',
    events: [],
    ended: false,
    error: undefined,
    done: Promise.resolve(),
    abort: () => controller.abort(),
    count: (event) => capture.events.filter((item) => item.event === event).length,
    find: (event) => capture.events.find((item) => item.event === event),
  };
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  capture.done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        capture.text += text;
        buffer += text;
        let index: number;
        while ((index = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, index);
          buffer = buffer.slice(index + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trimStart();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          capture.events.push({ event, data: data.join('\n') });
        }
      }
    } catch (error) {
      capture.error = error;
    } finally {
      capture.ended = true;
    }
  })();
  return capture;
}

/** Every data line is a JSON object, except the final `[DONE]`; none is `undefined`. */
function assertWellFormed(capture: SseCapture) {
  const at = capture.text.indexOf('data: undefined');
  assert.ok(at < 0, `the stream has a 'data: undefined' line:\n…${capture.text.slice(Math.max(0, at - 600), at + 200)}`);
  for (const { event, data } of capture.events) {
    if (data === '[DONE]') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      assert.fail(`event ${event} has data that is not JSON: ${JSON.stringify(data)}`);
    }
    assert.ok(parsed !== null && typeof parsed === 'object', `event ${event} has data that is not an object: ${data}`);
  }
}

// ================================================================ 1. resume after a mid-turn interruption

describe('engine regressions: resume after an interruption mid-turn (PGlite, two servers on one data dir)', () => {
  let fake: FakeModel;
  let dataDir: string;
  const servers: RunningServer[] = [];
  const masterKey = 'sk-regression-resume';

  before(async () => {
    fake = await startFakeModel();
    dataDir = await preparedDataDir();
  });
  after(async () => {
    for (const server of servers) await server.close().catch(() => {});
    await fake?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(): Promise<{ server: RunningServer; client: OpenAI }> {
    const config = parseConfig(configDocument(fake.url, masterKey), {});
    config.databaseUrl = null;
    const server = await startServer({ config, dataDir, port: 0, host: '127.0.0.1', shutdownGraceMs: 0 });
    servers.push(server);
    return { server, client: new OpenAI({ apiKey: masterKey, baseURL: `${server.url}/v1`, maxRetries: 0 }) };
  }

  test('text then a begun tool call, server shut down: after the restart the turn is redone and the run completes with the new answer only', async () => {
    let phase: 'before' | 'after' = 'before';
    // The text arrives, then the tool call begins; the turn is still streaming (slowly) when the
    // server shuts down. After the restart the model answers with text only.
    fake.onRequest(() =>
      phase === 'before'
        ? { text: 'Let me look that up.', toolCalls: [{ id: 'call_resume', name: 'lookup', arguments: '{"q":"x"}' }], chunkDelayMs: 400 }
        : { text: 'Final answer.' },
    );
    const first = await start();
    const assistant = await first.client.beta.assistants.create({ model: 'gpt-4o', tools: [lookupTool] });
    const thread = await first.client.beta.threads.create({ messages: [{ role: 'user', content: 'Look something up.' }] });
    const run = await first.client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });

    // The message step is written complete and the tool step has begun, in the same turn.
    const steps = await waitFor(
      'the text to be written and the tool call to begin',
      async () => {
        const { steps: found } = await first.server.storage.runs.promptHistory(run.id, thread.id);
        const message = found.find((step) => step.type === 'message_creation');
        const tool = found.find((step) => step.type === 'tool_calls');
        return message?.status === 'completed' && tool?.status === 'in_progress' ? found : undefined;
      },
      10_000,
    );
    assert.equal(new Set(steps.map((step) => step.turn)).size, 1, 'both steps belong to one model call');
    const upstream = chatRequests(fake);
    assert.equal(upstream.length, 1);
    assert.ok(upstream[0]!.chunksSent < 12, `the model call is still streaming (chunks sent: ${upstream[0]!.chunksSent})`);

    await withTimeout(first.server.close(), 'first server close', 10_000);
    const interrupted = chatRequests(fake).length;
    phase = 'after';

    const second = await start();
    const done = await pollRun(second.client, thread.id, run.id, TERMINAL, 15_000);
    assert.equal(done.status, 'completed', `run ended ${done.status}: ${JSON.stringify(done.last_error)}`);
    assert.ok(
      chatRequests(fake).length > interrupted,
      `the model was not called again after the restart (model calls: ${chatRequests(fake).length}); the run completed with the preamble`,
    );

    const messages = await second.client.beta.threads.messages.list(thread.id, { order: 'asc' });
    const assistantMessages = messages.data.filter((message) => message.role === 'assistant');
    assert.deepEqual(
      assistantMessages.map((message) => [message.run_id, message.status, message.content]),
      [[run.id, 'completed', textContent('Final answer.')]],
      'exactly one assistant message for the run, the new answer (the preamble is gone)',
    );
    const finalSteps = await second.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    assert.deepEqual(
      finalSteps.data.map((step) => [step.type, step.status]),
      [['message_creation', 'completed']],
      'the interrupted turn left no steps behind',
    );
    await withTimeout(second.server.runs.idle(), 'runs.idle() after the resumed run', 5_000);
  });
});

// ================================================================ 2–6. one server (PGlite, or PostgreSQL when DATABASE_URL is set)

describe('engine regressions: races, deleted threads, cut-off tool calls (model_max_retries 1, model_timeout_seconds 2)', () => {
  const h = useHarness((fakeUrl) => ({
    model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fakeUrl, api_key: 'x' } }],
    assistd_settings: SETTINGS,
  }));
  let fake: FakeModel;
  let server: TestServer;
  let client: OpenAI;
  let assistant: Json;
  /** Runs whose events some test streamed: none may keep a listener afterwards. */
  const streamedRuns = new Set<string>();

  const script = h.script;
  const requestsFor = h.requests;

  before(async () => {
    ({ fake, server, client } = h);
    assistant = await client.beta.assistants.create({ model: 'gpt-4o', tools: [lookupTool] });
  });

  async function newThread(tag: string, text = 'Hello') {
    return client.beta.threads.create({ messages: [{ role: 'user', content: `${text} ${tag}` }] });
  }

  // ---------------------------------------------------------------- 2. cancel racing completion

  test('cancel racing a fast streamed answer (20 times, after 0–4 deltas): terminal, never left cancelling, no false thread.run.completed', async () => {
    for (let iteration = 0; iteration < 20; iteration++) {
      const tag = newTag();
      script(tag, { chunks: ['One', ' two', ' three', ' four', ' five.'], chunkDelayMs: 20 });
      const thread = await newThread(tag, 'Race');
      const sse = await openSse(server, `/v1/threads/${thread.id}/runs`, { assistant_id: assistant.id, stream: true });
      try {
        const created = await waitFor('thread.run.created', () => sse.find('thread.run.created') ?? (sse.ended && { data: 'null' }), 5_000);
        const runId: string = JSON.parse(created.data)?.id;
        assert.ok(runId, `iteration ${iteration}: no thread.run.created event:\n${sse.text.slice(-1500)}`);
        streamedRuns.add(runId);
        const deltas = iteration % 5;
        await waitFor(`${deltas} deltas`, () => sse.count('thread.message.delta') >= deltas || sse.ended, 5_000);

        const cancel = await http(server, 'POST', `/v1/threads/${thread.id}/runs/${runId}/cancel`);
        assert.ok(cancel.status === 200 || cancel.status === 400, `iteration ${iteration}: cancel answered ${cancel.status}: ${cancel.text}`);
        if (cancel.status === 400) {
          assert.match(cancel.json?.error?.message ?? '', /Cannot cancel run with status '(completed|cancelled)'/, cancel.text);
        }

        const final = await pollRun(client, thread.id, runId, TERMINAL, 5_000);
        assert.ok(['cancelled', 'completed'].includes(final.status), `iteration ${iteration}: run ended ${final.status}`);

        await withTimeout(sse.done, `iteration ${iteration}: the stream to end`, 5_000);
        assertWellFormed(sse);
        for (const event of sse.events.filter((item) => item.event === 'thread.run.completed')) {
          const status = JSON.parse(event.data).status;
          assert.equal(status, 'completed', `iteration ${iteration}: thread.run.completed carries status ${status}:\n${sse.text.slice(-1500)}`);
        }
        if (final.status === 'cancelled') {
          assert.equal(sse.count('thread.run.completed'), 0, `iteration ${iteration}: a cancelled run's stream announced thread.run.completed:\n${sse.text.slice(-1500)}`);
        }
        const terminalEvents = sse.events.filter((item) => /^thread\.run\.(completed|cancelled|failed|incomplete|expired)$/.test(item.event));
        for (const event of terminalEvents) {
          assert.equal(event.event, `thread.run.${final.status}`, `iteration ${iteration}: the stream's terminal event disagrees with the stored run (${final.status}):\n${sse.text.slice(-1500)}`);
        }
      } finally {
        if (!sse.ended) sse.abort();
      }
    }
  });

  test('create (not streamed) then cancel at once, 20 times: every run terminal within 2 s', async () => {
    for (let iteration = 0; iteration < 20; iteration++) {
      const tag = newTag();
      script(tag, { chunks: ['Quick', ' answer.'], chunkDelayMs: 10 });
      const thread = await newThread(tag, 'Quick');
      const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
      const cancel = await http(server, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/cancel`);
      assert.ok(cancel.status === 200 || cancel.status === 400, `iteration ${iteration}: cancel answered ${cancel.status}: ${cancel.text}`);
      const final = await pollRun(client, thread.id, run.id, TERMINAL, 2_000);
      assert.ok(['cancelled', 'completed'].includes(final.status), `iteration ${iteration}: run ended ${final.status}`);
      if (cancel.status === 200) assert.equal(final.status, 'cancelled', `iteration ${iteration}: cancel accepted (${cancel.json?.status}) but the run ended ${final.status}`);
    }
  });

  test('cancel arriving as the upstream finishes, while the completing write waits for the database (5 times): cancelled, no thread.run.completed', async () => {
    // The moment between the last upstream chunk and the write that completes the run is made
    // wide (every transaction waits 150 ms before it begins, as with a busy pool), and the cancel
    // is sent as soon as the fake has written its last chunk: it lands in that moment every time.
    for (let iteration = 0; iteration < 5; iteration++) {
      const tag = newTag();
      const chunks = ['One', ' two', ' three', ' four', ' five.'];
      script(tag, { chunks, chunkDelayMs: 20 });
      // role chunk + text chunks + finish chunk + usage chunk + [DONE]
      const lastChunk = chunks.length + 4;
      const thread = await newThread(tag, 'Late cancel');
      const sse = await openSse(server, `/v1/threads/${thread.id}/runs`, { assistant_id: assistant.id, stream: true });
      let restore: (() => void) | undefined;
      try {
        const created = await waitFor('thread.run.created', () => sse.find('thread.run.created'), 5_000);
        const runId: string = JSON.parse(created.data).id;
        streamedRuns.add(runId);
        await waitFor('every text delta', () => sse.count('thread.message.delta') >= chunks.length || sse.ended, 5_000);
        restore = patchMethod(server.storage.sql, 'transaction', delayed(150));
        const deadline = Date.now() + 5_000;
        while ((requestsFor(tag)[0]?.chunksSent ?? 0) < lastChunk && Date.now() < deadline) await sleep(1);
        const cancel = await http(server, 'POST', `/v1/threads/${thread.id}/runs/${runId}/cancel`);
        assert.equal(cancel.status, 200, `iteration ${iteration}: cancel answered ${cancel.status}: ${cancel.text}`);

        const final = await pollRun(client, thread.id, runId, TERMINAL, 5_000);
        assert.equal(final.status, 'cancelled', `iteration ${iteration}: a run whose cancel was accepted ended ${final.status}`);
        await withTimeout(sse.done, `iteration ${iteration}: the stream to end`, 5_000);
        assertWellFormed(sse);
        for (const event of sse.events.filter((item) => item.event === 'thread.run.completed')) {
          assert.fail(`iteration ${iteration}: thread.run.completed (status ${JSON.parse(event.data).status}) on the stream of a cancelled run`);
        }
        assert.equal(sse.count('thread.run.cancelled'), 1, `iteration ${iteration}: the stream announces the cancel:\n${sse.text.slice(-1500)}`);
      } finally {
        restore?.();
        if (!sse.ended) sse.abort();
      }
    }
  });

  test('create then cancel while the run is starting (its claim\'s answer waits 100 ms, 5 times): cancelled within 2 s', async () => {
    // The cancel lands between the claim moving the run to in_progress and the executor going on.
    const restore = patchMethod(server.storage.runs, 'claimForExecution', delayedAfter(100));
    try {
      for (let iteration = 0; iteration < 5; iteration++) {
        const tag = newTag();
        script(tag, { chunks: ['Quick', ' answer.'], chunkDelayMs: 10 });
        const thread = await newThread(tag, 'Starting');
        const run = await client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
        const cancel = await http(server, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/cancel`);
        assert.equal(cancel.status, 200, `iteration ${iteration}: cancel answered ${cancel.status}: ${cancel.text}`);
        const final = await pollRun(client, thread.id, run.id, TERMINAL, 2_000);
        assert.equal(final.status, 'cancelled', `iteration ${iteration}: run ended ${final.status}`);
        assert.equal(requestsFor(tag).length, 0, `iteration ${iteration}: the model was called for a cancelled run`);
      }
    } finally {
      restore();
    }
  });

  // ---------------------------------------------------------------- 3. thread deleted mid-stream

  /**
   * Streams a run on a new thread, deletes the thread two message deltas in, then hands the stream
   * and the run id to `check`; the stream is aborted afterwards if it has not ended.
   */
  async function deleteThreadMidStream(tag: string, text: string, check: (sse: SseCapture, runId: string) => Promise<void>) {
    const thread = await newThread(tag, text);
    const sse = await openSse(server, `/v1/threads/${thread.id}/runs`, { assistant_id: assistant.id, stream: true });
    try {
      await waitFor('two message deltas', () => sse.count('thread.message.delta') >= 2, 10_000);
      const runId = JSON.parse(sse.find('thread.run.created')!.data).id as string;
      streamedRuns.add(runId);
      const deleted = await http(server, 'DELETE', `/v1/threads/${thread.id}`);
      assert.equal(deleted.status, 200, deleted.text);
      await check(sse, runId);
    } finally {
      if (!sse.ended) sse.abort();
    }
  }

  test('thread deleted while its run streams a long answer: well-formed stream that ends, upstream call aborted by the lease heartbeat', async () => {
    const tag = newTag();
    // 60 chunks, 250 ms apart: 15 s, longer than every bound below.
    script(tag, { chunks: Array.from({ length: 60 }, (_, index) => `w${index} `), chunkDelayMs: 250 });
    await deleteThreadMidStream(tag, 'Long', async (sse, runId) => {
      await withTimeout(sse.done, 'the stream of the deleted thread’s run to end', 10_000).catch((error: Error) => {
        throw new Error(`${error.message}; upstream chunks sent: ${requestsFor(tag)[0]?.chunksSent}/63; stream so far:\n${sse.text.slice(-1500)}`);
      });
      assert.equal(sse.error, undefined, `the stream failed: ${String(sse.error)}`);
      assertWellFormed(sse);
      assert.equal(sse.events.at(-1)?.data, '[DONE]', `the stream ends with done:\n${sse.text.slice(-800)}`);
      await waitFor('the upstream request to be aborted', () => fake.activeConnections() === 0, 10_000);
      assert.ok(requestsFor(tag)[0]!.chunksSent < 60, 'the upstream stream was cut short, not run to its end');
      assert.equal(await server.storage.runs.getRunById(runId), undefined, 'the run went with its thread');
    });
  });

  test('thread deleted while its run streams a short answer that then finishes: no data: undefined, every data line JSON, stream ends', async () => {
    const tag = newTag();
    script(tag, { chunks: ['Short', ' answer', ' that', ' ends', ' soon', ' after', ' the', ' delete.'], chunkDelayMs: 150 });
    await deleteThreadMidStream(tag, 'Short', async (sse) => {
      await withTimeout(sse.done, 'the stream of the deleted thread’s run to end', 10_000).catch((error: Error) => {
        throw new Error(`${error.message}; stream so far:\n${sse.text.slice(-1500)}`);
      });
      assertWellFormed(sse);
      for (const name of ['thread.message.completed', 'thread.run.step.completed', 'thread.run.completed']) {
        assert.equal(sse.count(name), 0, `${name} was sent for a run whose thread is gone:\n${sse.text.slice(-1500)}`);
      }
      await waitFor('the upstream request to end', () => fake.activeConnections() === 0, 10_000);
    });
  });

  // ---------------------------------------------------------------- 4. cut off mid tool call, retried with text

  test('a stream cut off mid tool call, retried with a text answer: completed with the text; the tool step failed; the retry carries no trace of the failed attempt', async () => {
    const tag = newTag();
    script(
      tag,
      { toolCalls: [{ id: 'call_cut', name: 'lookup', arguments: '{"q":"long argument text that is streamed in several pieces"}' }], breakAfterChunks: 3 },
      { text: 'Recovered.' },
    );
    const thread = await newThread(tag, 'Cut');
    const run = await withTimeout(client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll', 15_000);
    assert.equal(run.status, 'completed', `run ended ${run.status}: ${JSON.stringify(run.last_error)}`);

    const messages = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.deepEqual(
      messages.data.map((message) => [message.status, message.content]),
      [['completed', textContent('Recovered.')]],
      'the retry’s text is the run’s one message',
    );

    const steps = await client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    const summary = steps.data.map((step) => [step.type, step.status]);
    assert.ok(
      summary.some(([type, status]) => type === 'tool_calls' && status === 'failed'),
      `a failed tool_calls step is listed: ${JSON.stringify(summary)}`,
    );
    assert.ok(
      summary.some(([type, status]) => type === 'message_creation' && status === 'completed'),
      `a completed message_creation step is listed: ${JSON.stringify(summary)}`,
    );
    assert.ok(!summary.some(([, status]) => status === 'in_progress'), `no step is left in progress: ${JSON.stringify(summary)}`);

    const upstream = requestsFor(tag);
    assert.equal(upstream.length, 2, 'one cut-off call and one retry');
    const retried = upstream[1]!.body.messages as Json[];
    assert.ok(!retried.some((message) => message.role === 'tool'), `the retry has no tool message: ${JSON.stringify(retried)}`);
    assert.ok(
      !retried.some((message) => message.role === 'assistant' && Array.isArray(message.tool_calls) && message.tool_calls.length > 0),
      `the retry has no assistant tool_calls: ${JSON.stringify(retried)}`,
    );
    assert.ok(!JSON.stringify(retried).includes('call_cut'), 'the failed call id is not sent again');
  });

  // ---------------------------------------------------------------- 5. submit_tool_outputs right after requires_action

  /**
   * One run that pauses in requires_action (a call `callId`, then text), its outputs submitted
   * with submitToolOutputsStream from the handler of that event: the submit's stream carries text
   * deltas and ends with thread.run.completed, and the stored run is completed.
   */
  async function submitOnRequiresAction(iteration: number, callId: string, text: string) {
    const tag = newTag();
    script(tag, { toolCalls: [{ id: callId, name: 'lookup', arguments: '{"q":"x"}' }] }, { chunks: ['Looked', ' it', ' up.'] });
    const thread = await newThread(tag, text);
    const stream = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const resumed = new Promise<{ events: Json[]; error?: unknown }>((resolve) => {
      stream.on('event', (event) => {
        if (event.event !== 'thread.run.requires_action') return;
        streamedRuns.add(event.data.id);
        const calls = event.data.required_action?.submit_tool_outputs.tool_calls ?? [];
        const submit = client.beta.threads.runs.submitToolOutputsStream(event.data.id, {
          thread_id: thread.id,
          tool_outputs: calls.map((call) => ({ tool_call_id: call.id, output: 'x=1' })),
        });
        const events: Json[] = [];
        submit.on('event', (item) => events.push(item));
        submit.done().then(
          () => resolve({ events }),
          (error: unknown) => resolve({ events, error }),
        );
      });
    });
    const paused = await withTimeout(stream.finalRun(), `iteration ${iteration}: first stream`, 10_000);
    assert.equal(paused.status, 'requires_action');
    const { events, error } = await withTimeout(resumed, `iteration ${iteration}: submitToolOutputsStream to end`, 10_000);
    const names = events.map((event) => event.event);
    assert.equal(error, undefined, `iteration ${iteration}: submit stream failed: ${String(error)}; events: ${names.join(', ')}`);
    assert.ok(names.includes('thread.message.delta'), `iteration ${iteration}: no thread.message.delta in ${JSON.stringify(names)}`);
    assert.equal(names.at(-1), 'thread.run.completed', `iteration ${iteration}: events ${JSON.stringify(names)}`);
    const stored = await client.beta.threads.runs.retrieve(paused.id, { thread_id: thread.id });
    assert.equal(stored.status, 'completed');
  }

  test('submitToolOutputsStream sent the moment requires_action arrives (10 times): text deltas, then thread.run.completed', async () => {
    for (let iteration = 0; iteration < 10; iteration++) {
      await submitOnRequiresAction(iteration, `call_race_${iteration}`, 'Submit');
    }
  });

  test('submitToolOutputsStream while the paused pass is still finishing (its lease release waits 300 ms, 3 times): a pass of its own, to completion', async () => {
    // The pass that paused in requires_action is still running when the outputs arrive; the
    // submit's stream must get the next pass, not the end of that one ("queued, then done").
    const restore = patchMethod(server.storage.runs, 'release', delayed(300));
    try {
      for (let iteration = 0; iteration < 3; iteration++) {
        await submitOnRequiresAction(iteration, `call_slow_${iteration}`, 'Submit early');
      }
    } finally {
      restore();
    }
  });

  // ---------------------------------------------------------------- 6. nothing left behind

  test('afterwards: runs.idle() resolves, no run keeps a listener, no upstream request is open', async () => {
    await withTimeout(server.runs.idle(), 'server.runs.idle()', 5_000);
    const listening = [...streamedRuns].filter((runId) => server.runs.bus.hasSubscribers(runId));
    assert.deepEqual(listening, [], 'runs with listeners left on the event bus');
    await waitFor('no upstream request in progress', () => fake.activeConnections() === 0, 5_000);
  });
});
