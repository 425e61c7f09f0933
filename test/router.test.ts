/**
 * LiteLLM's routing, in one process: load sharing by weight or by least-busy, rpm/tpm limits, cooldown
 * after a failure, and fallbacks before a stream has said anything (never after).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, type Deployment } from '../src/providers/router.js';
import { ProviderError, type LanguageModel, type StreamPart } from '../src/providers/types.js';

const REQUEST = { messages: [{ role: 'user' as const, content: 'hi' }] };

interface Scripted extends Deployment {
  calls: number;
}

/** A deployment whose model answers `text` (with `tokens` of usage), or fails as `fail` says. */
function deployment(name: string, options: { weight?: number; rpm?: number; tpm?: number; tokens?: number; fail?: () => ProviderError | Error | null; failAfterText?: boolean; hold?: Promise<void> } = {}): Scripted {
  const scripted: Scripted = {
    describe: name,
    weight: options.weight ?? 1,
    rpm: options.rpm ?? null,
    tpm: options.tpm ?? null,
    calls: 0,
    create(): LanguageModel {
      return {
        modelId: name,
        async *stream(): AsyncGenerator<StreamPart> {
          scripted.calls += 1;
          const failure = options.fail?.() ?? null;
          if (failure && !options.failAfterText) throw failure;
          yield { type: 'text-delta', text: name };
          if (failure) throw failure;
          if (options.hold) await options.hold;
          const tokens = options.tokens ?? 10;
          yield { type: 'finish', reason: 'stop', usage: { prompt_tokens: tokens / 2, completion_tokens: tokens / 2, total_tokens: tokens } };
        },
      };
    },
  };
  return scripted;
}

async function answer(router: Router, name: string): Promise<string> {
  let text = '';
  for await (const part of router.model(name)!.stream(REQUEST, { signal: new AbortController().signal })) {
    if (part.type === 'text-delta') text += part.text;
  }
  return text;
}

function sequence(): () => number {
  let position = 0;
  return () => ((position++ % 100) + 0.5) / 100;
}

function router(groups: Record<string, Deployment[]>, options: Partial<ConstructorParameters<typeof Router>[0]> = {}): Router {
  return new Router({ strategy: 'simple-shuffle', cooldownMs: 5_000, fallbacks: {}, deployments: (name) => groups[name] ?? [], random: sequence(), ...options });
}

describe('routing across deployments of one model_name', () => {
  test('simple-shuffle shares calls by weight', async () => {
    const heavy = deployment('heavy', { weight: 3 });
    const light = deployment('light', { weight: 1 });
    const routing = router({ gpt: [heavy, light] });
    for (let index = 0; index < 100; index++) await answer(routing, 'gpt');
    assert.equal(heavy.calls, 75);
    assert.equal(light.calls, 25);
  });

  test('least-busy sends a call to the deployment with the fewest calls in flight', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = deployment('first', { hold: held });
    const second = deployment('second', { hold: held });
    const routing = router({ gpt: [first, second] }, { strategy: 'least-busy' });
    const pending = [answer(routing, 'gpt'), answer(routing, 'gpt'), answer(routing, 'gpt'), answer(routing, 'gpt')];
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual([first.calls, second.calls], [2, 2]);
    release();
    await Promise.all(pending);
  });

  test('an unknown name has no model', () => {
    assert.equal(router({}).model('nothing'), undefined);
  });
});

describe('limits, cooldown and fallbacks', () => {
  test('rpm: a deployment at its limit is skipped; all at their limits is a 429 with the wait', async () => {
    const one = deployment('one', { rpm: 1 });
    const two = deployment('two', { rpm: 1 });
    const routing = router({ gpt: [one, two] });
    assert.deepEqual([await answer(routing, 'gpt'), await answer(routing, 'gpt')].sort(), ['one', 'two']);
    const error = await answer(routing, 'gpt').then(() => null, (caught: unknown) => caught);
    assert.ok(error instanceof ProviderError, String(error));
    assert.equal(error.statusCode, 429);
    assert.ok(error.isRetryable);
    assert.ok(error.retryAfterMs! > 55_000 && error.retryAfterMs! <= 60_000, `retry after ${error.retryAfterMs} ms`);
    assert.match(error.message, /Every deployment of 'gpt' is at its rpm\/tpm limit/);
  });

  test('tpm: the tokens a deployment used this minute count against it', async () => {
    const small = deployment('small', { tpm: 100, tokens: 60 });
    const routing = router({ gpt: [small] });
    await answer(routing, 'gpt'); // 60 of 100
    await answer(routing, 'gpt'); // 120: over
    await assert.rejects(answer(routing, 'gpt'), (error: unknown) => error instanceof ProviderError && error.statusCode === 429);
  });

  test('a failure before any output moves the call to the next deployment and cools the failed one down', async () => {
    let failing = true;
    const flaky = deployment('flaky', { fail: () => (failing ? new ProviderError('overloaded', 529) : null) });
    const steady = deployment('steady');
    // The sequence picks `flaky` first (equal weights, 0.005 < 0.5).
    const routing = router({ gpt: [flaky, steady] });
    assert.equal(await answer(routing, 'gpt'), 'steady');
    assert.equal(flaky.calls, 1);
    failing = false;
    for (let index = 0; index < 10; index++) assert.equal(await answer(routing, 'gpt'), 'steady', 'cooled down while another is free');
    assert.equal(flaky.calls, 1);
  });

  test('a lone deployment that failed is still used (cooldown only steers among several)', async () => {
    let failures = 1;
    const lone = deployment('lone', { fail: () => (failures-- > 0 ? new ProviderError('rate limited', 429) : null) });
    const routing = router({ gpt: [lone] });
    await assert.rejects(answer(routing, 'gpt'), (error: unknown) => error instanceof ProviderError && error.statusCode === 429);
    assert.equal(await answer(routing, 'gpt'), 'lone');
  });

  test('fallbacks: when every deployment of a name fails, the next model_name in its list answers', async () => {
    const primary = deployment('primary', { fail: () => new ProviderError('bad gateway', 502) });
    const backup = deployment('backup');
    const routing = router({ gpt: [primary], claude: [backup] }, { fallbacks: { gpt: ['claude'] } });
    assert.equal(await answer(routing, 'gpt'), 'backup');
    // A non-retryable refusal (a parameter the provider lacks) falls back too, as LiteLLM's do.
    const refusing = deployment('refusing', { fail: () => new ProviderError('parallel_tool_calls unsupported', 400) });
    const other = router({ gpt: [refusing], claude: [backup] }, { fallbacks: { '*': ['claude'] } });
    assert.equal(await answer(other, 'gpt'), 'backup');
  });

  test('no fallback once the stream said something: the error reaches the run, whose retry decides', async () => {
    const breaking = deployment('breaking', { fail: () => new ProviderError('connection reset', null), failAfterText: true });
    const backup = deployment('backup');
    const routing = router({ gpt: [breaking], claude: [backup] }, { fallbacks: { gpt: ['claude'] } });
    await assert.rejects(answer(routing, 'gpt'), /connection reset/);
    assert.equal(backup.calls, 0);
  });

  test('the last failure is what the caller sees when nothing answers; other errors pass through untouched', async () => {
    const first = deployment('first', { fail: () => new ProviderError('first down', 503) });
    const second = deployment('second', { fail: () => new ProviderError('second refuses', 400) });
    const routing = router({ gpt: [first], claude: [second] }, { fallbacks: { gpt: ['claude'] } });
    await assert.rejects(answer(routing, 'gpt'), (error: unknown) => error instanceof ProviderError && error.message === 'second refuses');
    const bug = deployment('bug', { fail: () => new TypeError('a bug') });
    await assert.rejects(answer(router({ gpt: [bug, deployment('fine')] }), 'gpt'), TypeError);
  });
});
