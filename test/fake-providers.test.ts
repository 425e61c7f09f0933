/**
 * The fake model's wires beyond what the run-engine tests use: here, OpenAI's mid-stream error
 * event (the `streamError` turn option), seen through the official `openai` SDK.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
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
