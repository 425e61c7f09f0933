/**
 * A run whose model answers at once (the whole answer, to its finish, in one read) and that no
 * stream listens to writes its message, the message's step and the run's completion in one
 * statement: the message is not first written empty. Everything a client reads afterwards is as
 * before (the message with its text, a completed message_creation step with its usage, the run's
 * usage). A model that takes its time still gets its message written as it starts answering, so a
 * client listing the thread mid-answer sees it in progress; a stream also gets it the usual way.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { pollRun, RUN_OPENING_EVENTS, waitFor } from './helpers/harness.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { RunRepository } from '../src/storage/runs.js';

type Json = any;

describe('a whole answer in hand is written in one statement', () => {
  let fake: FakeModel;
  let server: TestServer;
  let assistantId: string;
  /** Calls of startMessage (the write of a message as begun, still empty), on any repository (the engine's are fenced ones). */
  let started = 0;
  const original = RunRepository.prototype.startMessage;

  before(async () => {
    fake = await startFakeModel();
    server = await startTestServer({ modelUrl: fake.url });
    RunRepository.prototype.startMessage = function (this: RunRepository, ...args: Parameters<RunRepository['startMessage']>) {
      started++;
      return original.apply(this, args);
    };
    const assistant = await server.client.beta.assistants.create({ model: 'gpt-test', instructions: 'Be brief.' });
    assistantId = assistant.id;
  });

  after(async () => {
    RunRepository.prototype.startMessage = original;
    await server?.close();
    await fake?.close();
  });

  test('an instant answer, polled: no message written empty first, and everything reads as before', async () => {
    fake.onRequest(() => ({ chunks: ['The sea ', 'is ', 'deep.'] }));
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'Tell me about the sea.' }] });
    const before = started;
    const run = await server.client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    const done: Json = await pollRun(server.client, thread.id, run.id, ['completed', 'failed', 'incomplete']);
    assert.equal(done.status, 'completed');
    assert.equal(started - before, 0, 'the message was not written empty before its answer');
    assert.ok(done.usage && done.usage.total_tokens > 0, 'the run has its usage');

    const messages = await server.client.beta.threads.messages.list(thread.id, { order: 'asc' });
    assert.equal(messages.data.length, 2);
    const answer: Json = messages.data[1];
    assert.equal(answer.role, 'assistant');
    assert.equal(answer.status, 'completed');
    assert.equal(answer.run_id, run.id);
    assert.equal(answer.assistant_id, assistantId);
    assert.deepEqual(answer.content, [{ type: 'text', text: { value: 'The sea is deep.', annotations: [] } }]);
    assert.deepEqual(answer.attachments, []);
    assert.deepEqual(answer.metadata, {});

    const steps = await server.client.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    assert.equal(steps.data.length, 1);
    const step: Json = steps.data[0];
    assert.equal(step.type, 'message_creation');
    assert.equal(step.status, 'completed');
    assert.equal(step.step_details.message_creation.message_id, answer.id);
    assert.deepEqual(step.usage, done.usage);
    assert.ok(step.completed_at >= step.created_at);
  });

  test('an answer that takes its time: its message is written as it starts, and seen in progress', async () => {
    fake.onRequest(() => ({ chunks: ['Slowly ', 'the ', 'tide ', 'turns.'], chunkDelayMs: 300 }));
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'And the tide?' }] });
    const before = started;
    const run = await server.client.beta.threads.runs.create(thread.id, { assistant_id: assistantId });
    const inProgress: Json = await waitFor('the answer in progress', async () => {
      const list = await server.client.beta.threads.messages.list(thread.id, { order: 'asc' });
      return list.data.find((message: Json) => message.role === 'assistant' && message.status === 'in_progress');
    });
    assert.equal(inProgress.run_id, run.id);
    const done: Json = await pollRun(server.client, thread.id, run.id, ['completed', 'failed', 'incomplete']);
    assert.equal(done.status, 'completed');
    assert.equal(started - before, 1, 'the message was written as the model began');
    const messages = await server.client.beta.threads.messages.list(thread.id, { order: 'asc' });
    assert.deepEqual((messages.data[1] as Json).content, [{ type: 'text', text: { value: 'Slowly the tide turns.', annotations: [] } }]);
  });

  test('a stream of an instant answer: the message is written first, and the events come in order', async () => {
    fake.onRequest(() => ({ chunks: ['Waves.'] }));
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: 'One word.' }] });
    const before = started;
    const stream = await server.client.beta.threads.runs.create(thread.id, { assistant_id: assistantId, stream: true });
    const events: string[] = [];
    for await (const event of stream) events.push(event.event);
    assert.equal(started - before, 1);
    assert.deepEqual(events, [
      ...RUN_OPENING_EVENTS,
      'thread.message.created',
      'thread.message.in_progress',
      'thread.message.delta',
      'thread.message.completed',
      'thread.run.step.completed',
      'thread.run.completed',
    ]);
  });
});
