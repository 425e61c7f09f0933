/**
 * The AI SDK-backed providers at the level of our stream parts, against each provider's fake: text
 * deltas as sent, parallel tool calls numbered in order with their argument pieces, finish reasons,
 * usage; upstream failures as ProviderErrors (status, retryability, Retry-After); cancel and timeouts;
 * and the prompt mapping (system, images, tool results).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeModel, type FakeModel, type FakeTurn } from './helpers/fake-model.js';
import { parseConfig } from '../src/config.js';
import { ModelRegistry } from '../src/providers/registry.js';
import { toPrompt } from '../src/providers/ai-sdk.js';
import { ProviderError, type ModelRequest, type StreamPart } from '../src/providers/types.js';

const PROVIDERS = ['anthropic', 'gemini', 'mistral', 'bedrock'] as const;
type Provider = (typeof PROVIDERS)[number];

let fake: FakeModel;
let registry: ModelRegistry;

function params(provider: Provider, timeout?: number): Record<string, unknown> {
  const common = timeout ? { timeout } : {};
  switch (provider) {
    case 'anthropic':
      return { model: 'anthropic/claude-3-5-haiku-20241022', api_base: fake.anthropicURL, api_key: 'k', ...common };
    case 'gemini':
      return { model: 'gemini/gemini-2.0-flash', api_base: fake.geminiURL, api_key: 'k', ...common };
    case 'mistral':
      return { model: 'mistral/mistral-large-latest', api_base: fake.mistralURL, api_key: 'k', ...common };
    case 'bedrock':
      return { model: 'bedrock/anthropic.claude-3-5-haiku-20241022-v1:0', api_base: fake.bedrockURL, aws_access_key_id: 'AKID', aws_secret_access_key: 'secret', aws_region_name: 'us-east-1', ...common };
  }
}

before(async () => {
  fake = await startFakeModel();
  const config = parseConfig({
    model_list: [
      ...PROVIDERS.flatMap((provider) => [
        { model_name: provider, litellm_params: params(provider) },
        { model_name: `${provider}-quick`, litellm_params: params(provider, 0.3) },
      ]),
      // LiteLLM's wildcard habits: the part `*` matched replaces the `*` of the upstream model.
      { model_name: 'anthropic/*', litellm_params: { model: 'anthropic/*', api_base: fake.anthropicURL, api_key: 'k' } },
      { model_name: 'my-*', litellm_params: { model: 'mistral/mistral-*', api_base: fake.mistralURL, api_key: 'k' } },
      // No api_key: the provider's environment key, as in LiteLLM.
      { model_name: 'keyed-by-env', litellm_params: { model: 'gemini/gemini-2.0-flash', api_base: fake.geminiURL } },
      { model_name: 'no-key', litellm_params: { model: 'anthropic/claude-3-5-haiku-20241022', api_base: fake.anthropicURL } },
      { model_name: 'gemini-embed', litellm_params: { model: 'gemini/text-embedding-004', api_base: fake.geminiURL, api_key: 'k' } },
      { model_name: 'mistral-embed', litellm_params: { model: 'mistral/mistral-embed', api_base: fake.mistralURL, api_key: 'k' } },
    ],
  });
  registry = new ModelRegistry(config.modelList, { ...config.settings, modelMaxRetries: 0 }, { GEMINI_API_KEY: 'gemini-from-env' }, config.router);
});
after(() => fake?.close());

const REQUEST: ModelRequest = {
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather and time?' },
  ],
  tools: [
    { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
  ],
};

async function collect(name: string, turn: FakeTurn, signal = new AbortController().signal): Promise<StreamPart[]> {
  fake.enqueue(turn);
  const parts: StreamPart[] = [];
  for await (const part of registry.resolve(name)!.stream(REQUEST, { signal })) parts.push(part);
  return parts;
}

async function failure(name: string, turn: FakeTurn): Promise<ProviderError> {
  const error = await collect(name, turn).then(() => null, (caught: unknown) => caught);
  assert.ok(error instanceof ProviderError, `a ProviderError, got ${String(error)}`);
  return error;
}

/** How the fakes split arguments into pieces (Anthropic and Bedrock stream them so). */
function pieces(text: string): string[] {
  const size = Math.max(1, Math.ceil(text.length / 3));
  const result: string[] = [];
  for (let start = 0; start < text.length; start += size) result.push(text.slice(start, start + size));
  return result;
}

for (const provider of PROVIDERS) {
  describe(provider, () => {
    test('text: the deltas as sent, then one finish with the usage', async () => {
      const parts = await collect(provider, { text: 'Hello there, world', usage: { prompt_tokens: 7, completion_tokens: 3 } });
      assert.deepEqual(
        parts.filter((part) => part.type === 'text-delta').map((part) => (part as { text: string }).text),
        ['Hello', ' there,', ' world'],
      );
      assert.deepEqual(parts.at(-1), { type: 'finish', reason: 'stop', usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } });
      assert.equal(parts.filter((part) => part.type === 'finish').length, 1);
    });

    test('parallel tool calls: numbered in order, id and name first, the arguments exactly; finish tool_calls', async () => {
      const first = '{"city":"Paris","days":3}';
      const second = '{"tz":"Asia/Tokyo"}';
      const parts = await collect(provider, { toolCalls: [{ name: 'get_weather', arguments: first }, { name: 'get_time', arguments: second }] });
      const calls = parts.filter((part): part is Extract<StreamPart, { type: 'tool-call-delta' }> => part.type === 'tool-call-delta');
      const byIndex = [0, 1].map((index) => calls.filter((part) => part.index === index));
      for (const [index, name, args] of [
        [0, 'get_weather', first],
        [1, 'get_time', second],
      ] as const) {
        const own = byIndex[index]!;
        assert.equal(own[0]!.name, name);
        assert.ok(own[0]!.id, 'the first piece carries the id');
        assert.ok(own.slice(1).every((part) => part.id === undefined && part.name === undefined), 'id and name once');
        assert.equal(own.map((part) => part.argumentsDelta).join(''), args);
        // Anthropic and Bedrock stream the arguments; Mistral and Gemini send each call whole.
        if (provider === 'anthropic' || provider === 'bedrock') assert.deepEqual(own.map((part) => part.argumentsDelta).filter((piece) => piece !== ''), pieces(args));
      }
      assert.notEqual(byIndex[0]![0]!.id, byIndex[1]![0]!.id);
      // Call 0 is whole before call 1 begins.
      const lastOfFirst = parts.lastIndexOf(byIndex[0]!.at(-1)!);
      assert.ok(lastOfFirst < parts.indexOf(byIndex[1]![0]!));
      assert.equal((parts.at(-1) as { reason: string }).reason, 'tool_calls');
    });

    test('finish reasons: length and content_filter', async () => {
      assert.equal(((await collect(provider, { text: 'cut', finishReason: 'length' })).at(-1) as { reason: string }).reason, 'length');
      // Mistral's finish reasons have no content filter (stop, length, model_length, error, tool_calls).
      if (provider !== 'mistral') assert.equal(((await collect(provider, { text: 'no', finishReason: 'content_filter' })).at(-1) as { reason: string }).reason, 'content_filter');
    });

    test('errors: 429 with Retry-After is retryable; 400 is not and carries the message; 5xx is retryable', async () => {
      const limited = await failure(provider, { status: 429, retryAfter: '2', errorMessage: 'slow down' });
      assert.equal(limited.statusCode, 429);
      assert.ok(limited.isRetryable);
      assert.equal(limited.retryAfterMs, 2000);
      assert.equal(limited.runErrorCode, 'rate_limit_exceeded');
      const refused = await failure(provider, { status: 400, errorMessage: 'the prompt is malformed' });
      assert.equal(refused.isRetryable, false);
      assert.match(refused.message, /the prompt is malformed/);
      const broken = await failure(provider, { status: 500 });
      assert.ok(broken.isRetryable);
    });

    test('a broken stream and a mid-stream error event are retryable ProviderErrors', async () => {
      const cut = await failure(provider, { text: 'one two three four five six seven', breakAfterChunks: 3 });
      assert.ok(cut.isRetryable, cut.message);
      const reported = await failure(provider, { text: 'one two three four five', streamError: { afterEvents: 2 } });
      assert.ok(reported.isRetryable, reported.message);
    });

    test('cancel aborts the upstream request and rethrows the reason; timeouts are retryable', async () => {
      const controller = new AbortController();
      const reason = new Error('cancelled by the test');
      const pending = collect(provider, { text: 'slow words keep coming here', chunkDelayMs: 200 }, controller.signal);
      setTimeout(() => controller.abort(reason), 100);
      await assert.rejects(pending, (error: unknown) => error === reason);
      const silent = await failure(`${provider}-quick`, { text: 'late', firstByteDelayMs: 2_000 });
      assert.ok(silent.isRetryable);
      assert.match(silent.message, /no response headers within 300 ms/);
      const stalled = await failure(`${provider}-quick`, { text: 'stalls between words', chunkDelayMs: 2_000 });
      assert.ok(stalled.isRetryable);
      assert.match(stalled.message, /sent nothing for 300 ms/);
    });
  });
}

describe('deployments', () => {
  test('wildcards send what `*` matched in place of the upstream model\'s `*`', async () => {
    const seen = fake.requests.length;
    fake.enqueue({ text: 'one' }, { text: 'two' });
    for (const name of ['anthropic/claude-3-haiku-20240307', 'my-large-latest']) {
      for await (const part of registry.resolve(name)!.stream(REQUEST, { signal: new AbortController().signal })) void part;
    }
    const [anthropic, mistral] = fake.requests.slice(seen);
    assert.equal(anthropic!.body.model, 'claude-3-haiku-20240307');
    assert.equal(mistral!.body.model, 'mistral-large-latest');
  });

  test('an entry without api_key takes the environment key; with none either it is a warning, not a route', async () => {
    const seen = fake.requests.length;
    await collect('keyed-by-env', { text: 'hi' });
    assert.equal(fake.requests[seen]!.headers['x-goog-api-key'], 'gemini-from-env');
    assert.equal(registry.has('no-key'), false);
    assert.match(registry.warnings.join('\n'), /\(no-key\): no api_key \(litellm_params\.api_key, or ANTHROPIC_API_KEY in the environment\)/);
  });

  test('images a provider cannot take are a 400 before anything is sent, not a retryable failure', async () => {
    const seen = fake.requests.length;
    for (const url of ['http://a b/x.png', 'data:image/png,%ZZ', 'https://example.com/picture']) {
      const request: ModelRequest = { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] };
      const error = await (async () => {
        for await (const part of registry.resolve('bedrock')!.stream(request, { signal: new AbortController().signal })) void part;
      })().then(() => null, (caught: unknown) => caught);
      assert.ok(error instanceof ProviderError, `${url}: ${String(error)}`);
      assert.equal(error.isRetryable, false, `${url}: ${error.message}`);
      assert.equal(error.statusCode, 400);
    }
    assert.equal(fake.requests.length, seen);
  });
});

describe('embeddings', () => {
  test("Gemini's and Mistral's: one vector per text, in order, as the fake computes them", async () => {
    const { embed } = await import('./helpers/fake-model.js');
    for (const [name, size] of [
      ['gemini-embed', 768],
      ['mistral-embed', 1024],
    ] as const) {
      const model = registry.resolveEmbeddings(name, null)!;
      const vectors = await model.embed(['first text', 'second text']);
      assert.equal(vectors.length, 2, name);
      assert.equal(vectors[0]!.length, size, name);
      assert.ok(Math.abs(vectors[1]![3]! - embed('second text', size)[3]!) < 1e-6, `${name}: in order`);
      assert.equal((await model.embed(['alone'])).length, 1, `${name}: a single text`);
    }
    const refused = await Promise.resolve()
      .then(() => registry.resolveEmbeddings('bedrock', null))
      .then(() => null, (caught: unknown) => caught);
    assert.ok(refused instanceof ProviderError && refused.statusCode === 400, String(refused));
  });
});

describe('a thread another model began', () => {
  test("Mistral gets 9-character ids for other models' tool calls, the same for a call and its result", async () => {
    const request: ModelRequest = {
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_Xa8Qv1b2c3d4e5f6g7h8i9j0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_Xa8Qv1b2c3d4e5f6g7h8i9j0', content: 'sunny' },
      ],
    };
    const seen = fake.requests.length;
    fake.enqueue({ text: 'Sunny.' });
    let text = '';
    for await (const part of registry.resolve('mistral')!.stream(request, { signal: new AbortController().signal })) if (part.type === 'text-delta') text += part.text;
    assert.equal(text, 'Sunny.');
    const sent = fake.requests[seen]!.body.messages;
    const id = sent[1].tool_calls[0].id;
    assert.match(id, /^[a-zA-Z0-9]{9}$/);
    assert.equal(sent[2].tool_call_id, id);
  });
});

describe('the prompt mapping', () => {
  test('system, text and image parts, tool calls with their inputs, consecutive tool results in one message', () => {
    const prompt = toPrompt([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'a', arguments: '{"x":1}' } }, { id: 'call_2', type: 'function', function: { name: 'b', arguments: 'not json' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'one' },
      { role: 'tool', tool_call_id: 'call_2', content: 'two' },
    ]);
    assert.deepEqual(prompt, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'file', mediaType: 'image/png', data: 'iVBORw0KGgo=' }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool-call', toolCallId: 'call_1', toolName: 'a', input: { x: 1 } },
          { type: 'tool-call', toolCallId: 'call_2', toolName: 'b', input: { arguments: 'not json' } },
        ],
      },
      {
        role: 'tool',
        content: [
          { type: 'tool-result', toolCallId: 'call_1', toolName: 'a', output: { type: 'text', value: 'one' } },
          { type: 'tool-result', toolCallId: 'call_2', toolName: 'b', output: { type: 'text', value: 'two' } },
        ],
      },
    ]);
  });
});
