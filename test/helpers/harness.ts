/**
 * The harness of the run-engine tests: a scripted fake model and a real server per describe, and
 * the bounded waits those tests poll with. Each test tags its thread's user messages with a unique
 * marker (`[[<letter><n>]]`); the fake answers from the turns scripted for the marker it finds in
 * the last user message, so tests never take each other's turns, and the upstream requests of a
 * test are found by the same marker.
 */
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import type OpenAI from 'openai';
import type OpenAIv4 from 'openai-v4';
import { startFakeModel, type FakeModel, type FakeTurn, type RecordedRequest } from './fake-model.js';
import { startTestServer, type TestServer } from './server.js';

type Json = any;

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part: Json) => (part?.type === 'text' ? String(part.text) : '')).join('\n');
  return '';
}

/** The chat completion requests the fake received, in order. */
export const chatRequests = (fake: FakeModel): RecordedRequest[] => fake.requests.filter((request) => request.path.endsWith('/chat/completions'));

export interface Harness {
  fake: FakeModel;
  server: TestServer;
  client: OpenAI;
  v4: OpenAIv4;
  /** Turns the fake answers, in order, to requests whose last user message carries `tag`. */
  script(tag: string, ...turns: FakeTurn[]): void;
  /** The chat requests the fake received for `tag`, in order. */
  requests(tag: string): RecordedRequest[];
}

/**
 * Markers `[[<letter><n>]]` (a fresh one from each `newTag()`), and `useHarness`: one fake model
 * and one server for the enclosing describe, started and stopped by its hooks, the fake answering
 * by these markers. `config` (given the fake's URL) is merged into the server's config document.
 */
export function taggedRuns(letter: string) {
  let tagCounter = 0;
  const newTag = () => `[[${letter}${++tagCounter}]]`;
  const pattern = new RegExp(`\\[\\[${letter}\\d+\\]\\]`, 'g');

  /** The marker in the last user message of a chat request that has one. */
  function tagOf(body: Json): string | undefined {
    const messages: Json[] = Array.isArray(body?.messages) ? body.messages : [];
    for (let index = messages.length - 1; index >= 0; index--) {
      if (messages[index]?.role !== 'user') continue;
      const found = contentText(messages[index].content).match(pattern);
      if (found) return found.at(-1);
    }
    return undefined;
  }

  function useHarness(config?: (fakeUrl: string) => Record<string, unknown>): Harness {
    const scripts = new Map<string, FakeTurn[]>();
    const harness = {
      script(tag: string, ...turns: FakeTurn[]) {
        scripts.set(tag, [...(scripts.get(tag) ?? []), ...turns]);
      },
      requests(tag: string) {
        return chatRequests(harness.fake).filter((request) => tagOf(request.body) === tag);
      },
    } as Harness;
    before(async () => {
      harness.fake = await startFakeModel();
      harness.fake.onRequest((request) => {
        const tag = tagOf(request.body);
        return tag ? scripts.get(tag)?.shift() : undefined;
      });
      harness.server = await startTestServer({ modelUrl: harness.fake.url, config: config?.(harness.fake.url) });
      harness.client = harness.server.client;
      harness.v4 = harness.server.clientV4;
    });
    after(async () => {
      await harness.server?.close();
      await harness.fake?.close();
    });
    return harness;
  }

  return { newTag, tagOf, useHarness };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` (every 20 ms) until it returns something truthy; fails after `timeoutMs`. */
export async function waitFor<T>(
  label: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await check();
    if (last) return last as T;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${label} (last: ${JSON.stringify(last)})`);
    await sleep(20);
  }
}

export async function withTimeout<T>(promise: Promise<T>, label: string, timeoutMs = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${label}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls the run (7.x client) until its status is one of `statuses`; a timeout names the last status seen. */
export async function pollRun(client: OpenAI, threadId: string, runId: string, statuses: string[], timeoutMs = 15_000): Promise<Json> {
  let last = '(none)';
  return waitFor(`run ${runId} to reach ${statuses.join('|')}`, async () => {
    const run = await client.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    last = run.status;
    return statuses.includes(run.status) ? run : undefined;
  }, timeoutMs).catch((error: Error) => {
    throw new Error(`${error.message}; last status seen: ${last}`);
  });
}

/** The events a streamed run opens with, up to its first step in progress. */
export const RUN_OPENING_EVENTS = [
  'thread.run.created',
  'thread.run.queued',
  'thread.run.in_progress',
  'thread.run.step.created',
  'thread.run.step.in_progress',
] as const;
