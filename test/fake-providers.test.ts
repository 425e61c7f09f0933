/**
 * The fake model's provider wires, proved with each provider's official SDK (the clients real users
 * run against the real services): Anthropic Messages (`@anthropic-ai/sdk`), Google Gemini
 * (`@google/genai`), Mistral (`@mistralai/mistralai`) and AWS Bedrock Converse
 * (`@aws-sdk/client-bedrock-runtime`). For each: a streamed text answer, two parallel tool calls
 * whose argument JSON comes back exactly, usage, the stop reason, a 429 seen as that SDK's
 * rate-limit error, and the request checks and mid-stream errors the provider has. SDK retries are
 * off, so failures are quick. The Bedrock client is given the SDK's HTTP/1.1 handler: the fake does
 * not speak HTTP/2, the client's default.
 *
 * `@google/genai` 3.x declares `engines: node >=22`, but what these tests use (fetch, web streams)
 * runs on Node 20, so its tests run there too.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { ApiError, GoogleGenAI, Type, type Tool as GeminiTool } from '@google/genai';
import { Mistral } from '@mistralai/mistralai';
import { SDKError } from '@mistralai/mistralai/models/errors';
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  ThrottlingException,
  ValidationException,
  type ConverseStreamOutput,
  type ToolConfiguration,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import OpenAI from 'openai';
import { startFakeModel, type FakeModel, type FakeTurn } from './helpers/fake-model.js';

type Json = any;

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

const TEXT = 'Hello from the fake model, in several words.';
const WORDS = ['Hello', ' from', ' the', ' fake', ' model,', ' in', ' several', ' words.'];
const WEATHER_ARGS = '{"city":"Paris","unit":"celsius"}';
const TIME_ARGS = '{"tz":"Europe/Paris"}';
const PARALLEL: FakeTurn = {
  toolCalls: [
    { name: 'get_weather', arguments: WEATHER_ARGS },
    { name: 'get_time', arguments: TIME_ARGS },
  ],
  usage: { prompt_tokens: 31, completion_tokens: 17 },
};

/** The error `promise` fails with (fails the test if it succeeds). */
async function failure(promise: Promise<unknown>): Promise<Json> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected the call to fail, it succeeded');
}

// ---------------------------------------------------------------- Anthropic

describe('Anthropic Messages through @anthropic-ai/sdk', () => {
  let client: Anthropic;
  before(() => {
    // The SDK appends /v1/messages itself.
    client = new Anthropic({ apiKey: 'sk-ant-fake', baseURL: fake.anthropicURL.replace(/\/v1$/, ''), maxRetries: 0 });
  });
  const tools: Anthropic.Tool[] = [
    { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } } } },
    { name: 'get_time', input_schema: { type: 'object', properties: { tz: { type: 'string' } } } },
  ];

  test('a streamed text answer: events in Anthropic order, text by word, usage and end_turn', async () => {
    fake.enqueue({ text: TEXT, usage: { prompt_tokens: 12, completion_tokens: 9 } });
    const stream = client.messages.stream({ model: 'claude-test', max_tokens: 256, system: 'Be brief.', messages: [{ role: 'user', content: 'Say hello.' }] });
    const types: string[] = [];
    const deltas: string[] = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') deltas.push(event.delta.text);
    }
    const message = await stream.finalMessage();
    assert.deepEqual(deltas, WORDS);
    assert.deepEqual(types, ['message_start', 'content_block_start', ...WORDS.map(() => 'content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop']);
    assert.match(message.id, /^msg_/);
    assert.equal(message.model, 'claude-test');
    assert.deepEqual(message.content.map((block) => (block.type === 'text' ? block.text : block.type)), [TEXT]);
    assert.equal(message.stop_reason, 'end_turn');
    assert.equal(message.usage.input_tokens, 12);
    assert.equal(message.usage.output_tokens, 9);

    const [request] = fake.requests;
    assert.equal(request!.protocol, 'anthropic');
    assert.equal(request!.path, '/anthropic/v1/messages');
    // SDK 1.x sends the key as a bearer token (API version 2026-10-21); the AI SDK provider sends x-api-key.
    assert.equal(request!.headers.authorization, 'Bearer sk-ant-fake');
    assert.ok(request!.headers['anthropic-version'], 'the SDK sends anthropic-version');
    assert.equal(request!.body.stream, true);
    assert.equal(request!.body.max_tokens, 256);
    assert.equal(request!.body.system, 'Be brief.');
  });

  test('parallel tool calls: two tool_use blocks, their partial JSON reassembled exactly, stop_reason tool_use', async () => {
    fake.enqueue(PARALLEL);
    const stream = client.messages.stream({ model: 'claude-test', max_tokens: 256, tools, messages: [{ role: 'user', content: 'Weather and time?' }] });
    const partial = new Map<number, string>();
    for await (const event of stream) {
      if (event.type === 'content_block_delta' && event.delta.type === 'input_json_delta') {
        partial.set(event.index, (partial.get(event.index) ?? '') + event.delta.partial_json);
      }
    }
    const message = await stream.finalMessage();
    assert.deepEqual([...partial.values()], [WEATHER_ARGS, TIME_ARGS]);
    assert.deepEqual([...partial.keys()], [0, 1]);
    const uses = message.content.filter((block) => block.type === 'tool_use');
    assert.deepEqual(uses.map((block) => [block.name, block.input]), [['get_weather', JSON.parse(WEATHER_ARGS)], ['get_time', JSON.parse(TIME_ARGS)]]);
    for (const block of uses) assert.match(block.id, /^toolu_[A-Za-z0-9]{24}$/);
    assert.notEqual(uses[0]!.id, uses[1]!.id);
    assert.equal(message.stop_reason, 'tool_use');
    assert.deepEqual([message.usage.input_tokens, message.usage.output_tokens], [31, 17]);
  });

  test('a whole (non-streamed) Message, text then tool_use, max_tokens mapped from length', async () => {
    fake.enqueue({ text: 'Checking.', toolCalls: [{ name: 'get_time', arguments: TIME_ARGS, id: 'toolu_fixed' }], finishReason: 'length' });
    const message = await client.messages.create({ model: 'claude-test', max_tokens: 64, tools, messages: [{ role: 'user', content: 'Time?' }] });
    assert.equal(message.type, 'message');
    assert.deepEqual(message.content.map((block) => block.type), ['text', 'tool_use']);
    assert.deepEqual(message.content[1], { type: 'tool_use', id: 'toolu_fixed', name: 'get_time', input: { tz: 'Europe/Paris' } });
    assert.equal(message.stop_reason, 'max_tokens');
  });

  test('429: RateLimitError with rate_limit_error and retry-after', async () => {
    fake.enqueue({ status: 429, retryAfter: '7' });
    const error = await failure(client.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(error instanceof Anthropic.RateLimitError, true, `a RateLimitError, got ${error?.constructor?.name}`);
    assert.equal(error.status, 429);
    assert.equal(error.error.type, 'error');
    assert.equal(error.error.error.type, 'rate_limit_error');
    assert.equal(error.headers.get('retry-after'), '7');
    assert.match(error.requestID, /^req_/);
  });

  test('529 overloaded and 500 api_error statuses', async () => {
    fake.enqueue({ status: 529 }, { status: 500, errorMessage: 'boom' });
    const overloaded = await failure(client.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(overloaded instanceof Anthropic.OverloadedError, true);
    assert.equal(overloaded.error.error.type, 'overloaded_error');
    const internal = await failure(client.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(internal instanceof Anthropic.InternalServerError, true);
    assert.deepEqual(internal.error.error, { type: 'api_error', message: 'boom' });
  });

  test('a mid-stream `event: error` (overloaded_error) after the first events', async () => {
    fake.enqueue({ text: TEXT, streamError: { afterEvents: 4, type: 'overloaded_error', message: 'Overloaded' } });
    const stream = client.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const deltas: string[] = [];
    const error = await failure(
      (async () => {
        for await (const event of stream) if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') deltas.push(event.delta.text);
      })(),
    );
    assert.equal(error instanceof Anthropic.APIError, true, `an APIError, got ${error?.constructor?.name}: ${error}`);
    assert.equal(error.error.error.type, 'overloaded_error');
    assert.equal(error.error.error.message, 'Overloaded');
    // message_start, content_block_start, ping, one delta: then the error.
    assert.deepEqual(deltas, WORDS.slice(0, 1));
  });

  test('breakAfterChunks: the socket is destroyed after that many SSE events', async () => {
    fake.enqueue({ text: TEXT, breakAfterChunks: 4 });
    const stream = client.messages.stream({ model: 'claude-test', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const error = await failure(stream.finalMessage());
    assert.equal(error instanceof Anthropic.AnthropicError, true, `an AnthropicError, got ${error}`);
    assert.equal(fake.requests[0]!.chunksSent, 4);
  });

  test('request checks: x-api-key, max_tokens, tool_result pairing (no turn is taken)', async () => {
    fake.enqueue({ text: 'kept for the next request' });
    const bare = new Anthropic({ apiKey: null, authToken: null, baseURL: client.baseURL, maxRetries: 0, defaultHeaders: { authorization: null } });
    const unauthenticated = await failure(bare.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.error.error.type, 'authentication_error');

    const noMaxTokens = await failure(client.messages.create({ model: 'claude-test', messages: [{ role: 'user', content: 'hi' }] } as Json));
    assert.equal(noMaxTokens instanceof Anthropic.BadRequestError, true);
    assert.deepEqual(noMaxTokens.error.error, { type: 'invalid_request_error', message: 'max_tokens: Field required' });

    const stray = await failure(
      client.messages.create({
        model: 'claude-test',
        max_tokens: 16,
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_a', name: 'get_time', input: {} }] },
          {
            role: 'user',
            content: [
              { type: 'tool_result', tool_use_id: 'toolu_a', content: 'noon' },
              { type: 'tool_result', tool_use_id: 'toolu_b', content: 'noon' },
            ],
          },
        ],
      }),
    );
    assert.equal(stray.status, 400);
    assert.match(stray.error.error.message, /^messages\.2\.content\.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_b\./);

    const answered = await client.messages.create({ model: 'claude-test', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    assert.deepEqual(answered.content, [{ type: 'text', text: 'kept for the next request' }]);
  });
});

// ---------------------------------------------------------------- Gemini

describe('Gemini through @google/genai', () => {
  let ai: GoogleGenAI;
  before(() => {
    ai = new GoogleGenAI({ apiKey: 'gemini-fake-key', httpOptions: { baseUrl: fake.geminiURL.replace(/\/v1beta$/, ''), apiVersion: 'v1beta' } });
  });
  const tools: GeminiTool[] = [
    {
      functionDeclarations: [
        { name: 'get_weather', parameters: { type: Type.OBJECT, properties: { city: { type: Type.STRING }, unit: { type: Type.STRING } } } },
        { name: 'get_time', parameters: { type: Type.OBJECT, properties: { tz: { type: Type.STRING } } } },
      ],
    },
  ];

  test('a streamed text answer over SSE: chunk by word, usageMetadata, finishReason STOP, modelVersion', async () => {
    fake.enqueue({ text: TEXT, usage: { prompt_tokens: 12, completion_tokens: 9 } });
    const stream = await ai.models.generateContentStream({
      model: 'gemini-test',
      contents: 'Say hello.',
      config: { systemInstruction: 'Be brief.', maxOutputTokens: 128 },
    });
    const texts: string[] = [];
    let last: Json;
    for await (const chunk of stream) {
      texts.push(chunk.text ?? '');
      last = chunk;
    }
    assert.deepEqual(texts, WORDS);
    assert.equal(last.candidates[0].finishReason, 'STOP');
    assert.equal(last.modelVersion, 'gemini-test');
    assert.ok(last.responseId);
    assert.deepEqual(
      { prompt: last.usageMetadata.promptTokenCount, candidates: last.usageMetadata.candidatesTokenCount, total: last.usageMetadata.totalTokenCount },
      { prompt: 12, candidates: 9, total: 21 },
    );

    const [request] = fake.requests;
    assert.equal(request!.protocol, 'gemini');
    assert.equal(request!.path, '/gemini/v1beta/models/gemini-test:streamGenerateContent');
    assert.equal(request!.query.alt, 'sse');
    assert.equal(request!.headers['x-goog-api-key'], 'gemini-fake-key');
    assert.deepEqual(request!.body.contents, [{ role: 'user', parts: [{ text: 'Say hello.' }] }]);
    assert.deepEqual(request!.body.systemInstruction, { role: 'user', parts: [{ text: 'Be brief.' }] });
    assert.equal(request!.body.generationConfig.maxOutputTokens, 128);
  });

  test('parallel function calls: two whole functionCall parts with their args, finishReason STOP', async () => {
    fake.enqueue(PARALLEL);
    const stream = await ai.models.generateContentStream({ model: 'gemini-test', contents: 'Weather and time?', config: { tools } });
    const calls: Json[] = [];
    let last: Json;
    for await (const chunk of stream) {
      calls.push(...(chunk.functionCalls ?? []));
      last = chunk;
    }
    assert.deepEqual(calls.map((call) => [call.name, JSON.stringify(call.args)]), [['get_weather', WEATHER_ARGS], ['get_time', TIME_ARGS]]);
    assert.equal(last.candidates[0].finishReason, 'STOP');
    assert.equal(last.usageMetadata.promptTokenCount, 31);
    assert.equal(last.usageMetadata.candidatesTokenCount, 17);
    assert.ok(fake.requests[0]!.body.tools[0].functionDeclarations.length === 2);
  });

  test('generateContent (whole): text, MAX_TOKENS from length; the key may come as ?key=', async () => {
    fake.enqueue({ text: 'Short.', finishReason: 'length' });
    const response = await ai.models.generateContent({ model: 'gemini-test', contents: 'hi' });
    assert.equal(response.text, 'Short.');
    assert.equal(response.candidates?.[0]?.finishReason, 'MAX_TOKENS');

    fake.enqueue({ text: 'By query key.' });
    const viaQuery = await fetch(`${fake.geminiURL}/models/gemini-test:generateContent?key=k`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    assert.equal(viaQuery.status, 200);
    assert.equal((await viaQuery.json()).candidates[0].content.parts[0].text, 'By query key.');
  });

  test('streamGenerateContent without alt=sse: one JSON array of the same chunks', async () => {
    fake.enqueue({ text: 'Two words' });
    const response = await fetch(`${fake.geminiURL}/models/gemini-test:streamGenerateContent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': 'k' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const chunks = await response.json();
    assert.deepEqual(chunks.map((chunk: Json) => chunk.candidates[0].content.parts[0].text), ['Two', ' words']);
    assert.equal(chunks.at(-1).candidates[0].finishReason, 'STOP');
  });

  test('429: ApiError status 429 with RESOURCE_EXHAUSTED and a RetryInfo delay', async () => {
    fake.enqueue({ status: 429, retryAfter: '7' });
    const error = await failure(ai.models.generateContentStream({ model: 'gemini-test', contents: 'hi' }));
    assert.equal(error instanceof ApiError, true, `an ApiError, got ${error?.constructor?.name}`);
    assert.equal(error.status, 429);
    const body = JSON.parse(error.message);
    assert.equal(body.error.code, 429);
    assert.equal(body.error.status, 'RESOURCE_EXHAUSTED');
    assert.deepEqual(body.error.details, [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '7s' }]);
  });

  test('503 UNAVAILABLE mid-stream: the SDK throws an ApiError after the first chunks', async () => {
    fake.enqueue({ text: TEXT, streamError: { afterEvents: 2 } });
    const stream = await ai.models.generateContentStream({ model: 'gemini-test', contents: 'hi' });
    const texts: string[] = [];
    const error = await failure(
      (async () => {
        for await (const chunk of stream) texts.push(chunk.text ?? '');
      })(),
    );
    assert.equal(error instanceof ApiError, true, `an ApiError, got ${error}`);
    assert.equal(error.status, 503);
    assert.match(error.message, /UNAVAILABLE/);
    assert.deepEqual(texts, WORDS.slice(0, 2));
  });

  test('request checks: a function response turn must answer the call turn one for one', async () => {
    const error = await failure(
      ai.models.generateContent({
        model: 'gemini-test',
        contents: [
          { role: 'user', parts: [{ text: 'Weather and time?' }] },
          { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'Paris' } } }, { functionCall: { name: 'get_time', args: {} } }] },
          { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp: 20 } } }] },
        ],
      }),
    );
    assert.equal(error.status, 400);
    assert.match(error.message, /INVALID_ARGUMENT/);
    assert.match(error.message, /number of function response parts is equal to the number of function call parts/);
  });
});

// ---------------------------------------------------------------- Mistral

describe('Mistral chat completions through @mistralai/mistralai', () => {
  let client: Mistral;
  before(() => {
    // The SDK appends /v1/chat/completions itself.
    client = new Mistral({ apiKey: 'mistral-fake-key', serverURL: fake.mistralURL.replace(/\/v1$/, ''), retryConfig: { strategy: 'none' } });
  });
  const tools = [
    { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } } } } },
    { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
  ];

  test('a streamed text answer: content by word, usage in the last chunk only, finish_reason stop', async () => {
    fake.enqueue({ text: TEXT, usage: { prompt_tokens: 12, completion_tokens: 9 } });
    const stream = await client.chat.stream({ model: 'mistral-test', messages: [{ role: 'user', content: 'Say hello.' }] });
    const texts: string[] = [];
    const usages: Json[] = [];
    const finishes: (string | null)[] = [];
    for await (const event of stream) {
      const choice = event.data.choices[0]!;
      if (typeof choice.delta.content === 'string' && choice.delta.content !== '') texts.push(choice.delta.content);
      usages.push(event.data.usage);
      finishes.push(choice.finishReason);
    }
    assert.deepEqual(texts, WORDS);
    assert.deepEqual(usages.slice(0, -1).filter(Boolean), [], 'no usage before the last chunk');
    assert.deepEqual(usages.at(-1), { promptTokens: 12, completionTokens: 9, totalTokens: 21 });
    assert.equal(finishes.at(-1), 'stop');
    assert.deepEqual(finishes.slice(0, -1).filter(Boolean), []);

    const [request] = fake.requests;
    assert.equal(request!.protocol, 'mistral');
    assert.equal(request!.path, '/mistral/v1/chat/completions');
    assert.equal(request!.headers.authorization, 'Bearer mistral-fake-key');
    assert.equal(request!.body.stream, true);
    assert.equal(request!.body.stream_options, undefined);
  });

  test('parallel tool calls: each whole in one delta, 9-character ids, finish_reason tool_calls', async () => {
    fake.enqueue(PARALLEL);
    const stream = await client.chat.stream({ model: 'mistral-test', tools, messages: [{ role: 'user', content: 'Weather and time?' }] });
    const calls: Json[] = [];
    let finish: string | null = null;
    let usage: Json;
    for await (const event of stream) {
      const choice = event.data.choices[0]!;
      for (const call of choice.delta.toolCalls ?? []) calls.push(call);
      finish = choice.finishReason ?? finish;
      usage = event.data.usage ?? usage;
    }
    assert.equal(calls.length, 2, 'one delta per call, none split');
    assert.deepEqual(calls.map((call) => [call.function.name, call.function.arguments]), [['get_weather', WEATHER_ARGS], ['get_time', TIME_ARGS]]);
    for (const call of calls) assert.match(call.id, /^[A-Za-z0-9]{9}$/);
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(usage, { promptTokens: 31, completionTokens: 17, totalTokens: 48 });
  });

  test('429: SDKError with status 429 and the rate_limited body', async () => {
    fake.enqueue({ status: 429, retryAfter: '3' });
    const error = await failure(client.chat.stream({ model: 'mistral-test', messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(error instanceof SDKError, true, `an SDKError, got ${error?.constructor?.name}`);
    assert.equal(error.statusCode, 429);
    assert.deepEqual(JSON.parse(error.body), { object: 'error', message: 'Rate limit exceeded', type: 'rate_limited', param: null, code: '1300', raw_status_code: 429 });
    assert.equal(error.headers.get('retry-after'), '3');
  });

  test('request checks: tool call ids must be 9 alphanumerics; calls answered one for one', async () => {
    const badId = await failure(
      client.chat.complete({
        model: 'mistral-test',
        messages: [
          { role: 'user', content: 'Time?' },
          { role: 'assistant', content: '', toolCalls: [{ id: 'call_0fypS1hVX', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
          { role: 'tool', toolCallId: 'call_0fypS1hVX', name: 'get_time', content: 'noon' },
        ],
      }),
    );
    assert.equal(badId.statusCode, 400);
    assert.deepEqual(JSON.parse(badId.body), {
      object: 'error',
      message: 'Tool call id was call_0fypS1hVX but must be a-z, A-Z, 0-9, with a length of 9.',
      type: 'invalid_function_call',
      param: null,
      code: '3280',
      raw_status_code: 400,
    });

    const unanswered = await failure(
      client.chat.complete({
        model: 'mistral-test',
        messages: [
          { role: 'user', content: 'Weather and time?' },
          {
            role: 'assistant',
            content: '',
            toolCalls: [
              { id: 'abcDEF123', type: 'function', function: { name: 'get_weather', arguments: '{}' } },
              { id: 'ghiJKL456', type: 'function', function: { name: 'get_time', arguments: '{}' } },
            ],
          },
          { role: 'tool', toolCallId: 'abcDEF123', name: 'get_weather', content: 'sunny' },
          { role: 'user', content: 'And?' },
        ],
      }),
    );
    assert.equal(unanswered.statusCode, 400);
    assert.match(JSON.parse(unanswered.body).message, /Not the same number of function calls and responses/);

    fake.enqueue({ text: 'It is noon.' });
    const ok = await client.chat.complete({
      model: 'mistral-test',
      messages: [
        { role: 'user', content: 'Time?' },
        { role: 'assistant', content: '', toolCalls: [{ id: 'abcDEF123', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
        { role: 'tool', toolCallId: 'abcDEF123', name: 'get_time', content: 'noon' },
      ],
    });
    assert.equal(ok.choices?.[0]?.message?.content, 'It is noon.');
    assert.equal(ok.choices?.[0]?.finishReason, 'stop');
  });
});

// ---------------------------------------------------------------- Bedrock

describe('Bedrock Converse through @aws-sdk/client-bedrock-runtime', () => {
  let client: BedrockRuntimeClient;
  before(() => {
    client = new BedrockRuntimeClient({
      region: 'us-east-1',
      endpoint: fake.bedrockURL,
      credentials: { accessKeyId: 'AKIAFAKEFAKEFAKEFAKE', secretAccessKey: 'fake-secret' },
      maxAttempts: 1,
      // The runtime client defaults to HTTP/2 (NodeHttp2Handler; Bedrock serves h2 over TLS). The fake
      // speaks HTTP/1.1 only, as does @ai-sdk/amazon-bedrock (fetch): the SDK's HTTP/1.1 handler.
      requestHandler: new NodeHttpHandler(),
    });
  });
  after(() => client?.destroy());
  const MODEL_ID = 'anthropic.claude-test-v1:0';
  const toolConfig: ToolConfiguration = {
    tools: [
      { toolSpec: { name: 'get_weather', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } } } } } },
      { toolSpec: { name: 'get_time', inputSchema: { json: { type: 'object', properties: { tz: { type: 'string' } } } } } },
    ],
  };

  async function events(stream: AsyncIterable<ConverseStreamOutput> | undefined): Promise<ConverseStreamOutput[]> {
    const seen: ConverseStreamOutput[] = [];
    for await (const event of stream ?? []) seen.push(event);
    return seen;
  }

  test('a streamed text answer: event-stream frames, deltas by word, end_turn and usage metadata', async () => {
    fake.enqueue({ text: TEXT, usage: { prompt_tokens: 12, completion_tokens: 9 } });
    const response = await client.send(
      new ConverseStreamCommand({
        modelId: MODEL_ID,
        system: [{ text: 'Be brief.' }],
        messages: [{ role: 'user', content: [{ text: 'Say hello.' }] }],
        inferenceConfig: { maxTokens: 128 },
      }),
    );
    const seen = await events(response.stream);
    const kinds = seen.map((event) => Object.keys(event).find((key) => (event as Json)[key] !== undefined));
    assert.deepEqual(kinds, ['messageStart', ...WORDS.map(() => 'contentBlockDelta'), 'contentBlockStop', 'messageStop', 'metadata']);
    assert.equal(seen[0]!.messageStart?.role, 'assistant');
    assert.deepEqual(seen.flatMap((event) => (event.contentBlockDelta?.delta?.text !== undefined ? [event.contentBlockDelta.delta.text] : [])), WORDS);
    assert.equal(seen.at(-2)!.messageStop?.stopReason, 'end_turn');
    assert.deepEqual(seen.at(-1)!.metadata?.usage, { inputTokens: 12, outputTokens: 9, totalTokens: 21 });
    assert.ok((seen.at(-1)!.metadata?.metrics?.latencyMs ?? 0) >= 1);

    const [request] = fake.requests;
    assert.equal(request!.protocol, 'bedrock');
    assert.equal(decodeURIComponent(request!.path), `/bedrock/model/${MODEL_ID}/converse-stream`);
    assert.match(String(request!.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKEFAKE\//);
    assert.deepEqual(request!.body.system, [{ text: 'Be brief.' }]);
    assert.equal(request!.body.inferenceConfig.maxTokens, 128);
  });

  test('parallel tool calls: two toolUse blocks, their input pieces reassembled exactly, tool_use', async () => {
    fake.enqueue(PARALLEL);
    const response = await client.send(new ConverseStreamCommand({ modelId: MODEL_ID, toolConfig, messages: [{ role: 'user', content: [{ text: 'Weather and time?' }] }] }));
    const seen = await events(response.stream);
    const starts = seen.flatMap((event) => (event.contentBlockStart ? [event.contentBlockStart] : []));
    assert.deepEqual(starts.map((start) => [start.contentBlockIndex, start.start?.toolUse?.name]), [[0, 'get_weather'], [1, 'get_time']]);
    for (const start of starts) assert.match(start.start!.toolUse!.toolUseId!, /^tooluse_[A-Za-z0-9_-]{22}$/);
    const inputs = new Map<number, string>();
    for (const event of seen) {
      const delta = event.contentBlockDelta;
      if (delta?.delta?.toolUse) inputs.set(delta.contentBlockIndex!, (inputs.get(delta.contentBlockIndex!) ?? '') + delta.delta.toolUse.input);
    }
    assert.deepEqual([...inputs.entries()], [[0, WEATHER_ARGS], [1, TIME_ARGS]]);
    assert.equal(seen.find((event) => event.messageStop)?.messageStop?.stopReason, 'tool_use');
    assert.deepEqual(seen.at(-1)!.metadata?.usage, { inputTokens: 31, outputTokens: 17, totalTokens: 48 });
  });

  test('Converse (whole): text and toolUse with parsed input', async () => {
    fake.enqueue({ text: 'Checking.', toolCalls: [{ name: 'get_time', arguments: TIME_ARGS }] });
    const response = await client.send(new ConverseCommand({ modelId: MODEL_ID, toolConfig, messages: [{ role: 'user', content: [{ text: 'Time?' }] }] }));
    const content = response.output?.message?.content ?? [];
    assert.equal(content[0]?.text, 'Checking.');
    assert.equal(content[1]?.toolUse?.name, 'get_time');
    assert.deepEqual(content[1]?.toolUse?.input, { tz: 'Europe/Paris' });
    assert.equal(response.stopReason, 'tool_use');
    assert.ok(response.usage?.totalTokens);
  });

  test('429: ThrottlingException from x-amzn-errortype, status 429', async () => {
    fake.enqueue({ status: 429 });
    const error = await failure(client.send(new ConverseStreamCommand({ modelId: MODEL_ID, messages: [{ role: 'user', content: [{ text: 'hi' }] }] })));
    assert.equal(error instanceof ThrottlingException, true, `a ThrottlingException, got ${error?.constructor?.name}: ${error}`);
    assert.equal(error.name, 'ThrottlingException');
    assert.equal(error.$metadata.httpStatusCode, 429);
    assert.equal(error.message, 'Too many requests, please wait before trying again.');
  });

  test('a mid-stream exception frame (throttlingException) after the first events', async () => {
    fake.enqueue({ text: TEXT, streamError: { afterEvents: 3, type: 'throttlingException', message: 'Too many tokens, please wait before trying again.' } });
    const response = await client.send(new ConverseStreamCommand({ modelId: MODEL_ID, messages: [{ role: 'user', content: [{ text: 'hi' }] }] }));
    const texts: string[] = [];
    const error = await failure(
      (async () => {
        for await (const event of response.stream ?? []) if (event.contentBlockDelta?.delta?.text) texts.push(event.contentBlockDelta.delta.text);
      })(),
    );
    assert.equal(error instanceof ThrottlingException, true, `a ThrottlingException, got ${error?.constructor?.name}: ${error}`);
    assert.equal(error.message, 'Too many tokens, please wait before trying again.');
    assert.deepEqual(texts, WORDS.slice(0, 2));
  });

  test('breakAfterChunks counts event-stream frames', async () => {
    fake.enqueue({ text: TEXT, breakAfterChunks: 3 });
    const response = await client.send(new ConverseStreamCommand({ modelId: MODEL_ID, messages: [{ role: 'user', content: [{ text: 'hi' }] }] }));
    const texts: string[] = [];
    await failure(
      (async () => {
        for await (const event of response.stream ?? []) if (event.contentBlockDelta?.delta?.text) texts.push(event.contentBlockDelta.delta.text);
      })(),
    );
    assert.deepEqual(texts, WORDS.slice(0, 2));
    assert.equal(fake.requests[0]!.chunksSent, 3);
  });

  test('request checks: toolUse must be answered by toolResult; unsigned requests are refused', async () => {
    const unanswered = await failure(
      client.send(
        new ConverseCommand({
          modelId: MODEL_ID,
          messages: [
            { role: 'user', content: [{ text: 'Time?' }] },
            { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_a', name: 'get_time', input: {} } }] },
            { role: 'user', content: [{ text: 'Well?' }] },
          ],
        }),
      ),
    );
    assert.equal(unanswered instanceof ValidationException, true, `a ValidationException, got ${unanswered}`);
    assert.equal(unanswered.$metadata.httpStatusCode, 400);
    assert.match(unanswered.message, /Expected toolResult blocks at messages\.2\.content for the following Ids: tooluse_a/);

    const unsigned = await fetch(`${fake.bedrockURL}/model/${encodeURIComponent(MODEL_ID)}/converse`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
    });
    assert.equal(unsigned.status, 403);
    assert.match(unsigned.headers.get('x-amzn-errortype') ?? '', /^MissingAuthenticationTokenException/);
  });
});

// ---------------------------------------------------------------- OpenAI (the original wire)

describe('OpenAI chat completions: streamError', () => {
  test('a mid-stream error event reaches the openai SDK as an APIError', async () => {
    const client = new OpenAI({ apiKey: 'sk-fake', baseURL: fake.url, maxRetries: 0 });
    fake.enqueue({ text: TEXT, streamError: { afterEvents: 3, message: 'The server had an error while processing your request.' } });
    const stream = await client.chat.completions.create({ model: 'gpt-test', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const texts: string[] = [];
    const error = await failure(
      (async () => {
        for await (const chunk of stream) if (chunk.choices[0]?.delta.content) texts.push(chunk.choices[0].delta.content);
      })(),
    );
    assert.equal(error instanceof OpenAI.APIError, true, `an APIError, got ${error}`);
    assert.match(error.message, /The server had an error/);
    assert.deepEqual(texts, WORDS.slice(0, 2));
  });
});
