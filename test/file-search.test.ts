/**
 * file_search in runs, end to end through the official SDKs: the model (a scripted fake) calls the
 * search function, assistd searches the vector stores in scope (the assistant's, the thread's, and
 * the thread's own store that message attachments fill), the model reads the passages under their
 * markers, and the answer carries file_citation annotations pointing at the markers. Steps, stream
 * events and the SDKs' accumulated snapshots are checked against each other.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toFile } from 'openai';
import { startFakeModel, type FakeModel, type FakeTurn, type RecordedRequest } from './helpers/fake-model.js';
import { makePdf } from './helpers/documents.js';
import { withTimeout } from './helpers/harness.js';
import { http, startTestServer, type TestServer } from './helpers/server.js';

type Json = any;

let fake: FakeModel;
let server: TestServer;
const POLL = { pollIntervalMs: 20 };
const MARKER = /【\d+:\d+†[^】]*】/g;

/**
 * The fake's behaviour for a request, by the tag in its first user message: the first call of a
 * conversation searches (with `queries`), and once a search's output is in the prompt the fake
 * answers with `answer(output)`.
 */
const behaviours = new Map<string, { search: FakeTurn; answer: (toolOutput: string, request: RecordedRequest) => FakeTurn }>();
let tags = 0;
const newTag = () => `[[S${++tags}]]`;

function tagOf(request: RecordedRequest): string | undefined {
  for (const message of request.body?.messages ?? []) {
    const text = typeof message.content === 'string' ? message.content : JSON.stringify(message.content ?? '');
    const found = /\[\[S\d+\]\]/.exec(text);
    if (found) return found[0];
  }
  return undefined;
}

before(async () => {
  fake = await startFakeModel();
  fake.onRequest((request) => {
    if (!request.path.endsWith('/chat/completions')) return undefined;
    const tag = tagOf(request);
    const behaviour = tag ? behaviours.get(tag) : undefined;
    if (!behaviour) return undefined;
    const last = request.body.messages.at(-1);
    return last.role === 'tool' ? behaviour.answer(last.content, request) : behaviour.search;
  });
  server = await startTestServer({ modelUrl: fake.url, config: { assistd_settings: { embedding_model: 'text-embedding-3-small' } } });
});
after(async () => {
  await server?.close();
  await fake?.close();
});

const search = (...queries: string[]): FakeTurn => ({ toolCalls: [{ name: 'file_search', arguments: JSON.stringify({ queries }) }] });

/** An answer citing the passage that mentions `fact`, by the marker heading it in the tool output. */
const citing = (fact: string, sentence: string, chunks?: (text: string) => string[]) => (output: string): FakeTurn => {
  // The output is passages, each headed by its marker: the marker before the first passage with the fact.
  const parts = output.split(/(【\d+:\d+†[^】]*】)/);
  const at = parts.findIndex((part, index) => index % 2 === 0 && index > 0 && part.includes(fact));
  const marker = at > 0 ? parts[at - 1]! : '(no marker found)';
  const text = `${sentence} ${marker}.`;
  return chunks ? { chunks: chunks(text) } : { text };
};

/** `value` without the `index` keys delta entries carry. */
function withoutIndex(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutIndex);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'index').map(([key, item]) => [key, withoutIndex(item)]));
  return value;
}

const chatRequests = () => fake.requests.filter((request) => request.path.endsWith('/chat/completions'));

async function pdfStore() {
  const pdf = await makePdf([
    'Annual report. Chapter one: the weather was mild.',
    'Chapter two: the team grew to twelve people.',
    'Chapter three: the secret launch code is ZEBRA-42, kept in the vault.',
    'Chapter four: plans for next year.',
  ]);
  const store = await server.client.vectorStores.create({ name: 'reports' });
  const file = await server.client.vectorStores.files.uploadAndPoll(store.id, await toFile(pdf, 'report.pdf'), POLL);
  assert.equal(file.status, 'completed', JSON.stringify(file.last_error));
  return { store, file };
}

describe('file_search in runs', () => {
  test('a fact only on page 3 of a PDF: searched, read under its marker, cited in the answer', async () => {
    const { store, file } = await pdfStore();
    const assistant = await server.client.beta.assistants.create({
      model: 'gpt-4o',
      instructions: 'Answer from the files.',
      tools: [{ type: 'file_search' }],
      tool_resources: { file_search: { vector_store_ids: [store.id] } },
    });
    const tag = newTag();
    behaviours.set(tag, { search: search('launch code'), answer: citing('ZEBRA-42', 'The launch code is ZEBRA-42') });
    const seen = chatRequests().length;
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `What is the launch code? ${tag}` }] });
    const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));

    const [first, second] = chatRequests().slice(seen);
    assert.ok(first && second, 'two model calls');
    assert.deepEqual(first.body.tools.map((tool: Json) => tool.function.name), ['file_search']);
    assert.match(first.body.messages[0].content, /^Answer from the files\.\n\nYou can search the files the user provided/);
    const toolMessage = second.body.messages.at(-1);
    assert.equal(toolMessage.role, 'tool');
    assert.match(toolMessage.content, /^【0:0†report\.pdf】\n/);
    assert.match(toolMessage.content, /ZEBRA-42/);
    const call = second.body.messages.at(-2);
    assert.deepEqual(call.tool_calls[0].function, { name: 'file_search', arguments: '{"queries":["launch code"]}' });

    const steps = (await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' })).data as Json[];
    assert.deepEqual(steps.map((step) => [step.type, step.status]), [['tool_calls', 'completed'], ['message_creation', 'completed']]);
    const searchCall = steps[0].step_details.tool_calls[0];
    assert.equal(searchCall.type, 'file_search');
    assert.match(searchCall.id, /^call_/);
    assert.deepEqual(searchCall.file_search.ranking_options, { ranker: 'default_2024_08_21', score_threshold: 0 });
    assert.equal(searchCall.file_search.results[0].file_id, file.id);
    assert.equal(searchCall.file_search.results[0].file_name, 'report.pdf');
    assert.ok(searchCall.file_search.results[0].score > 0 && searchCall.file_search.results[0].score <= 1);
    assert.equal(searchCall.file_search.results[0].content, undefined, 'content only when include[] asks');

    const [message] = (await server.client.beta.threads.messages.list(thread.id, { run_id: run.id })).data as Json[];
    const { value, annotations } = message.content[0].text;
    assert.equal(value, 'The launch code is ZEBRA-42 【0:0†report.pdf】.');
    assert.deepEqual(annotations, [
      { type: 'file_citation', text: '【0:0†report.pdf】', start_index: 28, end_index: 44, file_citation: { file_id: file.id } },
    ]);
    assert.equal(value.slice(annotations[0]!.start_index, annotations[0]!.end_index), annotations[0]!.text);

    // include[] adds the chunks' text to the results.
    const included = await http(server, 'GET', `/v1/threads/${thread.id}/runs/${run.id}/steps/${steps[0].id}?include[]=step_details.tool_calls[*].file_search.results[*].content`);
    assert.match(included.json.step_details.tool_calls[0].file_search.results[0].content[0].text, /ZEBRA-42/);
    const listed: Json = await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, include: ['step_details.tool_calls[*].file_search.results[*].content'] });
    assert.ok(listed.data.find((step: Json) => step.type === 'tool_calls').step_details.tool_calls[0].file_search.results[0].content);
  });

  for (const sdk of ['7.x', '4.x'] as const) {
    test(`openai ${sdk} stream(): file_search step and citation deltas accumulate into what is stored; a marker split across chunks is cited once`, async () => {
      const { store, file } = await pdfStore();
      const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [store.id] } } });
      const tag = newTag();
      // The marker arrives in three pieces.
      const split = (text: string) => {
        const at = text.indexOf('【');
        return [text.slice(0, at + 2), text.slice(at + 2, at + 6), text.slice(at + 6)];
      };
      behaviours.set(tag, { search: search('launch code', 'vault'), answer: citing('ZEBRA-42', 'It is ZEBRA-42', split) });
      const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Code? ${tag}` }] });
      const stream =
        sdk === '7.x'
          ? server.client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id })
          : server.clientV4.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
      const events: string[] = [];
      const stepsCreated = new Set<string>();
      const doneCalls: Json[] = [];
      const annotationDeltas: Json[] = [];
      stream.on('event', (event: Json) => {
        events.push(event.event);
        if (event.event === 'thread.run.step.created') stepsCreated.add(event.data.id);
        if (event.event === 'thread.run.step.delta') assert.ok(stepsCreated.has(event.data.id), 'a step delta never precedes its step');
      });
      stream.on('toolCallDone', (call: Json) => doneCalls.push(call));
      stream.on('textDelta', (delta: Json) => annotationDeltas.push(...(delta.annotations ?? [])));
      const run: Json = await withTimeout(stream.finalRun(), 'finalRun');
      assert.equal(run.status, 'completed');
      const messages = (await stream.finalMessages()) as Json[];
      const stored = (await server.client.beta.threads.messages.list(thread.id, { run_id: run.id })).data as Json[];
      // openai 4.x leaves the deltas' `index` keys in its snapshots; nothing else may differ.
      assert.deepEqual(withoutIndex(messages.at(-1).content), stored[0].content, 'the accumulated message is the stored one');
      assert.equal(stored[0].content[0].text.annotations.length, 1);
      assert.equal(stored[0].content[0].text.annotations[0].file_citation.file_id, file.id);
      assert.equal(annotationDeltas.length, 1, 'each annotation is sent once');
      assert.equal(annotationDeltas[0].index, 0);

      const steps = (await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' })).data as Json[];
      const finalSteps = (await stream.finalRunSteps()) as Json[];
      const accumulated = finalSteps.find((step) => step.type === 'tool_calls');
      assert.deepEqual(withoutIndex(accumulated.step_details), steps[0]!.step_details, 'the accumulated step is the stored one');
      assert.deepEqual(doneCalls.map((call) => [call.type, call.id]), [['file_search', steps[0]!.step_details.tool_calls[0].id]]);
      assert.ok(events.indexOf('thread.run.step.completed') < events.lastIndexOf('thread.message.delta'));
    void MARKER;
    });
  }

  test("attachments alone: the file goes into the thread's own vector store, the run waits for it to be indexed, then finds it", async () => {
    const upload = await server.client.files.create({ file: await toFile(Buffer.from('Memo: the picnic moves to the lighthouse lawn on Sunday.'), 'memo.txt'), purpose: 'assistants' });
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }] });
    const tag = newTag();
    behaviours.set(tag, { search: search('where is the picnic'), answer: citing('lighthouse', 'At the lighthouse lawn') });
    // Indexing is slowed so that the run has to wait for it.
    fake.embeddings.delayMs = 300;
    try {
      const thread: Json = await server.client.beta.threads.create({
        messages: [{ role: 'user', content: `Where is the picnic? ${tag}`, attachments: [{ file_id: upload.id, tools: [{ type: 'file_search' }] }] }],
      });
      const [storeId] = thread.tool_resources.file_search.vector_store_ids;
      assert.match(storeId, /^vs_/);
      const store: Json = await server.client.vectorStores.retrieve(storeId);
      assert.deepEqual(store.expires_after, { anchor: 'last_active_at', days: 7 });
      const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
      assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
      const [message] = (await server.client.beta.threads.messages.list(thread.id, { run_id: run.id })).data as Json[];
      assert.equal(message.content[0].text.annotations[0]?.file_citation.file_id, upload.id, JSON.stringify(message.content));
    } finally {
      fake.embeddings.delayMs = 0;
    }
  });

  test('an inline vector store on assistant create holds the files given; tool_choice file_search forces the search; max_num_results bounds it', async () => {
    const files = [];
    for (let index = 0; index < 4; index++) {
      files.push(await server.client.files.create({ file: await toFile(Buffer.from(`Note ${index}: the gate code is ${1000 + index}.`), `note${index}.txt`), purpose: 'assistants' }));
    }
    const assistant: Json = await server.client.beta.assistants.create({
      model: 'gpt-4o',
      tools: [{ type: 'file_search', file_search: { max_num_results: 2 } }],
      tool_resources: { file_search: { vector_stores: [{ file_ids: files.map((file) => file.id), metadata: { made: 'inline' } }] } },
    });
    const [storeId] = assistant.tool_resources.file_search.vector_store_ids;
    const store: Json = await server.client.vectorStores.retrieve(storeId);
    assert.deepEqual(store.metadata, { made: 'inline' });
    assert.equal(store.file_counts.total, 4);

    const tag = newTag();
    behaviours.set(tag, { search: search('gate code'), answer: () => ({ text: 'Found them.' }) });
    const seen = chatRequests().length;
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Gate code? ${tag}` }] });
    const run: Json = await withTimeout(
      server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id, tool_choice: { type: 'file_search' } }, POLL),
      'createAndPoll',
    );
    assert.equal(run.status, 'completed', JSON.stringify(run.last_error));
    assert.deepEqual(chatRequests()[seen]!.body.tool_choice, { type: 'function', function: { name: 'file_search' } });
    const steps = (await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' })).data as Json[];
    assert.equal(steps[0].step_details.tool_calls[0].file_search.results.length, 2);
  });

  test('a search and a function in one answer: the search is answered here, the function waits for the client, both reach the next call', async () => {
    const { store } = await pdfStore();
    const weather = { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } };
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }, weather], tool_resources: { file_search: { vector_store_ids: [store.id] } } });
    const tag = newTag();
    behaviours.set(tag, {
      search: { toolCalls: [{ name: 'file_search', arguments: '{"queries":["launch code"]}' }, { name: 'get_weather', arguments: '{}' }] },
      answer: () => ({ text: 'Sunny, and the code is ZEBRA-42.' }),
    });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Weather and code? ${tag}` }] });
    const waiting: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
    assert.equal(waiting.status, 'requires_action');
    assert.deepEqual(waiting.required_action.submit_tool_outputs.tool_calls.map((call: Json) => call.function.name), ['get_weather']);
    const [step] = (await server.client.beta.threads.runs.steps.list(waiting.id, { thread_id: thread.id })).data as Json[];
    assert.deepEqual(step.step_details.tool_calls.map((call: Json) => call.type), ['file_search', 'function']);
    assert.ok(step.step_details.tool_calls[0].file_search.results.length > 0);

    const seen = chatRequests().length;
    const callId = waiting.required_action.submit_tool_outputs.tool_calls[0].id;
    const run: Json = await withTimeout(
      server.client.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, { thread_id: thread.id, tool_outputs: [{ tool_call_id: callId, output: 'sunny' }] }, POLL),
      'submitToolOutputsAndPoll',
    );
    assert.equal(run.status, 'completed');
    const messages = chatRequests()[seen]!.body.messages as Json[];
    const tools = messages.filter((message) => message.role === 'tool');
    assert.equal(tools.length, 2);
    assert.match(tools[0].content, /ZEBRA-42/);
    assert.equal(tools[1].content, 'sunny');
  });

  test('a search over stores with nothing matching tells the model so, and the answer carries no citation', async () => {
    const store = await server.client.vectorStores.create({});
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'file_search' }], tool_resources: { file_search: { vector_store_ids: [store.id] } } });
    const tag = newTag();
    let output = '';
    behaviours.set(tag, {
      search: search('anything'),
      answer: (toolOutput) => {
        output = toolOutput;
        return { text: 'I found nothing.' };
      },
    });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Anything? ${tag}` }] });
    const run: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id }, POLL), 'createAndPoll');
    assert.equal(run.status, 'completed');
    assert.equal(output, 'No passages in the provided files matched the search.');
  });
});
