/**
 * Every provider, end to end: the official `openai` SDK against a real listening server whose
 * model_list routes one model_name to each provider's fake (a server speaking that provider's wire
 * protocol: Anthropic Messages, Gemini, Mistral, Bedrock Converse, Azure OpenAI, OpenAI). Through
 * each: parallel function calls and a second tool round, a streamed answer with usage, a 429 retried
 * after its Retry-After, a stream broken mid-way (retried, one answer kept), a mid-stream error event,
 * file_search and code_interpreter; then drop_params, provider-prefixed names routed by environment
 * key, and fallbacks across providers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { startFakeModel, type FakeModel, type RecordedRequest } from './helpers/fake-model.js';
import { withTimeout } from './helpers/harness.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { BubblewrapDriver, SANDBOX_DEFAULTS } from '../src/sandbox/sandbox.js';
import { parseConfig } from '../src/config.js';
import { ModelRegistry } from '../src/providers/registry.js';

type Json = any;
type Provider = 'openai' | 'azure' | 'anthropic' | 'gemini' | 'mistral' | 'bedrock';
const PROVIDERS: Provider[] = ['openai', 'azure', 'anthropic', 'gemini', 'mistral', 'bedrock'];

const sandboxProblem = await new BubblewrapDriver(SANDBOX_DEFAULTS).check();
const POLL = { pollIntervalMs: 10 };
const PNG_1X1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

let fake: FakeModel;
let server: TestServer;

function deployment(provider: Provider, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const root = fake.url.replace(/\/v1$/, '');
  switch (provider) {
    case 'openai':
      return { model: 'openai/gpt-4o', api_base: fake.url, api_key: 'sk-openai', ...extra };
    case 'azure':
      return { model: 'azure/my-gpt-4o', api_base: root, api_key: 'azure-key', api_version: '2024-10-21', ...extra };
    case 'anthropic':
      return { model: 'anthropic/claude-3-5-haiku-20241022', api_base: fake.anthropicURL, api_key: 'sk-ant-test', ...extra };
    case 'gemini':
      return { model: 'gemini/gemini-2.0-flash', api_base: fake.geminiURL, api_key: 'gemini-key', ...extra };
    case 'mistral':
      return { model: 'mistral/mistral-large-latest', api_base: fake.mistralURL, api_key: 'mistral-key', ...extra };
    case 'bedrock':
      return {
        model: 'bedrock/anthropic.claude-3-5-haiku-20241022-v1:0',
        api_base: fake.bedrockURL,
        aws_access_key_id: 'AKIDEXAMPLE',
        aws_secret_access_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        aws_region_name: 'us-east-1',
        ...extra,
      };
  }
}

before(async () => {
  fake = await startFakeModel();
  const modelList = PROVIDERS.flatMap((provider) => [
    { model_name: `${provider}-model`, litellm_params: deployment(provider) },
    { model_name: `${provider}-dropping`, litellm_params: deployment(provider, { drop_params: true }) },
  ]);
  modelList.push({ model_name: 'broken-model', litellm_params: { model: 'openai/gpt-4o', api_base: 'http://127.0.0.1:9/v1', api_key: 'x' } });
  server = await startTestServer({
    modelUrl: fake.url,
    config: {
      model_list: modelList,
      router_settings: { fallbacks: [{ 'broken-model': ['anthropic-model'] }] },
      assistd_settings: { model_max_retries: 2 },
    },
  });
});
after(async () => {
  await server?.close();
  await fake?.close();
});

/** The model requests of one protocol since `from`. */
function modelRequests(provider: Provider, from: number): RecordedRequest[] {
  const protocol = provider === 'azure' ? 'openai' : provider;
  return fake.requests.slice(from).filter((request) => request.protocol === protocol && request.method === 'POST' && !request.path.endsWith('/embeddings'));
}

/** What the provider was sent back for the tool calls: [call id or name, output] in order. */
function toolResults(provider: Provider, body: Json): [string, string][] {
  switch (provider) {
    case 'anthropic': {
      const last = body.messages.at(-1);
      assert.equal(last.role, 'user');
      return last.content.filter((block: Json) => block.type === 'tool_result').map((block: Json) => [block.tool_use_id, typeof block.content === 'string' ? block.content : block.content.map((part: Json) => part.text).join('')]);
    }
    case 'gemini': {
      const last = body.contents.at(-1);
      return last.parts.filter((part: Json) => part.functionResponse).map((part: Json) => [part.functionResponse.name, JSON.stringify(part.functionResponse.response)]);
    }
    case 'bedrock': {
      const last = body.messages.at(-1);
      return last.content.filter((block: Json) => block.toolResult).map((block: Json) => [block.toolResult.toolUseId, block.toolResult.content.map((part: Json) => part.text ?? JSON.stringify(part.json)).join('')]);
    }
    default:
      return body.messages.filter((message: Json) => message.role === 'tool').map((message: Json) => [message.tool_call_id, message.content]);
  }
}

async function assistantFor(model: string, extra: Json = {}) {
  return server.client.beta.assistants.create({
    model,
    instructions: 'Be brief.',
    tools: [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
    ],
    ...extra,
  });
}

for (const provider of PROVIDERS) {
  describe(`through ${provider}`, () => {
    const model = `${provider}-model`;

    test('parallel function calls, then a second round with their outputs; usage adds up', async () => {
      const assistant = await assistantFor(model);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Weather in Paris and time in Tokyo?' }] });
      const seen = fake.requests.length;
      fake.enqueue(
        { toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }, { name: 'get_time', arguments: '{"tz":"Asia/Tokyo"}' }], usage: { prompt_tokens: 40, completion_tokens: 12 } },
        { text: 'Sunny in Paris; it is 9 pm in Tokyo.', usage: { prompt_tokens: 60, completion_tokens: 9 } },
      );
      const waiting: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(waiting.status, 'requires_action', JSON.stringify(waiting.last_error));
      const calls = waiting.required_action.submit_tool_outputs.tool_calls;
      assert.deepEqual(
        calls.map((call: Json) => [call.function.name, call.function.arguments]),
        [
          ['get_weather', '{"city":"Paris"}'],
          ['get_time', '{"tz":"Asia/Tokyo"}'],
        ],
      );
      assert.equal(new Set(calls.map((call: Json) => call.id)).size, 2);
      const done: Json = await withTimeout(
        server.client.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, {
          thread_id: thread.id,
          tool_outputs: [
            { tool_call_id: calls[0].id, output: 'sunny' },
            { tool_call_id: calls[1].id, output: '21:00' },
          ],
        } as Json, POLL),
        'submitToolOutputsAndPoll',
      );
      assert.equal(done.status, 'completed', JSON.stringify(done.last_error));
      assert.deepEqual(done.usage, { prompt_tokens: 100, completion_tokens: 21, total_tokens: 121 });
      const messages = await server.client.beta.threads.messages.list(thread.id);
      assert.equal((messages.data[0]!.content[0] as Json).text.value, 'Sunny in Paris; it is 9 pm in Tokyo.');

      const [first, second] = modelRequests(provider, seen);
      assert.ok(first && second, 'two model calls');
      const results = toolResults(provider, second.body);
      if (provider === 'gemini') {
        // Gemini's function responses name the function (its calls carry no ids).
        assert.deepEqual(results.map(([name]) => name), ['get_weather', 'get_time']);
        assert.ok(results[0]![1].includes('sunny') && results[1]![1].includes('21:00'), JSON.stringify(results));
      } else {
        assert.deepEqual(results, [
          [calls[0].id, 'sunny'],
          [calls[1].id, '21:00'],
        ]);
      }
    });

    test('a streamed answer reaches the SDK as deltas, in order, with the instructions as the system prompt', async () => {
      const assistant = await assistantFor(model);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Say hello.' }] });
      const seen = fake.requests.length;
      fake.enqueue({ text: 'Hello there from a provider stream.' });
      const stream = server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
      const deltas: string[] = [];
      stream.on('textDelta', (delta) => deltas.push(delta.value ?? ''));
      const run: Json = await withTimeout(stream.finalRun(), 'finalRun');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      assert.equal(deltas.join(''), 'Hello there from a provider stream.');
      assert.ok(deltas.length >= 3, `several deltas (${deltas.length})`);
      const [request] = modelRequests(provider, seen);
      const system = provider === 'anthropic' ? JSON.stringify(request!.body.system) : provider === 'gemini' ? JSON.stringify(request!.body.systemInstruction) : provider === 'bedrock' ? JSON.stringify(request!.body.system) : JSON.stringify(request!.body.messages[0]);
      assert.match(system, /Be brief\./);
    });

    test('a 429 is retried after its Retry-After; a stream broken mid-way is retried and one answer kept', async () => {
      const assistant = await assistantFor(model);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
      const seen = fake.requests.length;
      fake.enqueue({ status: 429, retryAfter: '0', errorMessage: 'slow down' }, { text: 'one two three four five six', breakAfterChunks: 4 }, { text: 'one two three four five six' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      assert.equal(modelRequests(provider, seen).length, 3);
      const messages = await server.client.beta.threads.messages.list(thread.id);
      const answers = messages.data.filter((message) => message.role === 'assistant');
      assert.equal(answers.length, 1, 'one answer');
      assert.equal((answers[0]!.content[0] as Json).text.value, 'one two three four five six');
    });

    test("the provider's mid-stream error event is retried; a 400 fails the run with the provider's message", async () => {
      const assistant = await assistantFor(model);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
      fake.enqueue({ text: 'partial answer that', streamError: { afterEvents: 2 } }, { text: 'A whole answer.' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      fake.enqueue({ status: 400, errorMessage: 'this prompt is not acceptable here' });
      const failed: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(failed.status, 'failed');
      assert.equal(failed.last_error.code, 'invalid_prompt');
      assert.match(failed.last_error.message, /this prompt is not acceptable here/);
    });

    test('an image_file part reaches the model as an image in its own format', async () => {
      const image: Json = await server.client.files.create({ file: await toFile(PNG_1X1, 'dot.png'), purpose: 'vision' });
      const assistant = await server.client.beta.assistants.create({ model });
      const thread = await server.client.beta.threads.create({
        messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_file', image_file: { file_id: image.id } }] }],
      });
      const seen = fake.requests.length;
      fake.enqueue({ text: 'A dot.' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      const body = modelRequests(provider, seen)[0]!.body;
      const base64 = PNG_1X1.toString('base64');
      const sent =
        provider === 'anthropic'
          ? body.messages[0].content.find((block: Json) => block.type === 'image')?.source
          : provider === 'gemini'
            ? body.contents[0].parts.find((part: Json) => part.inlineData)?.inlineData
            : provider === 'bedrock'
              ? body.messages[0].content.find((block: Json) => block.image)?.image
              : body.messages.find((message: Json) => message.role === 'user').content.find((part: Json) => part.type === 'image_url')?.image_url;
      assert.ok(sent, `an image in ${JSON.stringify(body).slice(0, 400)}`);
      const text = JSON.stringify(sent);
      assert.ok(text.includes(base64) || text.includes(Buffer.from(PNG_1X1).toString('base64').replace(/=+$/, '')), `the PNG's bytes: ${text.slice(0, 200)}`);
      if (provider === 'anthropic') assert.equal(sent.media_type, 'image/png');
      if (provider === 'gemini') assert.equal(sent.mimeType, 'image/png');
    });

    test('file_search: the search runs here, its passages go back to the model, the answer completes', async () => {
      const store = await server.client.vectorStores.create({ name: `${provider} notes` });
      const file = await server.client.vectorStores.files.uploadAndPoll(store.id, await toFile(Buffer.from(`The ${provider} vault code is ORCHID-7.\n\nNothing else here.`), 'notes.txt'), POLL);
      assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
      const assistant = await server.client.beta.assistants.create({ model, tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [store.id] } } });
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'What is the vault code?' }] });
      const seen = fake.requests.length;
      fake.enqueue({ toolCalls: [{ name: 'file_search', arguments: '{"queries":["vault code"]}' }] }, { text: 'It is ORCHID-7.' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      const steps = await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
      const searchStep: Json = steps.data.find((step) => step.type === 'tool_calls');
      assert.equal(searchStep.step_details.tool_calls[0].type, 'file_search');
      const [, second] = modelRequests(provider, seen);
      assert.match(JSON.stringify(toolResults(provider, second!.body)), /ORCHID-7/);
    });

    test('code_interpreter: the code runs in the sandbox, its output goes back to the model', { skip: sandboxProblem ? `no sandbox here: ${sandboxProblem}` : false }, async () => {
      const assistant = await server.client.beta.assistants.create({ model, tools: [{ type: 'code_interpreter' }] });
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'What is 6 times 7?' }] });
      const seen = fake.requests.length;
      fake.enqueue({ toolCalls: [{ name: 'code_interpreter', arguments: '{"code":"print(6 * 7)"}' }] }, { text: '42.' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      const steps = await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
      const codeStep: Json = steps.data.find((step) => step.type === 'tool_calls');
      assert.equal(codeStep.step_details.tool_calls[0].code_interpreter.input, 'print(6 * 7)');
      assert.deepEqual(codeStep.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '42\n' }]);
      const [, second] = modelRequests(provider, seen);
      assert.match(JSON.stringify(toolResults(provider, second!.body)), /42/);
    });
  });
}

describe('embeddings from a provider', () => {
  test("a vector store indexes with Gemini's embeddings (model_info.mode: embedding) and hybrid search finds the passage", async () => {
    const local = await startTestServer({
      modelUrl: fake.url,
      config: {
        model_list: [
          { model_name: 'gemini-embed', litellm_params: { model: 'gemini/text-embedding-004', api_base: fake.geminiURL, api_key: 'gemini-key' }, model_info: { mode: 'embedding' } },
          { model_name: 'chat', litellm_params: deployment('gemini') },
        ],
      },
    });
    try {
      const seen = fake.requests.length;
      const store = await local.client.vectorStores.create({ name: 'gemini-embedded' });
      const text = 'The lighthouse keeper logs the tide at dawn.\n\nUnrelated words about gardening and tomatoes.';
      const file = await local.client.vectorStores.files.uploadAndPoll(store.id, await toFile(Buffer.from(text), 'log.txt'), POLL);
      assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
      const embedCalls = fake.requests.slice(seen).filter((request) => request.protocol === 'gemini' && /:(batchEmbedContents|embedContent)$/.test(request.path));
      assert.ok(embedCalls.length >= 1, 'the chunks were embedded by Gemini');
      const results: Json = await local.client.vectorStores.search(store.id, { query: 'when does the keeper log the tide' });
      assert.equal(results.data[0]?.file_id, file.id);
      const searchEmbeds = fake.requests.slice(seen).filter((request) => request.protocol === 'gemini' && /embed/i.test(request.path));
      assert.ok(searchEmbeds.length > embedCalls.length, 'the query was embedded too');
    } finally {
      await local.close();
    }
  });
});

describe('parameters a provider lacks (drop_params)', () => {
  test('parallel_tool_calls: false fails the run on Gemini and Bedrock with a last_error naming it; with drop_params the run goes on', async () => {
    for (const provider of ['gemini', 'bedrock'] as const) {
      const assistant = await assistantFor(`${provider}-model`);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
      const seen = fake.requests.length;
      const failed: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, parallel_tool_calls: false }, POLL), 'createAndPoll');
      assert.equal(failed.status, 'failed');
      assert.equal(failed.last_error.code, 'invalid_prompt');
      assert.match(failed.last_error.message, /does not support parallel_tool_calls: false.*drop_params: true/);
      assert.equal(modelRequests(provider, seen).length, 0, 'nothing was sent');

      const dropping = await assistantFor(`${provider}-dropping`);
      fake.enqueue({ text: 'Fine.' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: dropping.id, parallel_tool_calls: false }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    }
  });

  test('parallel_tool_calls: false reaches Anthropic and Mistral as their own setting', async () => {
    for (const provider of ['anthropic', 'mistral'] as const) {
      const assistant = await assistantFor(`${provider}-model`);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
      const seen = fake.requests.length;
      fake.enqueue({ text: 'Fine.' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, parallel_tool_calls: false }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      const [request] = modelRequests(provider, seen);
      if (provider === 'anthropic') assert.equal(request!.body.tool_choice.disable_parallel_tool_use, true);
      else assert.equal(request!.body.parallel_tool_calls, false);
    }
  });

  test('response_format json_schema reaches each provider as its own structured output', async () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    for (const provider of ['anthropic', 'gemini', 'mistral', 'bedrock'] as const) {
      const assistant = await server.client.beta.assistants.create({
        model: `${provider}-model`,
        response_format: { type: 'json_schema', json_schema: { name: 'reply', schema, strict: true } },
      } as Json);
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Answer in JSON.' }] });
      const seen = fake.requests.length;
      fake.enqueue(provider === 'anthropic' || provider === 'bedrock' ? { toolCalls: [{ name: 'json', arguments: '{"answer":"yes"}' }] } : { text: '{"answer":"yes"}' });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', `${provider}: ${JSON.stringify(run.last_error)}`);
      const body = JSON.stringify(modelRequests(provider, seen)[0]!.body);
      assert.ok(body.includes('"answer"'), `${provider} is sent the schema: ${body.slice(0, 300)}`);
      const messages = await server.client.beta.threads.messages.list(thread.id);
      assert.equal((messages.data[0]!.content[0] as Json).text.value, '{"answer":"yes"}', provider);
    }
  });

  test("a temperature over Anthropic's range is a clear failure, or clamped with drop_params", async () => {
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
    const strict = await assistantFor('anthropic-model', { temperature: 1.5 });
    const before = fake.requests.length;
    const failed: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: strict.id }, POLL), 'createAndPoll');
    assert.equal(failed.status, 'failed');
    assert.match(failed.last_error.message, /temperature 1\.5 \(its range is 0 to 1\).*drop_params/);
    assert.equal(modelRequests('anthropic', before).length, 0, 'refused before anything was sent');
    const lenient = await assistantFor('anthropic-dropping', { temperature: 1.5 });
    const seen = fake.requests.length;
    fake.enqueue({ text: 'Fine.' });
    const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: lenient.id }, POLL), 'createAndPoll');
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(modelRequests('anthropic', seen)[0]!.body.temperature, 1);
  });
});

describe('routing', () => {
  test('fallbacks: a deployment that cannot be reached hands the call to its fallback, another provider', async () => {
    const assistant = await assistantFor('broken-model');
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
    const seen = fake.requests.length;
    fake.enqueue({ text: 'Answered by the fallback.' });
    const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.equal(modelRequests('anthropic', seen).length, 1);
  });

  test('provider-prefixed names with no model_list entry route by the environment key; ollama needs none', () => {
    const config = parseConfig({}, {});
    const env = { ANTHROPIC_API_KEY: 'sk-ant', GEMINI_API_KEY: 'g', OLLAMA_API_BASE: 'http://127.0.0.1:11434' };
    const registry = new ModelRegistry(config.modelList, config.settings, env);
    assert.ok(registry.has('anthropic/claude-3-haiku-20240307'));
    assert.ok(registry.has('gemini/gemini-2.0-flash'));
    assert.ok(registry.has('ollama/llama3.2'));
    assert.equal(registry.has('mistral/mistral-small'), false, 'no MISTRAL_API_KEY');
    assert.equal(registry.has('claude-3-haiku'), false, 'no prefix, no route');
    // Names are names: inherited members of an object are no provider.
    for (const name of ['constructor/x', '__proto__/x', 'toString/y', 'hasOwnProperty/z']) assert.equal(registry.has(name), false, name);
    assert.deepEqual(registry.environmentProviders.map((line) => line.split(' ')[0]), ['ollama/', 'anthropic/', 'gemini/']);
    const none = new ModelRegistry(config.modelList, config.settings, {});
    assert.ok(none.has('ollama/llama3.2'), 'a local Ollama with no key and no config');
    assert.equal(none.has('anthropic/claude-3-haiku-20240307'), false);
  });

  test("a model name that is an object's own member is a 400, never a 500", async () => {
    for (const model of ['constructor/x', '__proto__/x', 'constructor']) {
      const error: Json = await server.client.beta.assistants.create({ model }).then(() => null, (caught: unknown) => caught);
      assert.equal(error?.status, 400, `${model}: ${error?.message}`);
    }
  });

  test('a prefixed name reaches its provider with the key from the environment', async () => {
    const previous = { ...process.env };
    process.env.ANTHROPIC_API_KEY = 'sk-ant-from-env';
    process.env.ANTHROPIC_API_BASE = fake.anthropicURL;
    const local = await startTestServer({ modelUrl: fake.url, config: { model_list: [] } });
    try {
      const assistant = await local.client.beta.assistants.create({ model: 'anthropic/claude-3-haiku-20240307' });
      const thread = await local.client.beta.threads.create({ messages: [{ role: 'user', content: 'Hi' }] });
      const seen = fake.requests.length;
      fake.enqueue({ text: 'From Anthropic.' });
      const run: Json = await withTimeout(local.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      const [request] = modelRequests('anthropic', seen);
      assert.equal(request!.headers['x-api-key'], 'sk-ant-from-env');
      assert.equal(request!.body.model, 'claude-3-haiku-20240307');
    } finally {
      process.env = previous;
      await local.close();
    }
  });
});
