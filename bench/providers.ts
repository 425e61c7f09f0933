/**
 * What the provider layer itself adds: time to first token per provider, through our LanguageModel
 * (the registry's route: the AI SDK provider package, or our OpenAI-compatible client, plus the
 * router) against that provider's fake, compared with a plain fetch of the same fake endpoint with
 * the provider's own request, in the same run. The fake runs in a child process
 * (`node dist/bench/providers.js --fake-model-child`), so it never shares this event loop.
 *
 * For each provider, one call at a time, alternating direct and layer calls so drift hits both:
 *   - direct: fetch, then read until the first word of the answer is in the bytes (TTFT), then to the end;
 *   - layer:  model.stream(request), to the first text-delta part (TTFT), then to its finish part;
 *   - CPU:    this process's CPU time per call (user + system), direct and layer.
 *
 * It measures and prints; it never judges speed. Exit code 1 only when a call failed.
 *
 *   npm run bench:providers                 BENCH_PROVIDER_CALLS (per provider and side, default 400)
 *   npm run bench:providers -- --json
 *
 * Passthrough overhead (GET and a streamed run through a passthrough assistd) is `npm run bench:passthrough`.
 */
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config.js';
import { ModelRegistry } from '../src/providers/registry.js';
import type { ModelRequest } from '../src/providers/types.js';
import { cleanup, cleanups, envPositive, installCleanupHandlers, machine, manageChild, percentile, progress, sourceRevision, table } from './lib.js';

const SELF = fileURLToPath(import.meta.url);
const FAKE_CHILD_FLAG = '--fake-model-child';
const ANSWER = 'Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon';
const FIRST_WORD = 'Alpha';
const PROVIDERS = ['openai', 'anthropic', 'gemini', 'mistral', 'bedrock'] as const;
type Provider = (typeof PROVIDERS)[number];

interface Urls {
  openai: string;
  anthropic: string;
  gemini: string;
  mistral: string;
  bedrock: string;
}

async function fakeModelChild(): Promise<void> {
  const { startFakeModel } = await import('../test/helpers/fake-model.js');
  const fake = await startFakeModel();
  fake.defaultTurn = { text: ANSWER, usage: { prompt_tokens: 12, completion_tokens: 20 } };
  fake.onRequest(() => {
    if (fake.requests.length > 64) fake.requests.splice(0, fake.requests.length - 1);
    return undefined;
  });
  const urls: Urls = { openai: fake.url, anthropic: fake.anthropicURL, gemini: fake.geminiURL, mistral: fake.mistralURL, bedrock: fake.bedrockURL };
  process.send?.({ type: 'ready', urls });
  process.on('disconnect', () => void fake.close().finally(() => process.exit(0)));
}

/** The provider's own streaming request, as its API documents it. */
function directRequest(provider: Provider, urls: Urls): { url: string; init: RequestInit } {
  const json = (url: string, headers: Record<string, string>, body: unknown) => ({
    url,
    init: { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) },
  });
  switch (provider) {
    case 'openai':
      return json(`${urls.openai}/chat/completions`, { authorization: 'Bearer sk-bench' }, { model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } });
    case 'anthropic':
      return json(`${urls.anthropic}/messages`, { 'x-api-key': 'sk-bench', 'anthropic-version': '2023-06-01' }, { model: 'claude-3-5-haiku-20241022', max_tokens: 1024, messages: [{ role: 'user', content: 'Hi' }], stream: true });
    case 'gemini':
      return json(`${urls.gemini}/models/gemini-2.0-flash:streamGenerateContent?alt=sse`, { 'x-goog-api-key': 'bench' }, { contents: [{ role: 'user', parts: [{ text: 'Hi' }] }] });
    case 'mistral':
      return json(`${urls.mistral}/chat/completions`, { authorization: 'Bearer bench' }, { model: 'mistral-large-latest', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    case 'bedrock':
      return json(
        `${urls.bedrock}/model/${encodeURIComponent('anthropic.claude-3-5-haiku-20241022-v1:0')}/converse-stream`,
        { authorization: 'AWS4-HMAC-SHA256 Credential=AKIDBENCH/20261203/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=0' },
        { messages: [{ role: 'user', content: [{ text: 'Hi' }] }] },
      );
  }
}

function litellmParams(provider: Provider, urls: Urls): Record<string, unknown> {
  switch (provider) {
    case 'openai':
      return { model: 'openai/gpt-4o', api_base: urls.openai, api_key: 'sk-bench' };
    case 'anthropic':
      return { model: 'anthropic/claude-3-5-haiku-20241022', api_base: urls.anthropic, api_key: 'sk-bench' };
    case 'gemini':
      return { model: 'gemini/gemini-2.0-flash', api_base: urls.gemini, api_key: 'bench' };
    case 'mistral':
      return { model: 'mistral/mistral-large-latest', api_base: urls.mistral, api_key: 'bench' };
    case 'bedrock':
      return { model: 'bedrock/anthropic.claude-3-5-haiku-20241022-v1:0', api_base: urls.bedrock, aws_access_key_id: 'AKIDBENCH', aws_secret_access_key: 'bench-secret', aws_region_name: 'us-east-1' };
  }
}

interface Sample {
  ttft: number[];
  total: number[];
  cpuMicros: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });
  installCleanupHandlers('bench: stopping');
  const calls = envPositive('BENCH_PROVIDER_CALLS', 400, true);

  const child = fork(SELF, [FAKE_CHILD_FLAG], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const managed = manageChild(child, 5_000);
  cleanups.push(() => managed.stop());
  const urls = await new Promise<Urls>((resolve, reject) => {
    child.once('message', (message: { type?: string; urls?: Urls }) => (message.urls ? resolve(message.urls) : reject(new Error('fake model did not start'))));
    child.once('exit', () => reject(new Error('fake model exited before it was ready')));
  });

  const config = parseConfig({ model_list: PROVIDERS.map((provider) => ({ model_name: provider, litellm_params: litellmParams(provider, urls) })) });
  const registry = new ModelRegistry(config.modelList, config.settings, {}, config.router);
  const request: ModelRequest = { messages: [{ role: 'user', content: 'Hi' }] };
  const decoder = new TextDecoder();

  async function direct(provider: Provider): Promise<[number, number]> {
    const { url, init } = directRequest(provider, urls);
    const start = performance.now();
    const response = await fetch(url, init);
    if (!response.ok || !response.body) throw new Error(`direct ${provider}: HTTP ${response.status}`);
    let first = 0;
    let seen = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (first === 0) {
        seen += decoder.decode(chunk, { stream: true });
        if (seen.includes(FIRST_WORD)) first = performance.now() - start;
      }
    }
    if (first === 0) throw new Error(`direct ${provider}: the answer never came`);
    return [first, performance.now() - start];
  }

  async function layer(provider: Provider): Promise<[number, number]> {
    const model = registry.resolve(provider)!;
    const start = performance.now();
    let first = 0;
    let text = '';
    let finished = false;
    for await (const part of model.stream(request, { signal: new AbortController().signal })) {
      if (part.type === 'text-delta') {
        if (first === 0) first = performance.now() - start;
        text += part.text;
      } else if (part.type === 'finish') finished = true;
    }
    if (!finished || text !== ANSWER) throw new Error(`layer ${provider}: ${finished ? `answer '${text}'` : 'no finish'}`);
    return [first, performance.now() - start];
  }

  const results: Record<string, { direct: Sample; layer: Sample }> = {};
  for (const provider of PROVIDERS) {
    progress(`${provider}: ${calls} calls each way, alternating`);
    const sides = { direct: { ttft: [], total: [], cpuMicros: 0 } as Sample, layer: { ttft: [], total: [], cpuMicros: 0 } as Sample };
    // Warm-up: connections, JIT, the provider package's first-call work.
    for (let index = 0; index < 20; index++) {
      await direct(provider);
      await layer(provider);
    }
    for (let index = 0; index < calls; index++) {
      for (const [name, call] of [
        ['direct', direct],
        ['layer', layer],
      ] as const) {
        const cpu = process.cpuUsage();
        const [ttft, total] = await call(provider);
        const used = process.cpuUsage(cpu);
        sides[name].cpuMicros += used.user + used.system;
        sides[name].ttft.push(ttft);
        sides[name].total.push(total);
      }
    }
    results[provider] = sides;
  }

  const ms = (value: number | null, digits = 2) => (value === null ? '-' : value.toFixed(digits));
  const rows = PROVIDERS.map((provider) => {
    const { direct: d, layer: l } = results[provider]!;
    return [
      provider,
      ms(percentile(d.ttft, 0.5)),
      ms(percentile(l.ttft, 0.5)),
      ms(percentile(l.ttft, 0.5)! - percentile(d.ttft, 0.5)!),
      ms(percentile(d.ttft, 0.99)),
      ms(percentile(l.ttft, 0.99)),
      ms(percentile(d.total, 0.5)),
      ms(percentile(l.total, 0.5)),
      ms(d.cpuMicros / calls / 1000, 3),
      ms(l.cpuMicros / calls / 1000, 3),
    ];
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ machine: machine(), revision: sourceRevision(), calls, results: Object.fromEntries(rows.map((row) => [row[0], row.slice(1)])) })}\n`);
  } else {
    const info = machine();
    process.stdout.write(
      [
        `bench/providers: time to first token through the provider layer vs a plain fetch of the same fake, ${calls} calls each, one at a time`,
        `machine: ${JSON.stringify(info)}; revision ${sourceRevision()}`,
        '',
        table(['provider', 'direct p50', 'layer p50', 'added p50', 'direct p99', 'layer p99', 'direct end p50', 'layer end p50', 'direct CPU/call', 'layer CPU/call'], rows),
        '',
        'ms; added = layer p50 - direct p50 (alternating calls of one run). CPU/call: this process (client side) per call.',
        'direct reads raw bytes until the first word; layer parses the provider stream into our parts (the AI SDK package, or our OpenAI-compatible client, and the router).',
        '',
      ].join('\n'),
    );
  }
  await cleanup();
}

if (process.argv.includes(FAKE_CHILD_FLAG)) void fakeModelChild();
else
  main().catch(async (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await cleanup();
    process.exit(1);
  });
