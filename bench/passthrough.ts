/**
 * Passthrough overhead: what a passthrough assistd (`assistant_settings`) adds in front of an
 * upstream Assistants API, measured in one run against the same upstream, through the proxy and
 * directly. Four processes, so no two share an event loop:
 *
 *   - the fake model (test/helpers/fake-model.ts), `node dist/bench/passthrough.js --fake-model-child`;
 *   - the upstream: a native assistd (`node dist/src/cli.js serve`, embedded PGlite) running on it;
 *   - the proxy: a passthrough assistd (`serve` with assistant_settings pointing at the upstream);
 *   - this process, the load generator (node:http, one keep-alive agent per target, SSE read as it arrives).
 *
 * Measured, on 127.0.0.1, alternating between the two targets in rounds so drift hits both alike:
 *
 *   1. retrieve  GET /v1/assistants/{id}: latency p50/p99/mean at each concurrency level, and the
 *                proxy's CPU per request
 *   2. stream    POST /v1/threads/runs with stream: true (a 20-chunk answer from an instant model),
 *                one at a time: time to the first event (first SSE bytes), to the first
 *                `thread.message.delta`, and to the end of the stream
 *
 * It measures and prints; it never judges speed. The exit code is 1 only when something failed (a
 * child not starting, a non-2xx, a stream not ending `thread.run.completed` + `[DONE]`).
 *
 *   npm run bench:passthrough
 *   npm run bench:passthrough -- --json      one JSON document on stdout (progress goes to stderr)
 *
 * Environment: BENCH_PT_REQUESTS (GETs per target per level, default 4000), BENCH_PT_LEVELS
 * (concurrency levels, default "1,16"), BENCH_PT_STREAMS (streamed runs per target, default 100),
 * BENCH_PT_ROUNDS (rounds the work is split into, alternating targets, default 10).
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { FakeTurn } from '../test/helpers/fake-model.js';
import {
  cleanup,
  cleanups,
  envPositive,
  installCleanupHandlers,
  machine,
  manageChild,
  MASTER_KEY,
  parseIntList,
  percentile,
  processCpuSeconds,
  progress,
  sourceRevision,
  startServer,
  table,
  type ServerChild,
} from './lib.js';

const FAKE_CHILD_FLAG = '--fake-model-child';
const SELF = fileURLToPath(import.meta.url);
const MODEL = 'bench-passthrough';
const CHUNKS = 20;
const TURN: FakeTurn = { chunks: Array.from({ length: CHUNKS }, (_, index) => (index === 0 ? 'word' : ' word')) };
const PROXY_KEY = `${MASTER_KEY}-proxy`;
const STOP_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 30_000;

// ---- the fake model child

async function fakeModelChild(): Promise<void> {
  const { startFakeModel } = await import('../test/helpers/fake-model.js');
  const fake = await startFakeModel();
  fake.onRequest(() => {
    if (fake.requests.length > 64) fake.requests.splice(0, fake.requests.length - 1);
    return TURN;
  });
  const stop = () => void fake.close().finally(() => process.exit(0));
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.send!({ type: 'ready', url: fake.url });
}

async function startFakeModelChild(): Promise<{ url: string; pid: number | undefined }> {
  const child = fork(SELF, [FAKE_CHILD_FLAG], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  manageChild(child, STOP_TIMEOUT_MS);
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (message: { type: string; url: string }) => resolve(message.url));
    child.once('exit', (code) => reject(new Error(`the fake model exited (code ${code}) before it was ready`)));
  });
  return { url, pid: child.pid };
}

// ---- HTTP

interface Target {
  name: 'direct' | 'proxy';
  url: string;
  headers: Record<string, string>;
  agent: http.Agent;
  pid: number | undefined;
}

function request(target: Target, method: string, path: string, body?: unknown): Promise<{ status: number; text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const started = performance.now();
    const outgoing = http.request(target.url + path, {
      method,
      agent: target.agent,
      headers: { ...target.headers, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
    });
    outgoing.setTimeout(REQUEST_TIMEOUT_MS, () => outgoing.destroy(new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    outgoing.on('error', reject);
    outgoing.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
    });
    outgoing.end(payload);
  });
}

async function api(target: Target, method: string, path: string, body?: unknown): Promise<any> {
  const response = await request(target, method, path, body);
  if (response.status < 200 || response.status >= 300) throw new Error(`${target.name}: ${method} ${path} -> ${response.status}: ${response.text.slice(0, 300)}`);
  return JSON.parse(response.text);
}

interface StreamTiming {
  firstEventMs: number;
  firstDeltaMs: number;
  totalMs: number;
}

/** One streamed run, timed from sending the request: first SSE bytes, first text delta, end of the stream. */
function streamedRun(target: Target, assistantId: string): Promise<StreamTiming> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify({ assistant_id: assistantId, stream: true, thread: { messages: [{ role: 'user', content: 'Tell me about the sea.' }] } });
    const started = performance.now();
    const outgoing = http.request(`${target.url}/v1/threads/runs`, {
      method: 'POST',
      agent: target.agent,
      headers: { ...target.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), accept: 'text/event-stream' },
    });
    outgoing.setTimeout(REQUEST_TIMEOUT_MS, () => outgoing.destroy(new Error(`${target.name}: streamed run: silent for ${REQUEST_TIMEOUT_MS} ms`)));
    outgoing.on('error', reject);
    outgoing.on('response', (response) => {
      let text = '';
      let firstEventMs: number | undefined;
      let firstDeltaMs: number | undefined;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        const now = performance.now() - started;
        firstEventMs ??= now;
        text += chunk;
        if (firstDeltaMs === undefined && text.includes('event: thread.message.delta\n')) firstDeltaMs = now;
      });
      response.on('error', reject);
      response.on('end', () => {
        const totalMs = performance.now() - started;
        if (response.statusCode !== 200) return reject(new Error(`${target.name}: streamed run -> ${response.statusCode}: ${text.slice(0, 300)}`));
        if (!text.includes('event: thread.run.completed\n') || !text.endsWith('event: done\ndata: [DONE]\n\n') || firstDeltaMs === undefined) {
          return reject(new Error(`${target.name}: streamed run did not complete: …${text.slice(-300)}`));
        }
        resolve({ firstEventMs: firstEventMs!, firstDeltaMs, totalMs });
      });
    });
    outgoing.end(payload);
  });
}

// ---- statistics

interface Summary {
  p50: number | null;
  p99: number | null;
  mean: number | null;
}

function summary(values: number[]): Summary {
  const round = (value: number | null) => (value === null ? null : Number(value.toFixed(3)));
  return {
    p50: round(percentile(values, 0.5)),
    p99: round(percentile(values, 0.99)),
    mean: round(values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length),
  };
}

const cell = (value: number | null | undefined, digits = 3) => (value === null || value === undefined ? '-' : value.toFixed(digits));
const difference = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);

// ---- main

async function benchMain(): Promise<number> {
  const { values: flags } = parseArgs({ options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (flags.help) {
    process.stdout.write('Usage: node dist/bench/passthrough.js [--json]\n');
    return 0;
  }
  const REQUESTS = envPositive('BENCH_PT_REQUESTS', 4000, true);
  const LEVELS = parseIntList('BENCH_PT_LEVELS', process.env.BENCH_PT_LEVELS || '1,16', 256);
  const STREAMS = envPositive('BENCH_PT_STREAMS', 100, true);
  const ROUNDS = envPositive('BENCH_PT_ROUNDS', 10, true);
  installCleanupHandlers('children');

  progress('starting the fake model');
  const fake = await startFakeModelChild();
  progress('starting the upstream (native assistd, PGlite)');
  const upstream: ServerChild = await startServer({
    backend: 'pglite',
    workDirPrefix: 'assistd-bench-pt-upstream-',
    config: {
      model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-bench-fake' } }],
      general_settings: { master_key: MASTER_KEY },
    },
    databaseUrl: undefined,
    cpuProfDir: undefined,
    cpuProfName: 'upstream.cpuprofile',
    stopTimeoutMs: STOP_TIMEOUT_MS,
  });
  progress('starting the proxy (passthrough assistd)');
  const proxyServer: ServerChild = await startServer({
    backend: 'pglite', // unused: a passthrough instance opens no storage
    workDirPrefix: 'assistd-bench-pt-proxy-',
    config: {
      general_settings: { master_key: PROXY_KEY },
      assistant_settings: { custom_llm_provider: 'openai', litellm_params: { api_base: `${upstream.url}/v1`, api_key: MASTER_KEY } },
    },
    databaseUrl: undefined,
    cpuProfDir: undefined,
    cpuProfName: 'proxy.cpuprofile',
    stopTimeoutMs: STOP_TIMEOUT_MS,
  });
  const agentFor = () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    cleanups.push(async () => agent.destroy());
    return agent;
  };
  const direct: Target = { name: 'direct', url: upstream.url, headers: { authorization: `Bearer ${MASTER_KEY}` }, agent: agentFor(), pid: upstream.pid };
  const proxy: Target = { name: 'proxy', url: proxyServer.url, headers: { authorization: `Bearer ${PROXY_KEY}` }, agent: agentFor(), pid: proxyServer.pid };
  const targets = [direct, proxy];

  const assistant = await api(proxy, 'POST', '/v1/assistants', { model: MODEL, name: 'bench assistant', instructions: 'Answer briefly.', metadata: { purpose: 'bench' } });
  const viaProxy = await api(proxy, 'GET', `/v1/assistants/${assistant.id}`);
  const viaUpstream = await api(direct, 'GET', `/v1/assistants/${assistant.id}`);
  if (JSON.stringify(viaProxy) !== JSON.stringify(viaUpstream)) throw new Error('the assistant read through the proxy differs from the upstream\'s');

  // ---- 1. retrieve
  interface RetrieveRow {
    concurrency: number;
    direct: Summary;
    proxy: Summary;
    proxyCpuMsPerRequest: number | null;
    requestsPerTarget: number;
  }
  const retrieveRows: RetrieveRow[] = [];
  const path = `/v1/assistants/${assistant.id}`;
  const block = async (target: Target, concurrency: number, count: number, into: number[]) => {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next += 1;
        const response = await request(target, 'GET', path);
        if (response.status !== 200) throw new Error(`${target.name}: GET ${path} -> ${response.status}: ${response.text.slice(0, 300)}`);
        into.push(response.ms);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  for (const concurrency of LEVELS) {
    progress(`retrieve x${concurrency}: warm-up, then ${REQUESTS} per target in ${ROUNDS} alternating rounds`);
    for (const target of targets) await block(target, concurrency, Math.min(500, REQUESTS), []);
    const latencies: Record<Target['name'], number[]> = { direct: [], proxy: [] };
    let proxyCpu = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const target of order) {
        const cpuBefore = target === proxy ? processCpuSeconds(proxy.pid) : undefined;
        await block(target, concurrency, Math.ceil(REQUESTS / ROUNDS), latencies[target.name]);
        if (target === proxy) {
          const cpuAfter = processCpuSeconds(proxy.pid);
          proxyCpu = cpuBefore === undefined || cpuAfter === undefined || Number.isNaN(proxyCpu) ? NaN : proxyCpu + cpuAfter - cpuBefore;
        }
      }
    }
    retrieveRows.push({
      concurrency,
      direct: summary(latencies.direct),
      proxy: summary(latencies.proxy),
      proxyCpuMsPerRequest: Number.isNaN(proxyCpu) ? null : Number(((proxyCpu * 1000) / latencies.proxy.length).toFixed(3)),
      requestsPerTarget: latencies.proxy.length,
    });
  }

  // ---- 2. streamed runs
  progress(`stream: warm-up, then ${STREAMS} streamed runs per target, one at a time, alternating`);
  for (const target of targets) for (let index = 0; index < 5; index++) await streamedRun(target, assistant.id);
  const timings: Record<Target['name'], StreamTiming[]> = { direct: [], proxy: [] };
  for (let index = 0; index < STREAMS; index++) {
    const order = index % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) timings[target.name].push(await streamedRun(target, assistant.id));
  }
  const streamSummary = (name: Target['name']) => ({
    firstEvent: summary(timings[name].map((timing) => timing.firstEventMs)),
    firstDelta: summary(timings[name].map((timing) => timing.firstDeltaMs)),
    total: summary(timings[name].map((timing) => timing.totalMs)),
  });
  const streams = { runsPerTarget: STREAMS, direct: streamSummary('direct'), proxy: streamSummary('proxy') };

  await cleanup();

  const environment = { revision: sourceRevision(), ...machine(), chunks: CHUNKS, rounds: ROUNDS };
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ environment, retrieve: retrieveRows, streams }, null, 2)}\n`);
    return 0;
  }
  const retrieveTable = table(
    ['GET /v1/assistants/{id}', 'conns', 'direct p50', 'proxy p50', '+p50', 'direct p99', 'proxy p99', '+p99', 'direct mean', 'proxy mean', 'proxy cpu/req'],
    retrieveRows.map((row) => [
      `${row.requestsPerTarget} per target`,
      String(row.concurrency),
      cell(row.direct.p50),
      cell(row.proxy.p50),
      cell(difference(row.proxy.p50, row.direct.p50)),
      cell(row.direct.p99),
      cell(row.proxy.p99),
      cell(difference(row.proxy.p99, row.direct.p99)),
      cell(row.direct.mean),
      cell(row.proxy.mean),
      cell(row.proxyCpuMsPerRequest),
    ]),
    1,
  );
  const streamRows = (['firstEvent', 'firstDelta', 'total'] as const).map((metric) => {
    const label = { firstEvent: 'first event', firstDelta: 'first text delta', total: 'whole stream' }[metric];
    const a = streams.direct[metric];
    const b = streams.proxy[metric];
    return [label, cell(a.p50), cell(b.p50), cell(difference(b.p50, a.p50)), cell(a.p99), cell(b.p99), cell(difference(b.p99, a.p99))];
  });
  const streamTable = table(['streamed run (ms from request)', 'direct p50', 'proxy p50', '+p50', 'direct p99', 'proxy p99', '+p99'], streamRows, 1);
  process.stdout.write(
    [
      `assistd passthrough benchmark (${environment.revision}): node ${environment.node} on ${environment.platform}, ${environment.cpus} CPUs (${environment.cpuModel})`,
      `127.0.0.1, keep-alive; upstream = native assistd on PGlite + instant fake model; proxy = passthrough assistd in front of it; targets alternate in ${ROUNDS} rounds`,
      'latencies in ms; +p50/+p99: proxy minus direct; proxy cpu/req: CPU ms the proxy process spent per forwarded request',
      '',
      retrieveTable,
      '',
      `${STREAMS} streamed runs per target, one at a time (POST /v1/threads/runs, stream: true; ${CHUNKS} text chunks)`,
      streamTable,
    ].join('\n') + '\n',
  );
  return 0;
}

if (process.argv[2] === FAKE_CHILD_FLAG) {
  await fakeModelChild();
} else {
  try {
    process.exitCode = await benchMain();
  } catch (error) {
    progress(`FAILED: ${(error as Error).stack ?? String(error)}`);
    await cleanup();
    process.exitCode = 1;
  }
}
