/**
 * End to end through the official SDKs for the run engine: `openai` 7.x (`server.client`) and the
 * older 4.x call style (`server.clientV4`), against a real listening server whose models all route
 * to a scripted fake model. Each test tags its thread's user messages with a unique marker
 * (`[[T<n>]]`); the fake answers from the turns scripted for the marker it finds in the last user
 * message, so tests never take each other's turns, and the upstream requests of a test are found
 * by the same marker.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pollRun, RUN_OPENING_EVENTS, taggedRuns, waitFor, withTimeout } from './helpers/harness.js';
import { http } from './helpers/server.js';

type Json = any;

// ---------------------------------------------------------------- helpers

const { newTag, useHarness } = taggedRuns('T');

/** Awaits a request expected to fail with `status`; returns the SDK error. */
async function apiError(promise: Promise<unknown>, status: number): Promise<Json> {
  let caught: Json;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught, `expected an HTTP ${status} error, the request succeeded`);
  assert.equal(caught.status, status, `expected HTTP ${status}, got ${caught.status}: ${caught.message}`);
  return caught;
}

const TERMINAL = ['completed', 'failed', 'cancelled', 'expired', 'incomplete'];
const isInt = (value: unknown) => Number.isInteger(value);
const usage = (prompt: number, completion: number) => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
const textContent = (value: string) => [{ type: 'text', text: { value, annotations: [] } }];

/** How the fake splits tool-call arguments into stream pieces (for exact delta comparisons). */
function argumentPieces(text: string): string[] {
  const size = Math.max(1, Math.ceil(text.length / 3));
  const pieces: string[] = [];
  for (let start = 0; start < text.length; start += size) pieces.push(text.slice(start, start + size));
  return pieces;
}

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const timeTool = {
  type: 'function' as const,
  function: { name: 'get_time', description: 'Time in a zone', parameters: { type: 'object', properties: { tz: { type: 'string' } } } },
};
const lookupTool = {
  type: 'function' as const,
  function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } },
};

const MESSAGE_EVENTS = (deltas: number) => [
  'thread.run.step.created',
  'thread.run.step.in_progress',
  'thread.message.created',
  'thread.message.in_progress',
  ...Array<string>(deltas).fill('thread.message.delta'),
  'thread.message.completed',
  'thread.run.step.completed',
];

// ================================================================ basic runs, polling and streaming

describe('runs: polling and streaming', () => {
  const h = useHarness();
  let plain: Json; // no instructions, default sampling
  let rich: Json; // everything a run inherits

  before(async () => {
    plain = await h.client.beta.assistants.create({ model: 'gpt-4o' });
    rich = await h.client.beta.assistants.create({
      model: 'gpt-4o-mini',
      instructions: 'You are terse.',
      tools: [weatherTool],
      temperature: 0.3,
      top_p: 0.9,
      response_format: { type: 'json_object' },
    });
  });

  test('openai 7.x createAndPoll: completed, the message is the model text, run fields inherited from the assistant, one message_creation step', async () => {
    const tag = newTag();
    h.script(tag, { text: 'The answer is 42.', usage: { prompt_tokens: 11, completion_tokens: 7 } });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `What is the answer? ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: rich.id }), 'createAndPoll');

    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(run.object, 'thread.run');
    assert.equal(run.thread_id, thread.id);
    assert.equal(run.assistant_id, rich.id);
    assert.ok(isInt(run.created_at));
    assert.ok(isInt(run.started_at) && run.started_at! >= run.created_at, `started_at ${run.started_at}`);
    assert.ok(isInt(run.completed_at) && run.completed_at! >= run.started_at!, `completed_at ${run.completed_at}`);
    assert.deepEqual(run.usage, usage(11, 7));
    assert.equal(run.expires_at, null);
    assert.equal(run.last_error, null);
    assert.equal(run.failed_at, null);
    assert.equal(run.cancelled_at, null);
    assert.equal(run.incomplete_details, null);
    assert.equal(run.required_action, null);
    assert.equal(run.instructions, 'You are terse.');
    assert.equal(run.model, 'gpt-4o-mini');
    assert.deepEqual(run.tools, rich.tools);
    assert.equal(run.temperature, 0.3);
    assert.equal(run.top_p, 0.9);
    assert.deepEqual(run.response_format, { type: 'json_object' });
    assert.equal(run.tool_choice, 'auto');
    assert.equal(run.parallel_tool_calls, true);
    assert.deepEqual(run.truncation_strategy, { type: 'auto', last_messages: null });
    assert.equal(run.max_prompt_tokens, null);
    assert.equal(run.max_completion_tokens, null);
    assert.deepEqual(run.metadata, {});

    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.equal(messages.data.length, 1);
    const message = messages.data[0]!;
    assert.equal(message.role, 'assistant');
    assert.equal(message.status, 'completed');
    assert.deepEqual(message.content, textContent('The answer is 42.'));
    assert.equal(message.run_id, run.id);
    assert.equal(message.assistant_id, rich.id);
    assert.equal(message.thread_id, thread.id);
    assert.ok(isInt(message.completed_at));

    const steps = await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data.length, 1);
    const step = steps.data[0]! as Json;
    assert.equal(step.object, 'thread.run.step');
    assert.equal(step.type, 'message_creation');
    assert.equal(step.status, 'completed');
    assert.deepEqual(step.step_details, { type: 'message_creation', message_creation: { message_id: message.id } });
    assert.equal(step.run_id, run.id);
    assert.equal(step.thread_id, thread.id);
    assert.equal(step.assistant_id, rich.id);
    assert.deepEqual(step.usage, usage(11, 7));
    assert.ok(isInt(step.completed_at));
    assert.equal(step.last_error, null);
    assert.equal(step.failed_at, null);
    assert.equal(step.cancelled_at, null);
    assert.equal(step.expired_at, null);
    const retrieved = await h.client.beta.threads.runs.steps.retrieve(step.id, { thread_id: thread.id, run_id: run.id });
    assert.deepEqual(retrieved, step);

    const requests = h.requests(tag);
    assert.equal(requests.length, 1);
    const body = requests[0]!.body;
    assert.equal(body.model, 'gpt-4o-mini');
    assert.equal(body.stream, true);
    assert.deepEqual(body.messages, [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: `What is the answer? ${tag}` },
    ]);
    assert.equal(body.temperature, 0.3);
    assert.equal(body.top_p, 0.9);
    assert.deepEqual(body.response_format, { type: 'json_object' });
    assert.deepEqual(body.tools, [weatherTool]);
    assert.equal(body.tool_choice, 'auto');
    assert.equal(body.parallel_tool_calls, true);
    assert.equal(body.max_completion_tokens, undefined);
  });

  test('openai 4.x createAndPoll with every run field given: echoed on the run, sent upstream, steps list/retrieve in the positional style', async () => {
    const tag = newTag();
    h.script(tag, { text: '{"a":"b"}', usage: { prompt_tokens: 20, completion_tokens: 5 } });
    const thread = await h.v4.beta.threads.create({ messages: [{ role: 'user', content: `Give JSON ${tag}` }] });
    const responseFormat = {
      type: 'json_schema' as const,
      json_schema: { name: 'answer', schema: { type: 'object', properties: { a: { type: 'string' } } }, strict: true },
    };
    const run: Json = await withTimeout(
      h.v4.beta.threads.runs.createAndPoll(thread.id, {
        assistant_id: plain.id,
        model: 'override-model',
        instructions: 'Given instructions.',
        tools: [weatherTool, timeTool],
        temperature: 0.2,
        top_p: 0.5,
        tool_choice: 'none',
        parallel_tool_calls: false,
        response_format: responseFormat,
        truncation_strategy: { type: 'last_messages', last_messages: 10 },
        max_prompt_tokens: 5000,
        max_completion_tokens: 300,
        metadata: { purpose: 'v4' },
      }),
      'v4 createAndPoll',
    );
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(run.model, 'override-model');
    assert.equal(run.instructions, 'Given instructions.');
    assert.deepEqual(run.tools, [weatherTool, timeTool]);
    assert.equal(run.temperature, 0.2);
    assert.equal(run.top_p, 0.5);
    assert.equal(run.tool_choice, 'none');
    assert.equal(run.parallel_tool_calls, false);
    assert.deepEqual(run.response_format, responseFormat);
    assert.deepEqual(run.truncation_strategy, { type: 'last_messages', last_messages: 10 });
    assert.equal(run.max_prompt_tokens, 5000);
    assert.equal(run.max_completion_tokens, 300);
    assert.deepEqual(run.metadata, { purpose: 'v4' });
    assert.deepEqual(run.usage, usage(20, 5));
    assert.equal(run.expires_at, null);
    assert.ok(isInt(run.started_at) && isInt(run.completed_at));

    const body = h.requests(tag)[0]!.body;
    assert.equal(body.model, 'override-model');
    assert.deepEqual(body.messages, [
      { role: 'system', content: 'Given instructions.' },
      { role: 'user', content: `Give JSON ${tag}` },
    ]);
    assert.deepEqual(body.tools, [weatherTool, timeTool]);
    assert.equal(body.tool_choice, 'none');
    assert.equal(body.parallel_tool_calls, false);
    assert.equal(body.temperature, 0.2);
    assert.equal(body.top_p, 0.5);
    assert.equal(body.max_completion_tokens, 300);
    assert.deepEqual(body.response_format, responseFormat);

    const messages = await h.v4.beta.threads.messages.list(thread.id, { run_id: run.id } as Json);
    assert.equal(messages.data.length, 1);
    assert.deepEqual(messages.data[0]!.content, textContent('{"a":"b"}'));
    const steps = await h.v4.beta.threads.runs.steps.list(thread.id, run.id);
    assert.equal(steps.data.length, 1);
    const step: Json = steps.data[0]!;
    assert.equal(step.type, 'message_creation');
    assert.equal(step.step_details.message_creation.message_id, messages.data[0]!.id);
    assert.deepEqual(await h.v4.beta.threads.runs.steps.retrieve(thread.id, run.id, step.id), step);
  });

  for (const sdk of ['7.x', '4.x'] as const) {
    test(`openai ${sdk} stream(): events in order, one textDelta per upstream chunk, finalMessages/finalRun match what is stored`, async () => {
      const tag = newTag();
      const chunks = ['Hel', 'lo', ', wor', 'ld', '!'];
      h.script(tag, { chunks, usage: { prompt_tokens: 5, completion_tokens: 4 } });
      const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Greet ${tag}` }] });
      const stream: Json =
        sdk === '7.x'
          ? h.client.beta.threads.runs.stream(thread.id, { assistant_id: plain.id })
          : h.v4.beta.threads.runs.stream(thread.id, { assistant_id: plain.id });
      const events: string[] = [];
      const deltas: string[] = [];
      stream.on('event', (event: Json) => events.push(event.event));
      stream.on('textDelta', (delta: Json) => deltas.push(delta.value));
      const finalRun = await withTimeout<Json>(stream.finalRun(), 'finalRun');
      const finalMessages = await stream.finalMessages();

      assert.deepEqual(events, [
        'thread.run.created',
        'thread.run.queued',
        'thread.run.in_progress',
        ...MESSAGE_EVENTS(chunks.length),
        'thread.run.completed',
      ]);
      assert.deepEqual(deltas, chunks);
      assert.equal(finalRun.status, 'completed');
      assert.deepEqual(finalRun.usage, usage(5, 4));
      assert.equal(finalRun.expires_at, null);
      assert.deepEqual(finalRun, await h.client.beta.threads.runs.retrieve(finalRun.id, { thread_id: thread.id }));
      assert.equal(finalMessages.length, 1);
      assert.equal(finalMessages[0].content[0].text.value, 'Hello, world!');
      const stored = await h.client.beta.threads.messages.retrieve(finalMessages[0].id, { thread_id: thread.id });
      assert.equal(stored.status, 'completed');
      assert.deepEqual(stored.content, textContent('Hello, world!'));
      // 7.x takes the message.completed event as the final snapshot; 4.x keeps its own copy
      // accumulated from message.created and the deltas (status in_progress, content with `index`).
      if (sdk === '7.x') assert.deepEqual(finalMessages[0], stored);
    });
  }

  test('stream(): each delta reaches the client while the upstream is still streaming (chunkDelayMs 200)', async () => {
    const tag = newTag();
    const chunks = ['one', ' two', ' three', ' four', ' five', ' six'];
    h.script(tag, { chunks, chunkDelayMs: 200 });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Count ${tag}` }] });
    const stream = h.client.beta.threads.runs.stream(thread.id, { assistant_id: plain.id });
    // For each delta the client gets: how many SSE events the fake had written by then.
    const upstreamSentAtDelta: number[] = [];
    stream.on('textDelta', () => upstreamSentAtDelta.push(h.requests(tag)[0]?.chunksSent ?? -1));
    const run = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(run.status, 'completed');
    assert.equal(upstreamSentAtDelta.length, chunks.length);
    // Upstream events: role chunk, one per content chunk (events 2..7), finish, usage, [DONE].
    const lastContentEvent = 1 + chunks.length;
    assert.ok(
      upstreamSentAtDelta[0]! >= 2 && upstreamSentAtDelta[0]! < lastContentEvent,
      `first delta arrived when the fake had sent ${upstreamSentAtDelta[0]} of its events (last content chunk is event ${lastContentEvent})`,
    );
    for (let index = 1; index < upstreamSentAtDelta.length; index++) {
      assert.ok(upstreamSentAtDelta[index]! >= upstreamSentAtDelta[index - 1]!, `upstream progress at deltas: ${upstreamSentAtDelta}`);
    }
    assert.ok(upstreamSentAtDelta.at(-1)! > upstreamSentAtDelta[0]!, `deltas were batched: ${upstreamSentAtDelta}`);
  });

  test('openai 7.x and 4.x createAndRunPoll: thread created with its messages, run completed', async () => {
    for (const sdk of ['7.x', '4.x'] as const) {
      const tag = newTag();
      h.script(tag, { text: `Reply via ${sdk}`, usage: { prompt_tokens: 3, completion_tokens: 3 } });
      const params = { assistant_id: plain.id, thread: { messages: [{ role: 'user' as const, content: `Start ${tag}` }], metadata: { sdk } } };
      const run: Json = await withTimeout(
        sdk === '7.x' ? h.client.beta.threads.createAndRunPoll(params) : h.v4.beta.threads.createAndRunPoll(params),
        `${sdk} createAndRunPoll`,
      );
      assert.equal(run.status, 'completed', `${sdk}: ${JSON.stringify(run.last_error)}`);
      assert.deepEqual(run.usage, usage(3, 3));
      const thread = await h.client.beta.threads.retrieve(run.thread_id);
      assert.deepEqual(thread.metadata, { sdk });
      const messages = await h.client.beta.threads.messages.list(run.thread_id, { order: 'asc' });
      assert.deepEqual(
        messages.data.map((message) => [message.role, message.content]),
        [
          ['user', textContent(`Start ${tag}`)],
          ['assistant', textContent(`Reply via ${sdk}`)],
        ],
      );
      assert.equal(h.requests(tag).length, 1);
    }
  });

  for (const sdk of ['7.x', '4.x'] as const) {
    test(`openai ${sdk} createAndRunStream: thread.created first, then the run's events`, async () => {
      const tag = newTag();
      h.script(tag, { chunks: ['A', 'B'] });
      const params = { assistant_id: plain.id, thread: { messages: [{ role: 'user' as const, content: `Go ${tag}` }] } };
      const stream: Json = sdk === '7.x' ? h.client.beta.threads.createAndRunStream(params) : h.v4.beta.threads.createAndRunStream(params);
      const events: Json[] = [];
      stream.on('event', (event: Json) => events.push(event));
      const run = await withTimeout<Json>(stream.finalRun(), 'finalRun');
      assert.deepEqual(
        events.map((event) => event.event),
        ['thread.created', 'thread.run.created', 'thread.run.queued', 'thread.run.in_progress', ...MESSAGE_EVENTS(2), 'thread.run.completed'],
      );
      assert.equal(events[0].data.object, 'thread');
      assert.equal(events[0].data.id, run.thread_id);
      assert.equal(run.status, 'completed');
      const messages = await stream.finalMessages();
      assert.equal(messages[0].content[0].text.value, 'AB');
      const stored = await h.client.beta.threads.messages.list(run.thread_id, { run_id: run.id });
      assert.deepEqual(stored.data.map((message) => message.content), [textContent('AB')]);
    });
  }

  test('list runs: pagination in both orders (7.x iterator and pages, 4.x after cursor)', async () => {
    const tag = newTag();
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Many runs ${tag}` }] });
    const ids: string[] = [];
    for (let index = 0; index < 3; index++) {
      const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: plain.id }), 'createAndPoll');
      assert.equal(run.status, 'completed');
      ids.push(run.id);
    }
    const first = await h.client.beta.threads.runs.list(thread.id, { limit: 2, order: 'asc' });
    assert.deepEqual(first.data.map((run) => run.id), ids.slice(0, 2));
    assert.equal(first.has_more, true);
    const second = await first.getNextPage();
    assert.deepEqual(second.data.map((run) => run.id), ids.slice(2));
    assert.equal(second.has_more, false);

    for (const order of ['asc', 'desc'] as const) {
      const walked: string[] = [];
      for await (const run of h.client.beta.threads.runs.list(thread.id, { limit: 2, order })) walked.push(run.id);
      assert.deepEqual(walked, order === 'asc' ? ids : [...ids].reverse(), `7.x iterator order=${order}`);
    }
    const newest = await h.v4.beta.threads.runs.list(thread.id, { limit: 2, order: 'desc' });
    assert.deepEqual(newest.data.map((run) => run.id), [ids[2], ids[1]]);
    assert.equal(newest.has_more, true);
    const rest = await h.v4.beta.threads.runs.list(thread.id, { limit: 2, order: 'desc', after: ids[1] });
    assert.deepEqual(rest.data.map((run) => run.id), [ids[0]]);
    assert.equal(rest.has_more, false);
    const defaultList = await h.v4.beta.threads.runs.list(thread.id);
    assert.deepEqual(defaultList.data.map((run) => run.id), [...ids].reverse(), 'default order is newest first');
  });

  test('modify run metadata (7.x update, 4.x update) and retrieve it back', async () => {
    const tag = newTag();
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Meta ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: plain.id }), 'createAndPoll');
    const updated = await h.client.beta.threads.runs.update(run.id, { thread_id: thread.id, metadata: { a: '1' } });
    assert.deepEqual(updated.metadata, { a: '1' });
    assert.equal(updated.status, 'completed');
    const updatedV4 = await h.v4.beta.threads.runs.update(thread.id, run.id, { metadata: { a: '1', b: '2' } });
    assert.deepEqual(updatedV4.metadata, { a: '1', b: '2' });
    const retrieved = await h.v4.beta.threads.runs.retrieve(thread.id, run.id);
    assert.deepEqual(retrieved.metadata, { a: '1', b: '2' });
    assert.deepEqual({ ...retrieved, metadata: run.metadata }, run, 'only the metadata changed');
  });

  test('unknown runs: retrieve, steps, cancel and update answer 404 (both SDKs)', async () => {
    const thread = await h.client.beta.threads.create();
    await apiError(h.client.beta.threads.runs.retrieve('run_doesnotexist', { thread_id: thread.id }), 404);
    await apiError(h.v4.beta.threads.runs.retrieve(thread.id, 'run_doesnotexist'), 404);
    await apiError(h.client.beta.threads.runs.steps.list('run_doesnotexist', { thread_id: thread.id }), 404);
    await apiError(h.v4.beta.threads.runs.cancel(thread.id, 'run_doesnotexist'), 404);
    await apiError(h.client.beta.threads.runs.update('run_doesnotexist', { thread_id: thread.id, metadata: { a: 'b' } }), 404);
    await apiError(h.client.beta.threads.runs.retrieve('run_doesnotexist', { thread_id: 'thread_doesnotexist' }), 404);
  });

  test('run retrieve sends the openai-poll-after-ms header', async () => {
    const tag = newTag();
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Poll ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: plain.id }), 'createAndPoll');
    const response = await http(h.server, 'GET', `/v1/threads/${thread.id}/runs/${run.id}`);
    assert.equal(response.status, 200);
    assert.equal(response.json.id, run.id);
    assert.equal(response.headers.get('openai-poll-after-ms'), '25');
  });

  test('a streaming client that disconnects mid-run does not stop the run: it completes and its message is stored complete', async () => {
    const tag = newTag();
    const chunks = Array.from({ length: 10 }, (_, index) => `w${index} `);
    h.script(tag, { chunks, chunkDelayMs: 100 });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Long answer ${tag}` }] });
    const stream = h.client.beta.threads.runs.stream(thread.id, { assistant_id: plain.id });
    const settled = stream.done().then(
      () => 'done',
      (error: unknown) => error,
    );
    let runId: string | undefined;
    stream.on('runStepCreated', (step) => {
      runId = step.run_id;
    });
    await withTimeout(new Promise<void>((resolve) => stream.once('textDelta', () => resolve())), 'first delta');
    stream.abort();
    await settled;
    assert.ok(runId, 'the run id was seen before the abort');
    assert.ok(h.requests(tag)[0]!.chunksSent < chunks.length, 'the client left before the upstream finished');
    const run = await pollRun(h.client, thread.id, runId!, TERMINAL);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: runId! });
    assert.equal(messages.data.length, 1);
    assert.equal(messages.data[0]!.status, 'completed');
    assert.deepEqual(messages.data[0]!.content, textContent(chunks.join('')));
  });
});

// ================================================================ function calling

describe('runs: function calling', () => {
  const h = useHarness();
  let assistant: Json;

  before(async () => {
    assistant = await h.client.beta.assistants.create({ model: 'gpt-4o', instructions: 'Use tools.', tools: [weatherTool, timeTool, lookupTool] });
  });

  test('openai 7.x: one call → requires_action with the call; submitToolOutputsAndPoll → completed; next request carries the call and its output', async () => {
    const tag = newTag();
    h.script(
      tag,
      { toolCalls: [{ id: 'call_weather1', name: 'get_weather', arguments: '{"city":"Paris"}' }], usage: { prompt_tokens: 30, completion_tokens: 10 } },
      { text: 'Sunny in Paris.', usage: { prompt_tokens: 50, completion_tokens: 4 } },
    );
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Weather in Paris? ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'requires_action', JSON.stringify(run.last_error));
    assert.deepEqual(run.required_action, {
      type: 'submit_tool_outputs',
      submit_tool_outputs: {
        tool_calls: [{ id: 'call_weather1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
      },
    });
    assert.ok(isInt(run.expires_at) && run.expires_at! > run.created_at, `expires_at ${run.expires_at} while waiting for outputs`);
    assert.equal(run.completed_at, null);

    const pending = await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(pending.data.length, 1);
    const toolStep = pending.data[0]! as Json;
    assert.equal(toolStep.type, 'tool_calls');
    assert.equal(toolStep.status, 'in_progress');
    assert.deepEqual(toolStep.step_details, {
      type: 'tool_calls',
      tool_calls: [{ id: 'call_weather1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}', output: null } }],
    });

    const done = await withTimeout(
      h.client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: 'call_weather1', output: '22C and sunny' }] }),
      'submitToolOutputsAndPoll',
    );
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
    assert.deepEqual(done.usage, usage(80, 14));
    assert.equal(done.required_action, null);
    assert.equal(done.expires_at, null);

    const requests = h.requests(tag);
    assert.equal(requests.length, 2);
    assert.deepEqual(requests[1]!.body.messages, [
      { role: 'system', content: 'Use tools.' },
      { role: 'user', content: `Weather in Paris? ${tag}` },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_weather1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_weather1', content: '22C and sunny' },
    ]);
    assert.deepEqual(requests[1]!.body.tools, requests[0]!.body.tools);
    assert.deepEqual(requests[1]!.body.tools, [weatherTool, timeTool, lookupTool]);

    const steps = await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    assert.deepEqual(steps.data.map((step) => [step.type, step.status]), [['tool_calls', 'completed'], ['message_creation', 'completed']]);
    const recorded = steps.data[0]! as Json;
    assert.deepEqual(recorded.step_details.tool_calls, [
      { id: 'call_weather1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}', output: '22C and sunny' } },
    ]);
    assert.deepEqual(recorded.usage, usage(30, 10));
    assert.deepEqual((steps.data[1] as Json).usage, usage(50, 4));
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.deepEqual(messages.data.map((message) => message.content), [textContent('Sunny in Paris.')]);
  });

  test('openai 4.x: three parallel calls each with its own id; outputs submitted out of order reach the model one tool message per call', async () => {
    const tag = newTag();
    const calls = [
      { name: 'get_weather', arguments: '{"city":"Oslo"}' },
      { name: 'get_time', arguments: '{"tz":"Europe/Oslo"}' },
      { name: 'lookup', arguments: '{"q":"fjords"}' },
    ];
    h.script(tag, { toolCalls: calls }, { text: 'All done.' });
    const thread = await h.v4.beta.threads.create({ messages: [{ role: 'user', content: `Oslo please ${tag}` }] });
    const run: Json = await withTimeout(h.v4.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'v4 createAndPoll');
    assert.equal(run.status, 'requires_action', JSON.stringify(run.last_error));
    const required = run.required_action.submit_tool_outputs.tool_calls as Json[];
    assert.deepEqual(required.map((call) => [call.type, call.function.name, call.function.arguments]), calls.map((call) => ['function', call.name, call.arguments]));
    const ids = required.map((call) => call.id as string);
    assert.equal(new Set(ids).size, 3, `distinct ids: ${ids}`);
    for (const id of ids) assert.ok(typeof id === 'string' && id.length > 0);

    const outputs = ids.map((id, index) => ({ tool_call_id: id, output: `output ${index}` })).reverse();
    const done: Json = await withTimeout(h.v4.beta.threads.runs.submitToolOutputsAndPoll(thread.id, run.id, { tool_outputs: outputs }), 'v4 submitToolOutputsAndPoll');
    assert.equal(done.status, 'completed', JSON.stringify(done.last_error));

    const messages = h.requests(tag)[1]!.body.messages as Json[];
    const assistantIndex = messages.findIndex((message) => message.role === 'assistant');
    assert.deepEqual(messages[assistantIndex].tool_calls.map((call: Json) => call.id), ids);
    const toolMessages = messages.slice(assistantIndex + 1);
    assert.deepEqual(toolMessages, ids.map((id, index) => ({ role: 'tool', tool_call_id: id, content: `output ${index}` })));

    const steps = await h.v4.beta.threads.runs.steps.list(thread.id, run.id, { order: 'asc' });
    const toolStep: Json = steps.data[0]!;
    assert.deepEqual(
      toolStep.step_details.tool_calls.map((call: Json) => [call.id, call.function.output]),
      ids.map((id, index) => [id, `output ${index}`]),
    );
  });

  test('openai 7.x stream(): tool call arguments stream as toolCallDelta events; submitToolOutputsStream continues the run to completion', async () => {
    const tag = newTag();
    const args = '{"city":"Lisbon","units":"metric"}';
    h.script(tag, { toolCalls: [{ id: 'call_lisbon', name: 'get_weather', arguments: args }] }, { chunks: ['Warm', ' in', ' Lisbon.'] });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Lisbon? ${tag}` }] });

    const stream = h.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const events: string[] = [];
    const created: Json[] = [];
    const argumentDeltas: string[] = [];
    stream.on('event', (event) => events.push(event.event));
    stream.on('toolCallCreated', (call) => created.push(call));
    stream.on('toolCallDelta', (delta: Json) => argumentDeltas.push(delta.function?.arguments ?? ''));
    const paused = await withTimeout(stream.finalRun(), 'finalRun (requires_action)');
    const pieces = argumentPieces(args);
    assert.deepEqual(events, [
      ...RUN_OPENING_EVENTS,
      ...Array<string>(1 + pieces.length).fill('thread.run.step.delta'),
      'thread.run.requires_action',
    ]);
    assert.equal(created.length, 1);
    assert.equal(created[0].id, 'call_lisbon');
    assert.equal(created[0].function.name, 'get_weather');
    assert.deepEqual(argumentDeltas, pieces, 'one toolCallDelta per upstream arguments piece');
    assert.equal(paused.status, 'requires_action');
    assert.equal(paused.required_action?.submit_tool_outputs.tool_calls[0]?.function.arguments, args);
    const [stepSnapshot] = await stream.finalRunSteps();
    assert.equal((stepSnapshot as Json).step_details.tool_calls[0].function.arguments, args);

    const resumed = h.client.beta.threads.runs.submitToolOutputsStream(paused.id, {
      thread_id: thread.id,
      tool_outputs: [{ tool_call_id: 'call_lisbon', output: '25C' }],
    });
    const resumedEvents: Json[] = [];
    const deltas: string[] = [];
    resumed.on('event', (event) => resumedEvents.push(event));
    resumed.on('textDelta', (delta) => deltas.push(delta.value ?? ''));
    const finalRun = await withTimeout(resumed.finalRun(), 'submitToolOutputsStream finalRun');
    assert.equal(finalRun.status, 'completed', JSON.stringify(finalRun.last_error));
    const names = resumedEvents.map((event) => event.event);
    assert.deepEqual(
      [...names.slice(0, 2)].sort(),
      ['thread.run.queued', 'thread.run.step.completed'],
      `leading events: ${names.slice(0, 3)}`,
    );
    assert.deepEqual(names.slice(2), ['thread.run.in_progress', ...MESSAGE_EVENTS(3), 'thread.run.completed']);
    const toolStepDone = resumedEvents.find((event) => event.event === 'thread.run.step.completed');
    assert.equal(toolStepDone.data.type, 'tool_calls');
    assert.equal(toolStepDone.data.step_details.tool_calls[0].function.output, '25C');
    assert.deepEqual(deltas, ['Warm', ' in', ' Lisbon.']);
    const [message] = await resumed.finalMessages();
    assert.deepEqual(message!.content, textContent('Warm in Lisbon.'));

    const second = h.requests(tag)[1]!.body.messages as Json[];
    assert.deepEqual(second.slice(-2), [
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_lisbon', type: 'function', function: { name: 'get_weather', arguments: args } }] },
      { role: 'tool', tool_call_id: 'call_lisbon', content: '25C' },
    ]);
  });

  test('openai 4.x submitToolOutputsStream continues a run paused in requires_action', async () => {
    const tag = newTag();
    h.script(tag, { toolCalls: [{ id: 'call_v4s', name: 'lookup', arguments: '{"q":"x"}' }] }, { chunks: ['Found', ' it.'] });
    const thread = await h.v4.beta.threads.create({ messages: [{ role: 'user', content: `Find ${tag}` }] });
    const run: Json = await withTimeout(h.v4.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'v4 createAndPoll');
    assert.equal(run.status, 'requires_action');
    const stream = h.v4.beta.threads.runs.submitToolOutputsStream(thread.id, run.id, { tool_outputs: [{ tool_call_id: 'call_v4s', output: 'x=1' }] });
    const deltas: string[] = [];
    stream.on('textDelta', (delta) => deltas.push(delta.value ?? ''));
    const finalRun = await withTimeout(stream.finalRun(), 'v4 submitToolOutputsStream');
    assert.equal(finalRun.status, 'completed');
    assert.deepEqual(deltas, ['Found', ' it.']);
  });

  test('multi-round: three rounds of tool calls then text; every round recorded in steps and replayed to the model', async () => {
    const tag = newTag();
    h.script(
      tag,
      { toolCalls: [{ id: 'call_r1', name: 'lookup', arguments: '{"q":"1"}' }], usage: { prompt_tokens: 10, completion_tokens: 1 } },
      { toolCalls: [{ id: 'call_r2', name: 'lookup', arguments: '{"q":"2"}' }], usage: { prompt_tokens: 20, completion_tokens: 2 } },
      { toolCalls: [{ id: 'call_r3', name: 'get_time', arguments: '{"tz":"UTC"}' }], usage: { prompt_tokens: 30, completion_tokens: 3 } },
      { text: 'Finished after three rounds.', usage: { prompt_tokens: 40, completion_tokens: 4 } },
    );
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Dig deep ${tag}` }] });
    let run: Json = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    let rounds = 0;
    while (run.status === 'requires_action' && rounds < 5) {
      rounds++;
      const outputs = run.required_action.submit_tool_outputs.tool_calls.map((call: Json) => ({ tool_call_id: call.id, output: `result of ${call.id}` }));
      run = await withTimeout(
        rounds % 2 === 1
          ? h.client.beta.threads.runs.submitToolOutputsAndPoll(run.id, { thread_id: thread.id, tool_outputs: outputs })
          : h.v4.beta.threads.runs.submitToolOutputsAndPoll(thread.id, run.id, { tool_outputs: outputs }),
        `round ${rounds}`,
      );
    }
    assert.equal(rounds, 3);
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.deepEqual(run.usage, usage(100, 10));

    const requests = h.requests(tag);
    assert.equal(requests.length, 4);
    const callMessage = (id: string, name: string, args: string) => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name, arguments: args } }] });
    assert.deepEqual(requests[3]!.body.messages, [
      { role: 'system', content: 'Use tools.' },
      { role: 'user', content: `Dig deep ${tag}` },
      callMessage('call_r1', 'lookup', '{"q":"1"}'),
      { role: 'tool', tool_call_id: 'call_r1', content: 'result of call_r1' },
      callMessage('call_r2', 'lookup', '{"q":"2"}'),
      { role: 'tool', tool_call_id: 'call_r2', content: 'result of call_r2' },
      callMessage('call_r3', 'get_time', '{"tz":"UTC"}'),
      { role: 'tool', tool_call_id: 'call_r3', content: 'result of call_r3' },
    ]);
    for (const request of requests) assert.deepEqual(request.body.tools, [weatherTool, timeTool, lookupTool]);

    const steps = await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    assert.deepEqual(
      steps.data.map((step: Json) => [step.type, step.status, step.type === 'tool_calls' ? step.step_details.tool_calls[0].function.output : null]),
      [
        ['tool_calls', 'completed', 'result of call_r1'],
        ['tool_calls', 'completed', 'result of call_r2'],
        ['tool_calls', 'completed', 'result of call_r3'],
        ['message_creation', 'completed', null],
      ],
    );
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.deepEqual(messages.data.map((message) => message.content), [textContent('Finished after three rounds.')]);
  });

  test('submitting tool outputs to a run not in requires_action → 400 (both SDKs)', async () => {
    const tag = newTag();
    h.script(tag, { text: 'No tools needed.' });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Plain ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'completed');
    await apiError(h.client.beta.threads.runs.submitToolOutputs(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: 'call_x', output: 'y' }] }), 400);
    await apiError(h.v4.beta.threads.runs.submitToolOutputs(thread.id, run.id, { tool_outputs: [{ tool_call_id: 'call_x', output: 'y' }] }), 400);
    const after = await h.client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.deepEqual(after, run);
  });

  test('missing, unknown, duplicate and absent tool_call_id → 400; the run still waits and then completes with the right outputs', async () => {
    const tag = newTag();
    h.script(
      tag,
      {
        toolCalls: [
          { id: 'call_a', name: 'lookup', arguments: '{"q":"a"}' },
          { id: 'call_b', name: 'lookup', arguments: '{"q":"b"}' },
        ],
      },
      { text: 'Both looked up.' },
    );
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Two lookups ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'requires_action');
    const submit = (toolOutputs: Json[]) => h.client.beta.threads.runs.submitToolOutputs(run.id, { thread_id: thread.id, tool_outputs: toolOutputs });

    await apiError(submit([{ tool_call_id: 'call_a', output: 'A' }]), 400); // call_b missing
    await apiError(submit([{ tool_call_id: 'call_a', output: 'A' }, { tool_call_id: 'call_zzz', output: 'Z' }]), 400);
    await apiError(submit([{ tool_call_id: 'call_a', output: 'A' }, { tool_call_id: 'call_a', output: 'A' }]), 400);
    await apiError(h.v4.beta.threads.runs.submitToolOutputs(thread.id, run.id, { tool_outputs: [{ tool_call_id: 'call_nope', output: 'x' }, { tool_call_id: 'call_b', output: 'B' }] }), 400);
    const raw = await http(h.server, 'POST', `/v1/threads/${thread.id}/runs/${run.id}/submit_tool_outputs`, { body: { tool_outputs: [{ output: 'A' }, { output: 'B' }] } });
    assert.equal(raw.status, 400, raw.text);
    assert.equal(raw.json?.error?.type, 'invalid_request_error');

    const still = await h.client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(still.status, 'requires_action');
    assert.deepEqual(still.required_action, run.required_action);
    assert.equal(h.requests(tag).length, 1, 'no model call happened for the rejected submissions');

    const done = await withTimeout(
      h.client.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
        thread_id: thread.id,
        tool_outputs: [{ tool_call_id: 'call_b', output: 'B' }, { tool_call_id: 'call_a', output: 'A' }],
      }),
      'submitToolOutputsAndPoll',
    );
    assert.equal(done.status, 'completed');
    assert.deepEqual(h.requests(tag)[1]!.body.messages.slice(-2), [
      { role: 'tool', tool_call_id: 'call_a', content: 'A' },
      { role: 'tool', tool_call_id: 'call_b', content: 'B' },
    ]);
  });
});

// ================================================================ every run parameter reaching the model

describe('runs: parameters reach the model', () => {
  const h = useHarness();
  let assistant: Json;

  before(async () => {
    assistant = await h.client.beta.assistants.create({ model: 'gpt-4o', instructions: 'Assistant instructions.', tools: [weatherTool, timeTool] });
  });

  async function runWith(tag: string, params: Json, userContent: Json = `Question ${tag}`) {
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: userContent }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, ...params }), 'createAndPoll');
    return { thread, run: run as Json, body: h.requests(tag)[0]?.body };
  }

  test('instructions + additional_instructions both in the one system message (given and inherited instructions)', async () => {
    let tag = newTag();
    let { run, body } = await runWith(tag, { instructions: 'Main instructions.', additional_instructions: 'Extra instructions.' });
    assert.equal(run.status, 'completed');
    let system = body.messages.filter((message: Json) => message.role === 'system');
    assert.equal(system.length, 1);
    assert.equal(body.messages[0].role, 'system');
    assert.ok(system[0].content.startsWith('Main instructions.'), system[0].content);
    assert.ok(system[0].content.indexOf('Extra instructions.') > system[0].content.indexOf('Main instructions.'), system[0].content);

    tag = newTag();
    ({ run, body } = await runWith(tag, { additional_instructions: 'Only extra.' }));
    assert.equal(run.status, 'completed');
    system = body.messages.filter((message: Json) => message.role === 'system');
    assert.equal(system.length, 1);
    assert.ok(system[0].content.startsWith('Assistant instructions.'), system[0].content);
    assert.ok(system[0].content.includes('Only extra.'), system[0].content);
    assert.equal(run.instructions, 'Assistant instructions.');
  });

  test('openai 4.x: additional_messages are added to the thread and appended to the prompt in order', async () => {
    const tag = newTag();
    const thread = await h.v4.beta.threads.create({ messages: [{ role: 'user', content: `First ${tag}` }] });
    const run: Json = await withTimeout(
      h.v4.beta.threads.runs.createAndPoll(thread.id, {
        assistant_id: assistant.id,
        additional_messages: [
          { role: 'user', content: `Second ${tag}` },
          { role: 'assistant', content: 'Third (assistant)' },
          { role: 'user', content: `Fourth ${tag}`, metadata: { kind: 'additional' } },
        ],
      }),
      'v4 createAndPoll',
    );
    assert.equal(run.status, 'completed');
    const body = h.requests(tag)[0]!.body;
    assert.deepEqual(body.messages, [
      { role: 'system', content: 'Assistant instructions.' },
      { role: 'user', content: `First ${tag}` },
      { role: 'user', content: `Second ${tag}` },
      { role: 'assistant', content: 'Third (assistant)' },
      { role: 'user', content: `Fourth ${tag}` },
    ]);
    const stored = await h.v4.beta.threads.messages.list(thread.id, { order: 'asc' });
    assert.deepEqual(
      stored.data.map((message) => [message.role, (message.content[0] as Json).text.value]),
      [
        ['user', `First ${tag}`],
        ['user', `Second ${tag}`],
        ['assistant', 'Third (assistant)'],
        ['user', `Fourth ${tag}`],
        ['assistant', 'Hello from the fake model.'],
      ],
    );
    assert.deepEqual(stored.data[3]!.metadata, { kind: 'additional' });
  });

  test('temperature 0, top_p and max_completion_tokens are sent as given', async () => {
    const tag = newTag();
    const { run, body } = await runWith(tag, { temperature: 0, top_p: 0.25, max_completion_tokens: 123 });
    assert.equal(run.status, 'completed');
    assert.equal(run.temperature, 0);
    assert.equal(run.top_p, 0.25);
    assert.equal(run.max_completion_tokens, 123);
    assert.equal(body.temperature, 0);
    assert.equal(body.top_p, 0.25);
    assert.equal(body.max_completion_tokens, 123);
  });

  test('tool_choice none/auto/required/named function and parallel_tool_calls reach the model', async () => {
    const choices: Json[] = ['none', 'auto', 'required', { type: 'function', function: { name: 'get_time' } }];
    for (const [index, choice] of choices.entries()) {
      const tag = newTag();
      const parallel = index % 2 === 0;
      const { run, body } = await runWith(tag, { tool_choice: choice, parallel_tool_calls: parallel });
      assert.equal(run.status, 'completed', `tool_choice ${JSON.stringify(choice)}: ${JSON.stringify(run.last_error)}`);
      assert.deepEqual(run.tool_choice, choice);
      assert.equal(run.parallel_tool_calls, parallel);
      assert.deepEqual(body.tool_choice, choice);
      assert.equal(body.parallel_tool_calls, parallel);
      assert.deepEqual(body.tools, [weatherTool, timeTool]);
    }
  });

  test('response_format json_object and json_schema reach the model', async () => {
    const schema = {
      type: 'json_schema',
      json_schema: { name: 'weather', description: 'A weather report', schema: { type: 'object', properties: { temp: { type: 'number' } }, required: ['temp'] }, strict: true },
    };
    for (const format of [{ type: 'json_object' }, schema]) {
      const tag = newTag();
      const { run, body } = await runWith(tag, { response_format: format });
      assert.equal(run.status, 'completed');
      assert.deepEqual(run.response_format, format);
      assert.deepEqual(body.response_format, format);
    }
  });

  test('model and tools overrides replace the assistant’s', async () => {
    const tag = newTag();
    const { run, body } = await runWith(tag, { model: 'some-other-model', tools: [lookupTool] });
    assert.equal(run.status, 'completed');
    assert.equal(run.model, 'some-other-model');
    assert.deepEqual(run.tools, [lookupTool]);
    assert.equal(body.model, 'some-other-model');
    assert.deepEqual(body.tools, [lookupTool]);
  });

  test('truncation_strategy last_messages: only the last N thread messages are in the prompt', async () => {
    const tag = newTag();
    const texts = [1, 2, 3, 4, 5].map((n) => `Message ${n} ${tag}`);
    const thread = await h.client.beta.threads.create({ messages: texts.map((content) => ({ role: 'user' as const, content })) });
    const run = await withTimeout(
      h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, truncation_strategy: { type: 'last_messages', last_messages: 2 } }),
      'createAndPoll',
    );
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.truncation_strategy, { type: 'last_messages', last_messages: 2 });
    assert.deepEqual(h.requests(tag)[0]!.body.messages, [
      { role: 'system', content: 'Assistant instructions.' },
      { role: 'user', content: texts[3] },
      { role: 'user', content: texts[4] },
    ]);
  });

  test('max_prompt_tokens: the oldest messages are dropped to fit', async () => {
    const tag = newTag();
    // Each message is about 210 tokens and the two tool definitions about 80 (they count too): two
    // messages fit in 600, three do not.
    const texts = [1, 2, 3, 4].map((n) => `Message ${n}:${' word'.repeat(200)} ${tag}`);
    const thread = await h.client.beta.threads.create({ messages: texts.map((content) => ({ role: 'user' as const, content })) });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, max_prompt_tokens: 600 }), 'createAndPoll');
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(run.max_prompt_tokens, 600);
    const messages = h.requests(tag)[0]!.body.messages as Json[];
    assert.deepEqual(messages, [
      { role: 'system', content: 'Assistant instructions.' },
      { role: 'user', content: texts[2] },
      { role: 'user', content: texts[3] },
    ]);
  });

  test('max_prompt_tokens too small for the last message → run incomplete (max_prompt_tokens), no model call', async () => {
    const tag = newTag();
    const { run, thread } = await runWith(tag, { max_prompt_tokens: 10 }, `A long question:${' word'.repeat(100)} ${tag}`);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_prompt_tokens' });
    assert.equal(run.expires_at, null);
    assert.equal(run.last_error, null);
    assert.equal(h.requests(tag).length, 0);
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.equal(messages.data.filter((message) => message.status === 'in_progress').length, 0);
  });

  test('image_url parts pass through to the model as image_url content', async () => {
    const tag = newTag();
    const { run, body } = await runWith(tag, {}, [
      { type: 'text', text: `What is in this picture? ${tag}` },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    ]);
    assert.equal(run.status, 'completed');
    assert.deepEqual(body.messages.at(-1), {
      role: 'user',
      content: [
        { type: 'text', text: `What is in this picture? ${tag}` },
        { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'auto' } },
      ],
    });
  });

  test("finish_reason 'length' with max_completion_tokens → run incomplete (max_completion_tokens), message incomplete with the text so far", async () => {
    const tag = newTag();
    h.script(tag, { text: 'This answer was cut', finishReason: 'length', usage: { prompt_tokens: 9, completion_tokens: 5 } });
    const { run, thread, body } = await runWith(tag, { max_completion_tokens: 5 });
    assert.equal(body.max_completion_tokens, 5);
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.deepEqual(run.usage, usage(9, 5));
    assert.equal(run.expires_at, null);
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: run.id });
    assert.equal(messages.data.length, 1);
    assert.equal(messages.data[0]!.status, 'incomplete');
    assert.ok(messages.data[0]!.incomplete_details, 'incomplete_details set');
    assert.ok(isInt(messages.data[0]!.incomplete_at));
    assert.deepEqual(messages.data[0]!.content, textContent('This answer was cut'));
  });
});

// ================================================================ token limits enforced here

describe('runs: max_completion_tokens and max_prompt_tokens are enforced here, whatever the upstream does', () => {
  const h = useHarness();
  let assistant: Json;
  const COUNTING = ['one', ' two', ' three', ' four', ' five', ' six', ' seven', ' eight', ' nine', ' ten'];

  before(async () => {
    assistant = await h.client.beta.assistants.create({ model: 'gpt-4o', instructions: 'Count.', tools: [weatherTool] });
  });

  test('an upstream that ignores max_completion_tokens is cut off at the limit: the stream stops there, the upstream request is aborted, message and run end incomplete', async () => {
    const tag = newTag();
    // Sixty one-token chunks, 20 ms apart, finish_reason stop: an upstream deaf to the limit.
    const chunks = Array.from({ length: 6 }, () => COUNTING).flat();
    h.script(tag, { chunks, chunkDelayMs: 20 });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Count to sixty ${tag}` }] });
    const stream = h.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id, max_completion_tokens: 3 });
    const events: string[] = [];
    const deltas: string[] = [];
    stream.on('event', (event) => events.push(event.event));
    stream.on('textDelta', (delta) => deltas.push(delta.value ?? ''));
    const run: Json = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.equal(run.usage.completion_tokens, 3);
    assert.equal(deltas.join(''), 'one two three');
    assert.ok(events.includes('thread.message.incomplete') && events.at(-1) === 'thread.run.incomplete', events.join(' '));
    assert.ok(!events.includes('thread.run.completed') && !events.includes('thread.message.completed'), events.join(' '));

    const [message] = (await h.client.beta.threads.messages.list(thread.id, { run_id: run.id })).data;
    assert.equal(message!.status, 'incomplete');
    assert.deepEqual(message!.incomplete_details, { reason: 'max_tokens' });
    assert.deepEqual(message!.content, textContent('one two three'));
    const stored: Json = await h.client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id });
    assert.equal(stored.status, 'incomplete');

    // The limit was sent, and the upstream stream was abandoned at the cut: no more chunks go out.
    const request = h.requests(tag)[0]!;
    assert.equal(request.body.max_completion_tokens, 3);
    const sent = request.chunksSent;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(request.chunksSent, sent, 'the upstream kept streaming after the cut');
    assert.ok(sent < chunks.length, `${sent} of ${chunks.length + 4} chunks were sent`);
  });

  test('a single delta that passes the limit is cut inside it, at a token boundary', async () => {
    const tag = newTag();
    h.script(tag, { chunks: ['The quick brown fox jumps over the lazy dog.'] });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Say it ${tag}` }] });
    const run: Json = await withTimeout(
      h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, max_completion_tokens: 4 }),
      'createAndPoll',
    );
    assert.equal(run.status, 'incomplete');
    assert.equal(run.usage.completion_tokens, 4);
    const [message] = (await h.client.beta.threads.messages.list(thread.id, { run_id: run.id })).data;
    assert.deepEqual(message!.content, textContent('The quick brown fox'));
  });

  test('tool-call arguments that pass the limit: incomplete, the call kept in a cancelled step, never requires_action', async () => {
    const tag = newTag();
    const city = 'Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch, '.repeat(4);
    h.script(tag, { toolCalls: [{ id: 'call_long', name: 'get_weather', arguments: JSON.stringify({ city }) }] });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Weather? ${tag}` }] });
    const run: Json = await withTimeout(
      h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, max_completion_tokens: 10 }),
      'createAndPoll',
    );
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.equal(run.required_action, null);
    assert.ok(run.usage.completion_tokens <= 10, JSON.stringify(run.usage));
    const steps = (await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data as Json[];
    assert.equal(steps.length, 1);
    assert.equal(steps[0].type, 'tool_calls');
    assert.equal(steps[0].status, 'cancelled');
    assert.ok(isInt(steps[0].cancelled_at));
    assert.equal(steps[0].step_details.tool_calls[0].function.name, 'get_weather');
    assert.ok(JSON.stringify({ city }).startsWith(steps[0].step_details.tool_calls[0].function.arguments));
  });

  test("finish_reason 'length' in the middle of a tool call: incomplete too, not requires_action", async () => {
    const tag = newTag();
    h.script(tag, { toolCalls: [{ id: 'call_cut', name: 'get_weather', arguments: '{"city":"Par' }], finishReason: 'length' });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Weather? ${tag}` }] });
    const run: Json = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_completion_tokens' });
    assert.equal(run.required_action, null);
    const steps = (await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id })).data as Json[];
    assert.deepEqual(steps.map((step) => step.status), ['cancelled']);
  });

  test('the limit is for the whole run: after a tool round, the next model call gets what is left, and is held to it', async () => {
    const tag = newTag();
    h.script(
      tag,
      { toolCalls: [{ id: 'call_w', name: 'get_weather', arguments: '{"city":"Paris"}' }], usage: { prompt_tokens: 20, completion_tokens: 8 } },
      { chunks: COUNTING },
    );
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Weather, then count ${tag}` }] });
    const waiting: Json = await withTimeout(
      h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, max_completion_tokens: 12 }),
      'createAndPoll',
    );
    assert.equal(waiting.status, 'requires_action');
    const run: Json = await withTimeout(
      h.client.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: 'call_w', output: 'sunny' }] }),
      'submitToolOutputsAndPoll',
    );
    assert.equal(run.status, 'incomplete');
    assert.equal(run.usage.completion_tokens, 12);
    assert.equal(h.requests(tag)[1]!.body.max_completion_tokens, 4);
    const [message] = (await h.client.beta.threads.messages.list(thread.id, { run_id: run.id })).data;
    assert.deepEqual(message!.content, textContent('one two three four'));
  });

  test('tool definitions count against max_prompt_tokens: when they alone exceed it, the run is incomplete before any model call', async () => {
    const tag = newTag();
    const verbose = {
      type: 'function' as const,
      function: { name: 'get_weather', description: `Weather for a city.${' Really.'.repeat(300)}`, parameters: weatherTool.function.parameters },
    };
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Hi ${tag}` }] });
    const run: Json = await withTimeout(
      h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, tools: [verbose], max_prompt_tokens: 200 }),
      'createAndPoll',
    );
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_prompt_tokens' });
    assert.equal(h.requests(tag).length, 0);
  });

  test('instructions alone exceeding max_prompt_tokens: incomplete before any model call', async () => {
    const tag = newTag();
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Hi ${tag}` }] });
    const run: Json = await withTimeout(
      h.client.beta.threads.runs.createAndPoll(thread.id, {
        assistant_id: assistant.id,
        instructions: `Be brief.${' Very brief.'.repeat(100)}`,
        max_prompt_tokens: 100,
      }),
      'createAndPoll',
    );
    assert.equal(run.status, 'incomplete');
    assert.deepEqual(run.incomplete_details, { reason: 'max_prompt_tokens' });
    assert.equal(h.requests(tag).length, 0);
  });
});

// ================================================================ upstream trouble

describe('runs: upstream trouble (model_max_retries 1, model_timeout_seconds 1)', () => {
  const h = useHarness(() => ({ assistd_settings: { model_max_retries: 1, model_timeout_seconds: 1 } }));
  let assistant: Json;

  before(async () => {
    assistant = await h.client.beta.assistants.create({ model: 'gpt-4o' });
  });

  async function run(tag: string) {
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Try ${tag}` }] });
    const result = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll', 20_000);
    return { thread, run: result as Json };
  }

  test('429 with Retry-After: 0, then success → completed after two upstream requests', async () => {
    const tag = newTag();
    h.script(tag, { status: 429, retryAfter: '0' }, { text: 'Made it.' });
    const { run: result, thread } = await run(tag);
    assert.equal(result.status, 'completed', JSON.stringify(result.last_error));
    assert.equal(h.requests(tag).length, 2);
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: result.id });
    assert.deepEqual(messages.data.map((message) => message.content), [textContent('Made it.')]);
  });

  test('500 on every attempt → failed with last_error.code server_error after retries+1 requests', async () => {
    const tag = newTag();
    h.script(tag, { status: 500 }, { status: 500 }, { text: 'too late' });
    const { run: result } = await run(tag);
    assert.equal(result.status, 'failed');
    assert.equal(result.last_error?.code, 'server_error');
    assert.ok(typeof result.last_error?.message === 'string' && result.last_error.message.length > 0);
    assert.ok(isInt(result.failed_at));
    assert.equal(result.expires_at, null);
    assert.equal(h.requests(tag).length, 2);
  });

  test('persistent 429 → failed with last_error.code rate_limit_exceeded', async () => {
    const tag = newTag();
    h.script(tag, { status: 429, retryAfter: '0' }, { status: 429, retryAfter: '0' }, { text: 'too late' });
    const { run: result } = await run(tag);
    assert.equal(result.status, 'failed');
    assert.equal(result.last_error?.code, 'rate_limit_exceeded');
    assert.equal(h.requests(tag).length, 2);
  });

  test('400 → failed with last_error.code invalid_prompt and the upstream message, no retry', async () => {
    const tag = newTag();
    h.script(tag, { status: 400, errorMessage: 'This model does not like your prompt.' }, { text: 'should not be asked' });
    const { run: result } = await run(tag);
    assert.equal(result.status, 'failed');
    assert.equal(result.last_error?.code, 'invalid_prompt');
    assert.ok(result.last_error?.message.includes('This model does not like your prompt.'), result.last_error?.message);
    assert.equal(h.requests(tag).length, 1);
  });

  test('a broken stream, then success → completed with only the retry’s text stored', async () => {
    const tag = newTag();
    h.script(tag, { text: 'Partial words that never finish', breakAfterChunks: 3 }, { text: 'Recovered answer.' });
    const { run: result, thread } = await run(tag);
    assert.equal(result.status, 'completed', JSON.stringify(result.last_error));
    assert.equal(h.requests(tag).length, 2);
    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: result.id });
    assert.equal(messages.data.length, 1);
    assert.equal(messages.data[0]!.status, 'completed');
    assert.deepEqual(messages.data[0]!.content, textContent('Recovered answer.'));
    const steps = await h.client.beta.threads.runs.steps.list(result.id, { thread_id: thread.id });
    assert.deepEqual(steps.data.map((step) => [step.type, step.status]), [['message_creation', 'completed']]);
  });

  /** Runs a stream and returns the text each message's deltas composed, by message id. */
  async function streamedTexts(threadId: string) {
    const stream = h.client.beta.threads.runs.stream(threadId, { assistant_id: assistant.id });
    const texts = new Map<string, string>();
    stream.on('event', (event) => {
      if (event.event !== 'thread.message.delta') return;
      for (const part of event.data.delta.content ?? []) {
        if (part.type === 'text') texts.set(event.data.id, (texts.get(event.data.id) ?? '') + (part.text?.value ?? ''));
      }
    });
    const finalRun = await withTimeout(stream.finalRun(), 'finalRun', 20_000);
    return { finalRun, texts };
  }

  test('a broken stream retried with a different answer: each message the client saw is stored as it was streamed', async () => {
    const tag = newTag();
    h.script(tag, { text: 'Partial words that never finish', breakAfterChunks: 3 }, { text: 'Recovered answer.' }, { text: 'Next.' });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Stream ${tag}` }] });
    const { finalRun, texts } = await streamedTexts(thread.id);
    assert.equal(finalRun.status, 'completed');
    const stored = await h.client.beta.threads.messages.list(thread.id, { run_id: finalRun.id, order: 'asc' });
    assert.deepEqual(
      stored.data.map((message) => [message.status, message.incomplete_details?.reason ?? null, message.content]),
      [
        ['incomplete', 'run_failed', textContent('Partial words')],
        ['completed', null, textContent('Recovered answer.')],
      ],
    );
    assert.deepEqual(
      stored.data.map((message) => texts.get(message.id)),
      ['Partial words', 'Recovered answer.'],
      'the deltas of each message compose exactly what is stored',
    );
    // The cut-off text is not part of the model's history afterwards.
    await h.client.beta.threads.messages.create(thread.id, { role: 'user', content: `Again ${tag}` });
    await h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    const history = JSON.stringify(h.requests(tag).at(-1)!.body.messages);
    assert.ok(history.includes('Recovered answer.') && !history.includes('Partial words'), history);
  });

  test('a broken stream retried with the same answer: the repeated prefix is not sent twice, one message', async () => {
    const tag = newTag();
    h.script(tag, { text: 'Same words each time, in full', breakAfterChunks: 3 }, { text: 'Same words each time, in full' });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Stream ${tag}` }] });
    const { finalRun, texts } = await streamedTexts(thread.id);
    assert.equal(finalRun.status, 'completed');
    const stored = await h.client.beta.threads.messages.list(thread.id, { run_id: finalRun.id });
    assert.equal(stored.data.length, 1);
    assert.deepEqual(stored.data[0]!.content, textContent('Same words each time, in full'));
    assert.equal(texts.get(stored.data[0]!.id), 'Same words each time, in full');
  });

  test('stream(): an upstream 400 ends the stream with thread.run.failed carrying last_error', async () => {
    const tag = newTag();
    h.script(tag, { status: 400, errorMessage: 'Rejected upstream.' });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Fail ${tag}` }] });
    const stream = h.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    const events: string[] = [];
    stream.on('event', (event) => events.push(event.event));
    const finalRun = await withTimeout(stream.finalRun(), 'finalRun');
    assert.deepEqual(events, ['thread.run.created', 'thread.run.queued', 'thread.run.in_progress', 'thread.run.failed']);
    assert.equal(finalRun.status, 'failed');
    assert.equal(finalRun.last_error?.code, 'invalid_prompt');
    assert.deepEqual(finalRun, await h.client.beta.threads.runs.retrieve(finalRun.id, { thread_id: thread.id }));
  });

  test('an upstream that hangs (model_timeout_seconds 1) → retried, then failed; the hung requests are aborted', async () => {
    const tag = newTag();
    h.script(tag, { hang: true }, { hang: true }, { text: 'too late' });
    const { run: result } = await run(tag);
    assert.equal(result.status, 'failed');
    assert.equal(result.last_error?.code, 'server_error');
    assert.equal(h.requests(tag).length, 2);
    await waitFor('the fake model to have no request in progress', () => h.fake.activeConnections() === 0, 10_000);
  });
});

// ================================================================ cancel and one active run per thread

describe('runs: cancel and one active run per thread', () => {
  const h = useHarness();
  let assistant: Json;

  before(async () => {
    assistant = await h.client.beta.assistants.create({ model: 'gpt-4o', tools: [lookupTool] });
  });

  test('cancel during a slow stream → cancelled with cancelled_at, upstream request aborted; meanwhile a second run and new messages are refused', async () => {
    const tag = newTag();
    const chunks = Array.from({ length: 40 }, (_, index) => `tok${index} `);
    h.script(tag, { chunks, chunkDelayMs: 300 });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Slow ${tag}` }] });
    const run = await h.client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    await waitFor('the upstream stream to start', () => (h.requests(tag)[0]?.chunksSent ?? 0) >= 3);

    const second = await apiError(h.client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id }), 400);
    assert.equal(second.error?.message, `Thread ${thread.id} already has an active run ${run.id}.`);
    const message = await apiError(h.client.beta.threads.messages.create(thread.id, { role: 'user', content: 'interrupt' }), 400);
    assert.equal(message.error?.message, `Can't add messages to ${thread.id} while a run ${run.id} is active.`);

    const cancelling = await h.client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    assert.ok(['cancelling', 'cancelled'].includes(cancelling.status), cancelling.status);
    const cancelled = await pollRun(h.client, thread.id, run.id, TERMINAL, 10_000);
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(isInt(cancelled.cancelled_at), `cancelled_at ${cancelled.cancelled_at}`);
    assert.equal(cancelled.expires_at, null);
    assert.equal(cancelled.completed_at, null);
    await waitFor('the upstream request to be aborted', () => h.fake.activeConnections() === 0, 10_000);
    assert.ok(h.requests(tag)[0]!.chunksSent < chunks.length, 'the upstream did not stream to the end');

    const messages = await h.client.beta.threads.messages.list(thread.id, { run_id: run.id });
    for (const stored of messages.data) assert.equal(stored.status, 'incomplete', 'the interrupted message is not left in progress');
    const steps = await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    for (const step of steps.data) assert.notEqual(step.status, 'in_progress');
    // The thread is free again.
    await h.client.beta.threads.messages.create(thread.id, { role: 'user', content: 'after the cancel' });
  });

  test('openai 4.x cancel in requires_action → cancelled; the tool step is cancelled', async () => {
    const tag = newTag();
    h.script(tag, { toolCalls: [{ id: 'call_c1', name: 'lookup', arguments: '{}' }] });
    const thread = await h.v4.beta.threads.create({ messages: [{ role: 'user', content: `Tool then cancel ${tag}` }] });
    const run: Json = await withTimeout(h.v4.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'v4 createAndPoll');
    assert.equal(run.status, 'requires_action');
    const cancelling = await h.v4.beta.threads.runs.cancel(thread.id, run.id);
    assert.ok(['cancelling', 'cancelled'].includes(cancelling.status), cancelling.status);
    const cancelled = await pollRun(h.client, thread.id, run.id, TERMINAL, 10_000);
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(isInt(cancelled.cancelled_at));
    assert.equal(cancelled.required_action, null);
    const steps = await h.v4.beta.threads.runs.steps.list(thread.id, run.id);
    assert.deepEqual(steps.data.map((step) => step.status), ['cancelled']);
    await apiError(h.v4.beta.threads.runs.submitToolOutputs(thread.id, run.id, { tool_outputs: [{ tool_call_id: 'call_c1', output: 'late' }] }), 400);
  });

  test('cancel of a completed run → 400 (both SDKs), the run unchanged', async () => {
    const tag = newTag();
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Quick ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'completed');
    await apiError(h.client.beta.threads.runs.cancel(run.id, { thread_id: thread.id }), 400);
    await apiError(h.v4.beta.threads.runs.cancel(thread.id, run.id), 400);
    assert.deepEqual(await h.client.beta.threads.runs.retrieve(run.id, { thread_id: thread.id }), run);
  });

  test('a run in requires_action blocks a second run (exact message) and new messages (exact message)', async () => {
    const tag = newTag();
    h.script(tag, { toolCalls: [{ id: 'call_block', name: 'lookup', arguments: '{}' }] });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Block ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'requires_action');

    const second = await http(h.server, 'POST', `/v1/threads/${thread.id}/runs`, { body: { assistant_id: assistant.id } });
    assert.equal(second.status, 400, second.text);
    assert.equal(second.json.error.message, `Thread ${thread.id} already has an active run ${run.id}.`);
    assert.equal(second.json.error.type, 'invalid_request_error');
    const v4 = await apiError(h.v4.beta.threads.runs.create(thread.id, { assistant_id: assistant.id }), 400);
    assert.equal(v4.error?.message, `Thread ${thread.id} already has an active run ${run.id}.`);
    const message = await http(h.server, 'POST', `/v1/threads/${thread.id}/messages`, { body: { role: 'user', content: 'meanwhile' } });
    assert.equal(message.status, 400, message.text);
    assert.equal(message.json.error.message, `Can't add messages to ${thread.id} while a run ${run.id} is active.`);
    const runs = await h.client.beta.threads.runs.list(thread.id);
    assert.deepEqual(runs.data.map((item) => item.id), [run.id], 'no second run was created');

    await h.client.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    await pollRun(h.client, thread.id, run.id, TERMINAL, 10_000);
  });
});

// ================================================================ requires_action expiry

describe('runs: requires_action expiry (run_expiry_seconds 1)', () => {
  const h = useHarness(() => ({ assistd_settings: { run_expiry_seconds: 1 } }));

  test('a run left in requires_action becomes expired; its tool step expires; outputs are then refused and the thread is free', async () => {
    const assistant = await h.client.beta.assistants.create({ model: 'gpt-4o', tools: [lookupTool] });
    const tag = newTag();
    h.script(tag, { toolCalls: [{ id: 'call_exp', name: 'lookup', arguments: '{}' }] });
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Expire ${tag}` }] });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'requires_action');
    assert.ok(isInt(run.expires_at));
    const expired = await pollRun(h.client, thread.id, run.id, TERMINAL, 10_000);
    assert.equal(expired.status, 'expired');
    assert.equal(expired.required_action, null);
    const steps = await h.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data.length, 1);
    assert.equal(steps.data[0]!.status, 'expired');
    assert.ok(isInt(steps.data[0]!.expired_at));
    await apiError(h.client.beta.threads.runs.submitToolOutputs(run.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: 'call_exp', output: 'late' }] }), 400);
    await h.client.beta.threads.messages.create(thread.id, { role: 'user', content: 'still here' });
  });
});

// ================================================================ model routing

describe('runs: a model name that routes nowhere', () => {
  const h = useHarness((fakeUrl) => ({
    model_list: [{ model_name: 'known', litellm_params: { model: 'openai/known', api_base: fakeUrl, api_key: 'sk-fake-upstream' } }],
  }));

  test("assistant create with model 'unknown' → 400 naming the model on param 'model' (both SDKs)", async () => {
    for (const create of [
      () => h.client.beta.assistants.create({ model: 'unknown' }),
      () => h.v4.beta.assistants.create({ model: 'unknown' }),
    ]) {
      const error = await apiError(create(), 400);
      assert.equal(error.param, 'model');
      assert.ok(String(error.error?.message).includes("'unknown'"), error.error?.message);
    }
  });

  test("run create and createAndRun with model override 'unknown' → 400 on 'model'; 'known' runs on its deployment", async () => {
    const assistant = await h.client.beta.assistants.create({ model: 'known' });
    const tag = newTag();
    const thread = await h.client.beta.threads.create({ messages: [{ role: 'user', content: `Route ${tag}` }] });
    const error = await apiError(h.client.beta.threads.runs.create(thread.id, { assistant_id: assistant.id, model: 'unknown' }), 400);
    assert.equal(error.param, 'model');
    assert.ok(String(error.error?.message).includes("'unknown'"), error.error?.message);
    const v4 = await apiError(h.v4.beta.threads.runs.create(thread.id, { assistant_id: assistant.id, model: 'unknown' }), 400);
    assert.equal(v4.param, 'model');
    const both = await apiError(h.client.beta.threads.createAndRun({ assistant_id: assistant.id, model: 'unknown', thread: { messages: [{ role: 'user', content: 'x' }] } }), 400);
    assert.equal(both.param, 'model');
    const runs = await h.client.beta.threads.runs.list(thread.id);
    assert.equal(runs.data.length, 0, 'the refused run was not created');

    h.script(tag, { text: 'Routed.' });
    const run = await withTimeout(h.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }), 'createAndPoll');
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(h.requests(tag)[0]!.body.model, 'known');
  });
});
