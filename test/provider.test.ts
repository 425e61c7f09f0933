/**
 * The OpenAI-compatible provider against the scripted fake model (a real HTTP server), plus a few
 * upstream behaviours the fake cannot produce, through the provider's `fetch` option.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createOpenAICompatibleEmbeddings, createOpenAICompatibleModel, type OpenAICompatibleOptions } from '../src/providers/openai-compatible.js';
import { ModelRegistry } from '../src/providers/registry.js';
import { parseConfig } from '../src/config.js';
import { ProviderError, type ModelRequest, type StreamPart } from '../src/providers/types.js';
import { embed, startFakeModel, type FakeModel } from './helpers/fake-model.js';

let fake: FakeModel;

before(async () => {
  fake = await startFakeModel();
});

after(async () => {
  await fake?.close();
});

beforeEach(() => {
  fake.requests.length = 0;
  fake.onRequest(null);
});

// ---------------------------------------------------------------- helpers

const HELLO: ModelRequest = { messages: [{ role: 'user', content: 'Say hello.' }] };

function model(options: Partial<OpenAICompatibleOptions> = {}) {
  return createOpenAICompatibleModel({ baseURL: fake.url, apiKey: 'sk-upstream', model: 'gpt-test', ...options });
}

async function collect(stream: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const parts: StreamPart[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

function run(request: ModelRequest = HELLO, options: Partial<OpenAICompatibleOptions> = {}, signal = new AbortController().signal) {
  return collect(model(options).stream(request, { signal }));
}

function texts(parts: StreamPart[]): string[] {
  return parts.flatMap((part) => (part.type === 'text-delta' ? [part.text] : []));
}

function finishOf(parts: StreamPart[]) {
  const finishes = parts.filter((part) => part.type === 'finish');
  assert.equal(finishes.length, 1, 'exactly one finish part');
  assert.equal(parts.at(-1), finishes[0], 'finish comes last');
  return finishes[0] as Extract<StreamPart, { type: 'finish' }>;
}

/** Reassembles tool-call deltas per index, checking id and name come once, on the first piece. */
function toolCalls(parts: StreamPart[]) {
  const calls: { id: string; name: string; arguments: string; pieces: number }[] = [];
  for (const part of parts) {
    if (part.type !== 'tool-call-delta') continue;
    const existing = calls[part.index];
    if (!existing) {
      assert.ok(part.id && part.name, `first piece of call ${part.index} carries id and name`);
      calls[part.index] = { id: part.id, name: part.name, arguments: part.argumentsDelta, pieces: 1 };
    } else {
      assert.equal(part.id, undefined, 'id only on the first piece');
      assert.equal(part.name, undefined, 'name only on the first piece');
      existing.arguments += part.argumentsDelta;
      existing.pieces += 1;
    }
  }
  return calls;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

async function providerError(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await rejection(promise);
  assert.ok(error instanceof ProviderError, `expected a ProviderError, got ${String(error)}`);
  return error;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const upstreamClosed = () => waitFor(() => fake.activeConnections() === 0, 'the upstream request to close');

/** A `fetch` that answers with a fixed response, for upstream behaviours the fake does not script. */
function fixedFetch(body: string, init: ResponseInit): typeof fetch {
  return async () => new Response(body, init);
}

const SSE = { 'content-type': 'text/event-stream' };

function sseChunk(delta: object, finishReason: string | null = null): string {
  return `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
}

// ---------------------------------------------------------------- streaming

describe('streaming', { timeout: 10_000 }, () => {
  test('text arrives part by part, each delta before the upstream sends the next', async () => {
    const chunks = ['Hel', 'lo', ' wor', 'ld!'];
    fake.enqueue({ chunks, chunkDelayMs: 40, usage: { prompt_tokens: 11, completion_tokens: 4 } });
    const sentWhenReceived: number[] = [];
    const parts: StreamPart[] = [];
    for await (const part of model().stream(HELLO, { signal: new AbortController().signal })) {
      parts.push(part);
      if (part.type === 'text-delta') sentWhenReceived.push(fake.requests[0]!.chunksSent);
    }
    assert.deepEqual(texts(parts), chunks, 'one text-delta per upstream delta, never merged');
    // Upstream events: the role chunk, then one per text chunk. Delta k must be in our hands while
    // the upstream has sent exactly the role chunk and k+1 text chunks.
    assert.deepEqual(sentWhenReceived, [2, 3, 4, 5]);
    assert.deepEqual(finishOf(parts), {
      type: 'finish',
      reason: 'stop',
      usage: { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 },
    });
  });

  test('text is split into word-ish deltas that join back to the text', async () => {
    fake.enqueue({ text: 'Hello there,  wide world ' });
    const parts = await run();
    assert.deepEqual(texts(parts), ['Hello', ' there,', '  wide', ' world', ' ']);
    assert.equal(texts(parts).join(''), 'Hello there,  wide world ');
  });

  test('parallel tool calls stream with ids, names and argument pieces', async () => {
    const weather = { id: 'call_weather', name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' };
    const time = { id: 'call_time', name: 'get_time', arguments: '{"timezone":"Europe/Paris"}' };
    fake.enqueue({ toolCalls: [weather, time], usage: { prompt_tokens: 30, completion_tokens: 20 } });
    const parts = await run();
    assert.deepEqual(texts(parts), []);
    const calls = toolCalls(parts);
    assert.equal(calls.length, 2);
    for (const [index, expected] of [weather, time].entries()) {
      const call = calls[index]!;
      assert.equal(call.id, expected.id);
      assert.equal(call.name, expected.name);
      assert.equal(call.arguments, expected.arguments);
      assert.ok(call.pieces >= 3, `arguments of call ${index} arrived in pieces (${call.pieces})`);
    }
    // Deltas keep the upstream order: every piece of call 0 before call 1 starts.
    const indexes = parts.flatMap((part) => (part.type === 'tool-call-delta' ? [part.index] : []));
    assert.deepEqual(indexes, [...indexes].sort());
    assert.deepEqual(finishOf(parts), {
      type: 'finish',
      reason: 'tool_calls',
      usage: { prompt_tokens: 30, completion_tokens: 20, total_tokens: 50 },
    });
  });

  test('generated tool call ids are reported too', async () => {
    fake.enqueue({ toolCalls: [{ name: 'lookup', arguments: '{}' }] });
    const [call] = toolCalls(await run());
    assert.match(call!.id, /^call_\w+$/);
    assert.equal(call!.name, 'lookup');
    assert.equal(call!.arguments, '{}');
  });

  test('text followed by a tool call with finish_reason "stop" still reports tool_calls', async () => {
    fake.enqueue({ text: 'Let me check.', toolCalls: [{ id: 'call_1', name: 'search', arguments: '{"q":"x"}' }], finishReason: 'stop' });
    const parts = await run();
    assert.equal(texts(parts).join(''), 'Let me check.');
    assert.equal(toolCalls(parts)[0]!.arguments, '{"q":"x"}');
    assert.equal(finishOf(parts).reason, 'tool_calls');
  });

  test('finish reasons length and content_filter pass through', async () => {
    fake.enqueue({ text: 'cut', finishReason: 'length' }, { text: '', finishReason: 'content_filter' });
    assert.equal(finishOf(await run()).reason, 'length');
    assert.equal(finishOf(await run()).reason, 'content_filter');
  });

  test('function_call and unknown finish reasons are mapped', async () => {
    const answer = (reason: string) => sseChunk({ role: 'assistant', content: 'x' }) + sseChunk({}, reason) + 'data: [DONE]\n\n';
    const functionCall = await run(HELLO, { fetch: fixedFetch(answer('function_call'), { headers: SSE }) });
    assert.equal(finishOf(functionCall).reason, 'tool_calls');
    const odd = await run(HELLO, { fetch: fixedFetch(answer('recitation'), { headers: SSE }) });
    assert.equal(finishOf(odd).reason, 'other');
  });

  test('usage is null when the upstream sends none', async () => {
    fake.enqueue({ text: 'no usage here', usage: null });
    const parts = await run();
    assert.equal(texts(parts).join(''), 'no usage here');
    assert.deepEqual(finishOf(parts), { type: 'finish', reason: 'stop', usage: null });
  });

  test('default usage is reported from the final usage chunk', async () => {
    fake.enqueue({ text: 'Some words to count.' });
    const { usage } = finishOf(await run());
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  test('a stream that ends after finish_reason without [DONE] completes', async () => {
    const body = sseChunk({ role: 'assistant', content: 'done' }) + sseChunk({}, 'stop');
    const parts = await run(HELLO, { fetch: fixedFetch(body, { headers: SSE }) });
    assert.deepEqual(texts(parts), ['done']);
    assert.deepEqual(finishOf(parts), { type: 'finish', reason: 'stop', usage: null });
  });

  test('keep-alive comments, event names and a missing final blank line are tolerated', async () => {
    const body = ': keep-alive\n\n' + 'event: message\n' + sseChunk({ content: 'a' }) + sseChunk({}, 'stop') + 'data: [DONE]';
    const parts = await run(HELLO, { fetch: fixedFetch(body, { headers: SSE }) });
    assert.deepEqual(texts(parts), ['a']);
    assert.equal(finishOf(parts).reason, 'stop');
  });

  test('tool calls without an index (one call per chunk) get distinct indexes', async () => {
    const body =
      sseChunk({ role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'one', arguments: '{"n":1}' } }] }) +
      sseChunk({ tool_calls: [{ id: 'b', type: 'function', function: { name: 'two', arguments: '{"n":2}' } }] }) +
      sseChunk({}, 'stop') +
      'data: [DONE]\n\n';
    const parts = await run(HELLO, { fetch: fixedFetch(body, { headers: SSE }) });
    assert.deepEqual(
      toolCalls(parts).map(({ id, name, arguments: args }) => ({ id, name, args })),
      [
        { id: 'a', name: 'one', args: '{"n":1}' },
        { id: 'b', name: 'two', args: '{"n":2}' },
      ],
    );
    assert.equal(finishOf(parts).reason, 'tool_calls');
  });

  test('a server that ignores stream:true and answers with one JSON completion still works', async () => {
    const body = JSON.stringify({
      id: 'c',
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'f', arguments: '{}' } }] },
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
    const parts = await run(HELLO, { fetch: fixedFetch(body, { headers: { 'content-type': 'application/json' } }) });
    assert.deepEqual(parts, [
      { type: 'tool-call-delta', index: 0, id: 'call_9', name: 'f', argumentsDelta: '{}' },
      { type: 'finish', reason: 'tool_calls', usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
    ]);
  });
});

// ---------------------------------------------------------------- the request

describe('request', { timeout: 10_000 }, () => {
  test('every set field reaches the upstream, in OpenAI names', async () => {
    const request: ModelRequest = {
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Weather?' }, { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'w', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      ],
      tools: [{ type: 'function', function: { name: 'w', description: 'weather', parameters: { type: 'object', properties: {} }, strict: true } }],
      toolChoice: { type: 'function', function: { name: 'w' } },
      parallelToolCalls: false,
      temperature: 0.2,
      topP: 0.9,
      maxCompletionTokens: 123,
      responseFormat: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' } } },
      reasoningEffort: 'low',
    };
    await run(request);
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0]!.path, '/v1/chat/completions');
    assert.deepEqual(fake.requests[0]!.body, {
      model: 'gpt-test',
      messages: request.messages,
      stream: true,
      stream_options: { include_usage: true },
      tools: request.tools,
      tool_choice: request.toolChoice,
      parallel_tool_calls: false,
      temperature: 0.2,
      top_p: 0.9,
      max_completion_tokens: 123,
      response_format: request.responseFormat,
      reasoning_effort: 'low',
    });
  });

  test('unset and null fields are not sent; tool_choice and parallel_tool_calls only with tools', async () => {
    await run({
      messages: HELLO.messages,
      tools: [],
      toolChoice: 'none',
      parallelToolCalls: true,
      temperature: null,
      topP: null,
      maxCompletionTokens: null,
      responseFormat: 'auto',
      reasoningEffort: null,
    });
    assert.deepEqual(fake.requests[0]!.body, {
      model: 'gpt-test',
      messages: HELLO.messages,
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  test('temperature 0 is sent', async () => {
    await run({ ...HELLO, temperature: 0, topP: 0 });
    assert.equal(fake.requests[0]!.body.temperature, 0);
    assert.equal(fake.requests[0]!.body.top_p, 0);
  });

  test('bearer key, extra headers and query parameters (Azure style)', async () => {
    await run(HELLO, {
      baseURL: `${fake.url}/openai/deployments/gpt-4o/`,
      apiKey: null,
      headers: { 'api-key': 'azure-secret', 'X-Custom': 'yes' },
      query: { 'api-version': '2024-10-21' },
    });
    const [recorded] = fake.requests;
    assert.equal(recorded!.path, '/v1/openai/deployments/gpt-4o/chat/completions');
    assert.deepEqual(recorded!.query, { 'api-version': '2024-10-21' });
    assert.equal(recorded!.headers['api-key'], 'azure-secret');
    assert.equal(recorded!.headers['x-custom'], 'yes');
    assert.equal(recorded!.headers.authorization, undefined);
    assert.equal(recorded!.headers['content-type'], 'application/json');

    await run(HELLO, { apiKey: 'sk-upstream' });
    assert.equal(fake.requests[1]!.headers.authorization, 'Bearer sk-upstream');
  });

  test('a caller header overrides ours', async () => {
    await run(HELLO, { apiKey: 'sk-a', headers: { Authorization: 'Bearer sk-b' } });
    assert.equal(fake.requests[0]!.headers.authorization, 'Bearer sk-b');
  });

  test('an invalid baseURL fails when the model is created', () => {
    assert.throws(() => createOpenAICompatibleModel({ baseURL: 'not a url', model: 'm' }), TypeError);
  });
});

// ---------------------------------------------------------------- upstream errors

describe('upstream errors', { timeout: 10_000 }, () => {
  test('429 with Retry-After seconds → retryable, rate_limit_exceeded, retryAfterMs', async () => {
    fake.enqueue({ status: 429, errorMessage: 'Rate limit reached for gpt-test.', retryAfter: '2' });
    const error = await providerError(run());
    assert.equal(error.statusCode, 429);
    assert.equal(error.isRetryable, true);
    assert.equal(error.retryAfterMs, 2000);
    assert.equal(error.message, 'Rate limit reached for gpt-test.');
    assert.equal(error.runErrorCode, 'rate_limit_exceeded');
  });

  test('Retry-After as an HTTP date, and retry-after-ms first', async () => {
    const date = new Date(Date.now() + 30_000).toUTCString();
    const byDate = await providerError(run(HELLO, { fetch: fixedFetch('{}', { status: 429, headers: { 'retry-after': date } }) }));
    assert.ok(byDate.retryAfterMs !== null && byDate.retryAfterMs > 25_000 && byDate.retryAfterMs <= 30_000, String(byDate.retryAfterMs));
    const both = await providerError(
      run(HELLO, { fetch: fixedFetch('{}', { status: 429, headers: { 'retry-after': '20', 'retry-after-ms': '1500' } }) }),
    );
    assert.equal(both.retryAfterMs, 1500);
    const none = await providerError(run(HELLO, { fetch: fixedFetch('{}', { status: 503 }) }));
    assert.equal(none.retryAfterMs, null);
  });

  test('500 → retryable server_error with the upstream message', async () => {
    fake.enqueue({ status: 500, errorMessage: 'The server had an error.' });
    const error = await providerError(run());
    assert.equal(error.statusCode, 500);
    assert.equal(error.isRetryable, true);
    assert.equal(error.message, 'The server had an error.');
    assert.equal(error.runErrorCode, 'server_error');
  });

  test('400 → not retryable, invalid_prompt', async () => {
    fake.enqueue({ status: 400, errorMessage: "This model's maximum context length is 8192 tokens." });
    const error = await providerError(run());
    assert.equal(error.statusCode, 400);
    assert.equal(error.isRetryable, false);
    assert.equal(error.runErrorCode, 'invalid_prompt');
    assert.match(error.message, /maximum context length/);
  });

  test('a long non-JSON error body is quoted, truncated', async () => {
    const html = `<html>${'x'.repeat(200_000)}</html>`;
    const error = await providerError(run(HELLO, { fetch: fixedFetch(html, { status: 502, statusText: 'Bad Gateway' }) }));
    assert.equal(error.statusCode, 502);
    assert.ok(error.message.startsWith('upstream returned HTTP 502 Bad Gateway: <html>xxx'), error.message.slice(0, 80));
    assert.ok(error.message.length < 1_100, `message length ${error.message.length}`);
  });

  test('a broken stream → retryable ProviderError after the deltas that did arrive', async () => {
    fake.enqueue({ chunks: ['one', ' two', ' three', ' four'], breakAfterChunks: 3 });
    const received: string[] = [];
    const error = await providerError(
      (async () => {
        for await (const part of model().stream(HELLO, { signal: new AbortController().signal })) {
          if (part.type === 'text-delta') received.push(part.text);
        }
      })(),
    );
    assert.deepEqual(received, ['one', ' two']);
    assert.equal(error.statusCode, null);
    assert.equal(error.isRetryable, true);
    assert.equal(error.runErrorCode, 'server_error');
  });

  test('a stream that ends cleanly without finish_reason or [DONE] → ProviderError', async () => {
    const body = sseChunk({ role: 'assistant', content: 'half' });
    const error = await providerError(run(HELLO, { fetch: fixedFetch(body, { headers: SSE }) }));
    assert.equal(error.statusCode, null);
    assert.equal(error.isRetryable, true);
  });

  test('an error object inside the stream → ProviderError with its message', async () => {
    const body = sseChunk({ content: 'par' }) + `data: ${JSON.stringify({ error: { message: 'Overloaded', type: 'server_error' } })}\n\n`;
    const error = await providerError(run(HELLO, { fetch: fixedFetch(body, { headers: SSE }) }));
    assert.equal(error.message, 'Overloaded');
    assert.equal(error.statusCode, null);
    assert.equal(error.isRetryable, true);
  });

  test('malformed JSON in the stream → ProviderError', async () => {
    const error = await providerError(run(HELLO, { fetch: fixedFetch('data: {"choices": [\n\n', { headers: SSE }) }));
    assert.equal(error.statusCode, null);
    assert.match(error.message, /malformed/);
  });

  test('connection refused → retryable ProviderError', async () => {
    const closed = await startFakeModel();
    const url = closed.url;
    await closed.close();
    const error = await providerError(run(HELLO, { baseURL: url }));
    assert.equal(error.statusCode, null);
    assert.equal(error.isRetryable, true);
    assert.match(error.message, /ECONNREFUSED/);
  });
});

// ---------------------------------------------------------------- timeouts and cancel

describe('timeouts and cancel', { timeout: 10_000 }, () => {
  test('no response headers within timeoutMs → ProviderError, upstream request closed', async () => {
    fake.enqueue({ hang: true });
    const error = await providerError(run(HELLO, { timeoutMs: 150 }));
    assert.equal(error.statusCode, null);
    assert.equal(error.isRetryable, true);
    assert.match(error.message, /no response headers within 150 ms/);
    await upstreamClosed();
  });

  test('slow headers beyond timeoutMs → ProviderError', async () => {
    fake.enqueue({ text: 'late', firstByteDelayMs: 2_000 });
    const error = await providerError(run(HELLO, { timeoutMs: 100 }));
    assert.equal(error.statusCode, null);
    await upstreamClosed();
  });

  test('silence between chunks beyond idleTimeoutMs → ProviderError, upstream request closed', async () => {
    fake.enqueue({ chunks: ['first', ' second'], chunkDelayMs: 5_000 });
    const error = await providerError(run(HELLO, { idleTimeoutMs: 150 }));
    assert.equal(error.statusCode, null);
    assert.equal(error.isRetryable, true);
    assert.match(error.message, /nothing for 150 ms/);
    await upstreamClosed();
  });

  test('a slow consumer does not count as upstream silence', async () => {
    fake.enqueue({ chunks: ['a', 'b', 'c'] });
    const parts: StreamPart[] = [];
    for await (const part of model({ idleTimeoutMs: 50 }).stream(HELLO, { signal: new AbortController().signal })) {
      parts.push(part);
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
    assert.deepEqual(texts(parts), ['a', 'b', 'c']);
    assert.equal(finishOf(parts).reason, 'stop');
  });

  test('abort mid-stream → rejects with an AbortError (not a ProviderError) and closes the upstream request', async () => {
    fake.enqueue({ chunks: Array.from({ length: 1_000 }, (_, index) => `w${index} `), chunkDelayMs: 20 });
    const controller = new AbortController();
    const iterator = model().stream(HELLO, { signal: controller.signal })[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.deepEqual(first.value, { type: 'text-delta', text: 'w0 ' });
    assert.equal(fake.activeConnections(), 1);
    controller.abort();
    const error = await rejection(iterator.next());
    assert.ok(!(error instanceof ProviderError), 'a cancel is not an upstream failure');
    assert.equal((error as Error).name, 'AbortError');
    await upstreamClosed();
    assert.ok(fake.requests[0]!.chunksSent < 100, 'the upstream stopped sending');
  });

  test('abort before the headers → rejects with the signal reason', async () => {
    fake.enqueue({ hang: true });
    const controller = new AbortController();
    const reason = new Error('run cancelled');
    const pending = run(HELLO, {}, controller.signal);
    await waitFor(() => fake.activeConnections() === 1, 'the request to reach the upstream');
    controller.abort(reason);
    assert.equal(await rejection(pending), reason);
    await upstreamClosed();
  });

  test('an already-aborted signal → rejects without calling the upstream', async () => {
    const error = await rejection(run(HELLO, {}, AbortSignal.abort()));
    assert.equal((error as Error).name, 'AbortError');
    assert.equal(fake.requests.length, 0);
  });

  test('abort wins over a pending timeout', async () => {
    fake.enqueue({ hang: true });
    const controller = new AbortController();
    const pending = run(HELLO, { timeoutMs: 200 }, controller.signal);
    await waitFor(() => fake.activeConnections() === 1, 'the request to reach the upstream');
    controller.abort();
    const error = await rejection(pending);
    assert.equal((error as Error).name, 'AbortError');
    await upstreamClosed();
  });

  test('breaking out of the loop early closes the upstream request', async () => {
    // 20 s of stream: only a closed connection, not the stream's own end, makes this pass in time.
    fake.enqueue({ chunks: Array.from({ length: 1_000 }, (_, index) => `w${index} `), chunkDelayMs: 20 });
    for await (const part of model().stream(HELLO, { signal: new AbortController().signal })) {
      if (part.type === 'text-delta') break;
    }
    await upstreamClosed();
    assert.ok(fake.requests[0]!.chunksSent < 100, 'the upstream stopped sending');
  });

  test('no timer is left behind by any outcome', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;
    await upstreamClosed();
    const baseline = timers();
    const options = { timeoutMs: 5_000, idleTimeoutMs: 5_000 };

    fake.enqueue({ text: 'fine' });
    await run(HELLO, options);
    fake.enqueue({ status: 500 });
    await rejection(run(HELLO, options));
    fake.enqueue({ hang: true });
    await rejection(run(HELLO, { ...options, timeoutMs: 50 }));
    fake.enqueue({ chunks: ['a', 'b'], chunkDelayMs: 2_000 });
    await rejection(run(HELLO, { ...options, idleTimeoutMs: 50 }));
    fake.enqueue({ chunks: ['a', 'b'], breakAfterChunks: 2 });
    await rejection(run(HELLO, options));
    fake.enqueue({ chunks: ['a', 'b', 'c'], chunkDelayMs: 30 });
    const controller = new AbortController();
    const iterator = model(options).stream(HELLO, { signal: controller.signal })[Symbol.asyncIterator]();
    await iterator.next();
    controller.abort();
    await rejection(iterator.next());

    await upstreamClosed();
    assert.equal(timers(), baseline);
  });
});

// ---------------------------------------------------------------- the fake itself

describe('fake model', { timeout: 10_000 }, () => {
  test('non-streaming completions in OpenAI shape', async () => {
    fake.enqueue({ toolCalls: [{ id: 'call_x', name: 'f', arguments: '{"a":1}' }], usage: { prompt_tokens: 5, completion_tokens: 6 } });
    const response = await fetch(`${fake.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-x', messages: [] }),
    });
    const body = (await response.json()) as any;
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.model, 'gpt-x');
    assert.deepEqual(body.choices[0].message.tool_calls, [{ id: 'call_x', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]);
    assert.equal(body.choices[0].finish_reason, 'tool_calls');
    assert.equal(body.usage.total_tokens, 11);
  });

  test('the queue, then the handler, then the default turn', async () => {
    fake.enqueue({ text: 'queued' });
    fake.onRequest((request) => (request.body.messages[0].content === 'handled' ? { text: 'from handler' } : undefined));
    assert.equal(texts(await run({ messages: [{ role: 'user', content: 'handled' }] })).join(''), 'from handler');
    assert.equal(texts(await run()).join(''), 'queued');
    assert.equal(texts(await run()).join(''), 'Hello from the fake model.');
  });

  test('embeddings: deterministic, unit length, dimensions honoured, float and base64', async () => {
    const post = async (body: object) => {
      const response = await fetch(`${fake.url}/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(response.status, 200);
      return (await response.json()) as any;
    };
    const one = await post({ model: 'emb', input: 'refund policy for orders' });
    assert.equal(one.object, 'list');
    assert.equal(one.data[0].embedding.length, 256);
    const norm = Math.sqrt(one.data[0].embedding.reduce((sum: number, value: number) => sum + value * value, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);

    const many = await post({ model: 'emb', input: ['refund policy for orders', 'shipping times', 'our refund policy'], dimensions: 64 });
    assert.deepEqual(many.data.map((item: any) => item.index), [0, 1, 2]);
    assert.equal(many.data[0].embedding.length, 64);
    assert.deepEqual(many.data[0].embedding, Array.from(embed('refund policy for orders', 64)));
    const cosine = (a: number[], b: number[]) => a.reduce((sum, value, index) => sum + value * b[index]!, 0);
    const [orders, shipping, refund] = many.data.map((item: any) => item.embedding as number[]);
    assert.ok(cosine(orders!, refund!) > cosine(orders!, shipping!), 'shared words bring texts closer');

    const encoded = await post({ model: 'emb', input: 'refund policy for orders', encoding_format: 'base64' });
    const bytes = Buffer.from(encoded.data[0].embedding, 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    assert.deepEqual(decoded, one.data[0].embedding);
  });
});

// ---------------------------------------------------------------- embeddings and the embedding model

describe('embeddings', { timeout: 10_000 }, () => {
  test('texts in, vectors out in order; dimensions, key and model are sent', async () => {
    const embeddings = createOpenAICompatibleEmbeddings({ baseURL: fake.url, apiKey: 'sk-upstream', model: 'text-embedding-3-large', dimensions: 32 });
    const vectors = await embeddings.embed(['first text', 'second text']);
    assert.equal(vectors.length, 2);
    assert.deepEqual(vectors[0], Array.from(embed('first text', 32)));
    const request = fake.requests.at(-1)!;
    assert.equal(request.path, '/v1/embeddings');
    assert.deepEqual(request.body, { model: 'text-embedding-3-large', input: ['first text', 'second text'], encoding_format: 'float', dimensions: 32 });
    assert.equal(request.headers.authorization, 'Bearer sk-upstream');
  });

  test('upstream errors are ProviderErrors, retryable by status', async () => {
    const embeddings = createOpenAICompatibleEmbeddings({ baseURL: fake.url, model: 'emb' });
    fake.embeddings.failures.push(503, 400);
    const first = await embeddings.embed(['x']).then(() => assert.fail('no error'), (error: unknown) => error);
    assert.ok(first instanceof ProviderError && first.isRetryable && first.statusCode === 503);
    const second = await embeddings.embed(['x']).then(() => assert.fail('no error'), (error: unknown) => error);
    assert.ok(second instanceof ProviderError && !second.isRetryable && second.statusCode === 400);
  });
});

describe('which model vector stores embed with', () => {
  const entry = (model_name: string, extra: Record<string, unknown> = {}) => ({ model_name, litellm_params: { model: `openai/${model_name}`, api_key: 'k', ...extra } });
  const choose = (document: Record<string, unknown>, env: Record<string, string> = {}) => {
    const config = parseConfig(document, env);
    return new ModelRegistry(config.modelList, config.settings, env).embedding;
  };

  test('assistd_settings.embedding_model first, then model_info.mode embedding, then OpenAI embedding names; none: full text alone', () => {
    const list = [entry('gpt-4o'), { ...entry('bge-m3'), model_info: { mode: 'embedding' } }, entry('text-embedding-3-small', { dimensions: 512 })];
    assert.deepEqual(choose({ model_list: list, assistd_settings: { embedding_model: 'text-embedding-3-small' } }), {
      name: 'text-embedding-3-small',
      dimensions: 512,
      reason: 'assistd_settings.embedding_model',
    });
    assert.equal(choose({ model_list: list })?.name, 'bge-m3');
    assert.equal(choose({ model_list: [entry('gpt-4o'), entry('text-embedding-ada-002')] })?.name, 'text-embedding-ada-002');
    assert.equal(choose({ model_list: [entry('gpt-4o')] }), null);
  });

  test('zero-config OPENAI_API_KEY: text-embedding-3-large at 256 dimensions, as OpenAI did; OPENAI_BASE_URL alone: none', () => {
    assert.deepEqual(choose({}, { OPENAI_API_KEY: 'sk-x' }), { name: 'text-embedding-3-large', dimensions: 256, reason: 'OPENAI_API_KEY with no config, as OpenAI did' });
    assert.equal(choose({}, { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' }), null);
  });

  test('an embedding_model that routes nowhere is a warning, and full text alone', () => {
    const config = parseConfig({ model_list: [entry('gpt-4o')], assistd_settings: { embedding_model: 'nope' } }, {});
    const registry = new ModelRegistry(config.modelList, config.settings, {});
    assert.equal(registry.embedding, null);
    assert.match(registry.warnings.join('\n'), /assistd_settings\.embedding_model 'nope' routes to no model_list entry/);
  });
});
