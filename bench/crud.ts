/**
 * CRUD throughput benchmark: starts the real server (`node dist/src/cli.js serve`) as a child process,
 * so the load generator and the server never share an event loop, fills a few fixtures and drives
 * three hot paths with autocannon over keep-alive connections to 127.0.0.1:
 *
 *   POST /v1/threads/{id}/messages          create a short text message
 *   GET  /v1/threads/{id}/messages?limit=20 list 20 from a thread holding LIST_THREAD_MESSAGES messages
 *   GET  /v1/assistants/{id}                retrieve an assistant
 *
 * each at 1 and 32 connections, on embedded PGlite and, when DATABASE_URL is set, on PostgreSQL (in a
 * fresh database created for the run and dropped afterwards). It measures and prints; it never judges
 * speed. The exit code is 1 only when a server fails to start or a request fails. On a small machine
 * the load generator, the server and PostgreSQL compete for the same cores: the cpu columns show how
 * busy each was, and the host column shows interference from anything else running.
 *
 *   npm run bench:crud                       table on stdout
 *   npm run bench:crud -- --json             one JSON document on stdout (progress goes to stderr)
 *   npm run bench:crud -- --backend pglite   one backend only (pglite | postgres)
 *   npm run bench:crud -- --op list          one operation only (create | list | retrieve)
 *   npm run bench:crud -- --cpu-prof DIR     run the server children under `node --cpu-prof`
 *
 * Environment: BENCH_SECONDS (measured seconds per case, default 5), BENCH_WARMUP_SECONDS (default 1),
 * BENCH_CONNECTIONS (default "1,32"), DATABASE_URL (adds the PostgreSQL backend).
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import {
  AUTH,
  cleanup,
  cpuMeter,
  createBenchDatabase,
  envPositive,
  installCleanupHandlers,
  machine,
  MASTER_KEY,
  parseIntList,
  percentile,
  progress,
  selectBackends,
  sourceRevision,
  startServer,
  table,
  type Backend,
  type ServerChild,
} from './lib.js';

// ---- autocannon (v9 ships no types; only what is used here is declared)

interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}
interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining?: number;
  timeout?: number;
  requests?: AutocannonRequest[];
}
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  resets: number;
  '2xx': number;
  statusCodeStats: Record<string, { count: number }>;
  requests: { total: number; sent: number; average: number };
  latency: { p50: number; p99: number };
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTime: number) => void): void;
  on(event: 'reqError', listener: (error: Error) => void): void;
  stop(): void;
}
type Autocannon = (options: AutocannonOptions, done: (error: Error | null, result: AutocannonResult) => void) => AutocannonInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

// ---- settings

const { values: flags } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    backend: { type: 'string', multiple: true },
    op: { type: 'string', multiple: true },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(
    'Usage: node dist/bench/crud.js [--json] [--backend pglite|postgres]... [--op create|list|retrieve]... [--cpu-prof DIR]\n',
  );
  process.exit(0);
}

const SECONDS = envPositive('BENCH_SECONDS', 5, false);
const WARMUP_SECONDS = envPositive('BENCH_WARMUP_SECONDS', 1, false);
const CONNECTIONS = parseIntList('BENCH_CONNECTIONS', process.env.BENCH_CONNECTIONS ?? '1,32', 1024);
const LIST_THREAD_MESSAGES = 120;
const STOP_TIMEOUT_MS = 15_000;
/**
 * Assistants must name a configured model. The benchmark never creates a run, so this deployment is
 * never called; its api_base is a closed local port all the same, so nothing could leave the machine.
 */
const MODEL = 'bench-model';
const CONFIG = {
  model_list: [
    { model_name: MODEL, litellm_params: { model: `openai/${MODEL}`, api_base: 'http://127.0.0.1:9/v1', api_key: 'sk-bench-unused' } },
  ],
};

const { backends: BACKENDS, databaseUrl } = selectBackends((flags.backend ?? []) as string[]);

installCleanupHandlers('servers');

// ---- fixtures

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(base + path, {
    method,
    headers: { ...AUTH, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} -> ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

interface Fixtures {
  assistantId: string;
  listThreadId: string;
  createThreadId: string;
}

async function prepareFixtures(base: string): Promise<Fixtures> {
  const assistant = await api<{ id: string }>(base, 'POST', '/v1/assistants', {
    model: MODEL,
    name: 'bench assistant',
    instructions: 'You answer questions about the benchmark.',
    tools: [{ type: 'code_interpreter' }],
    metadata: { purpose: 'bench' },
  });
  const listThread = await api<{ id: string }>(base, 'POST', '/v1/threads', { metadata: { purpose: 'bench-list' } });
  for (let index = 0; index < LIST_THREAD_MESSAGES; index++) {
    await api(base, 'POST', `/v1/threads/${listThread.id}/messages`, {
      role: index % 2 === 0 ? 'user' : 'assistant',
      content: `Fixture message number ${index}: a sentence of ordinary length to make the row realistic.`,
    });
  }
  const createThread = await api<{ id: string }>(base, 'POST', '/v1/threads', { metadata: { purpose: 'bench-create' } });

  // Check once that each measured request does what its name says.
  const page = await api<{ data: unknown[]; has_more: boolean }>(base, 'GET', `/v1/threads/${listThread.id}/messages?limit=20`);
  if (page.data.length !== 20 || !page.has_more) throw new Error(`list fixture returned ${page.data.length} messages, has_more=${page.has_more}`);
  const fetched = await api<{ id: string }>(base, 'GET', `/v1/assistants/${assistant.id}`);
  if (fetched.id !== assistant.id) throw new Error('assistant fixture did not round-trip');
  return { assistantId: assistant.id, listThreadId: listThread.id, createThreadId: createThread.id };
}

interface Operation {
  key: string;
  name: string;
  request(fixtures: Fixtures): AutocannonRequest;
}

const OPERATIONS: Operation[] = [
  {
    key: 'create',
    name: 'create message',
    request: (f) => ({
      method: 'POST',
      path: `/v1/threads/${f.createThreadId}/messages`,
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ role: 'user', content: 'What is the weather like in Lisbon today?' }),
    }),
  },
  {
    key: 'list',
    name: 'list messages (20)',
    request: (f) => ({ method: 'GET', path: `/v1/threads/${f.listThreadId}/messages?limit=20`, headers: AUTH }),
  },
  {
    key: 'retrieve',
    name: 'retrieve assistant',
    request: (f) => ({ method: 'GET', path: `/v1/assistants/${f.assistantId}`, headers: AUTH }),
  },
];
const requestedOps = (flags.op ?? []) as string[];
for (const key of requestedOps) {
  if (!OPERATIONS.some((operation) => operation.key === key)) {
    process.stderr.write(`bench: --op must be one of ${OPERATIONS.map((operation) => operation.key).join(', ')}, got '${key}'\n`);
    process.exit(2);
  }
}
const SELECTED_OPERATIONS = OPERATIONS.filter((operation) => requestedOps.length === 0 || requestedOps.includes(operation.key));

// ---- measuring

interface CaseResult {
  backend: Backend;
  operation: string;
  connections: number;
  seconds: number;
  requests: number;
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  errors: number;
  non2xx: number;
  /** Responses by status code, warm-up included (as are errors and non2xx). */
  statusCodes: Record<string, number>;
  firstError?: string;
  /** CPU used, in cores (1.0 = one core busy for the whole case). */
  serverCpu: number | null;
  loadgenCpu: number | null;
  hostCpu: number | null;
}

interface Run {
  result: AutocannonResult;
  latencies: Float64Array;
  latencyCount: number;
  firstError?: string;
}

function cannon(base: string, connections: number, seconds: number, request: AutocannonRequest): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    let latencies = new Float64Array(65_536);
    let latencyCount = 0;
    let firstError: string | undefined;
    const instance = autocannon(
      { url: base, connections, duration: seconds, pipelining: 1, timeout: 10, requests: [request] },
      (error, result) => (error ? reject(error) : resolveRun({ result, latencies, latencyCount, firstError })),
    );
    // autocannon's own histogram has 1 ms resolution; keep exact 2xx latencies for the percentiles.
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode < 200 || statusCode >= 300) return;
      if (latencyCount === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[latencyCount++] = responseTime;
    });
    instance.on('reqError', (error) => {
      firstError ??= error.message;
    });
  });
}

/** One non-2xx response, shown so a failing case explains itself. */
async function sampleFailure(base: string, request: AutocannonRequest): Promise<string | undefined> {
  try {
    const response = await fetch(base + request.path, { method: request.method, headers: request.headers, body: request.body });
    if (response.ok) return undefined;
    return `${response.status} ${(await response.text()).slice(0, 300)}`;
  } catch (error) {
    return String(error);
  }
}

async function measure(server: ServerChild, operation: Operation, fixtures: Fixtures, connections: number): Promise<CaseResult> {
  const request = operation.request(fixtures);
  const warmup = await cannon(server.url, connections, WARMUP_SECONDS, request);

  const meter = cpuMeter({ server: server.pid });
  const run = await cannon(server.url, connections, SECONDS, request);
  const cpu = meter();

  const { result } = run;
  const latencies = run.latencies.subarray(0, run.latencyCount);
  const errors = result.errors + result.timeouts + warmup.result.errors + warmup.result.timeouts;
  const non2xx = result.non2xx + warmup.result.non2xx;
  const statusCodes: Record<string, number> = {};
  for (const stats of [warmup.result.statusCodeStats, result.statusCodeStats]) {
    for (const [code, { count }] of Object.entries(stats)) statusCodes[code] = (statusCodes[code] ?? 0) + count;
  }
  let firstError = run.firstError ?? warmup.firstError;
  if (firstError === undefined && non2xx > 0) firstError = await sampleFailure(server.url, request);
  const round = (value: number | null, digits: number) => (value === null ? null : Number(value.toFixed(digits)));
  return {
    backend: server.backend,
    operation: operation.name,
    connections,
    seconds: result.duration,
    requests: result.requests.total,
    requestsPerSecond: Math.round(result.requests.total / result.duration),
    p50Ms: round(percentile(latencies, 0.5), 3),
    p99Ms: round(percentile(latencies, 0.99), 3),
    errors,
    non2xx,
    statusCodes,
    ...(firstError === undefined ? {} : { firstError }),
    serverCpu: round(cpu.server, 2),
    loadgenCpu: round(cpu.gen, 2),
    hostCpu: round(cpu.host, 2),
  };
}

// ---- output

function resultTable(rows: CaseResult[]): string {
  const header = ['backend', 'operation', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'srv cpu', 'gen cpu', 'host cpu'];
  const cell = (value: number | null, digits = 2) => (value === null ? '-' : value.toFixed(digits));
  const body = rows.map((row) => [
    row.backend,
    row.operation,
    String(row.connections),
    String(row.requestsPerSecond),
    cell(row.p50Ms),
    cell(row.p99Ms),
    String(row.errors),
    String(row.non2xx),
    cell(row.serverCpu),
    cell(row.loadgenCpu),
    cell(row.hostCpu),
  ]);
  return table(header, body, 2);
}

// ---- main

async function main(): Promise<number> {
  const environment = {
    revision: sourceRevision(),
    ...machine(),
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    connections: CONNECTIONS,
    listThreadMessages: LIST_THREAD_MESSAGES,
    postgres: null as string | null,
  };
  const results: CaseResult[] = [];
  const failures: Array<{ backend: Backend; error: string }> = [];

  for (const backend of BACKENDS) {
    let server: ServerChild | undefined;
    try {
      let childUrl: string | undefined;
      if (backend === 'postgres') {
        const database = await createBenchDatabase(databaseUrl!, `assistd_bench_${process.pid}`);
        childUrl = database.url;
        environment.postgres = database.version;
      }
      progress(`${backend}: starting server`);
      const started = Date.now();
      server = await startServer({
        backend,
        workDirPrefix: `assistd-bench-${backend}-`,
        config: CONFIG,
        env: { ASSISTD_MASTER_KEY: MASTER_KEY },
        databaseUrl: childUrl,
        cpuProfDir: flags['cpu-prof'],
        cpuProfName: `server-${backend}-${process.pid}.cpuprofile`,
        stopTimeoutMs: STOP_TIMEOUT_MS,
      });
      progress(`${backend}: listening on ${server.url} after ${((Date.now() - started) / 1000).toFixed(1)} s; preparing fixtures`);
      const fixtures = await prepareFixtures(server.url);
      for (const operation of SELECTED_OPERATIONS) {
        for (const connections of CONNECTIONS) {
          progress(`${backend}: ${operation.name} x${connections} (${WARMUP_SECONDS} s warm-up + ${SECONDS} s)`);
          const row = await measure(server, operation, fixtures, connections);
          results.push(row);
          if (row.errors + row.non2xx > 0) {
            progress(`${backend}: ${operation.name} x${connections}: ${row.errors} errors, ${row.non2xx} non-2xx; first: ${row.firstError ?? '?'}`);
          }
        }
      }
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      failures.push({ backend, error: message });
      progress(`${backend}: FAILED: ${message}`);
    } finally {
      await server?.stop();
    }
  }
  await cleanup();

  const failedRequests = results.filter((row) => row.errors + row.non2xx > 0);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ environment, results, failures }, null, 2)}\n`);
  } else {
    const lines = [
      `assistd CRUD benchmark (${environment.revision}): node ${environment.node} on ${environment.platform}, ${environment.cpus} CPUs (${environment.cpuModel})`,
      `${SECONDS} s per case after ${WARMUP_SECONDS} s warm-up; keep-alive, pipelining 1, 127.0.0.1; list thread holds ${LIST_THREAD_MESSAGES} messages` +
        (environment.postgres
          ? `; PostgreSQL ${environment.postgres}`
          : BACKENDS.includes('postgres')
            ? '; PostgreSQL did not start'
            : `; PostgreSQL not run (${databaseUrl === undefined ? 'DATABASE_URL unset' : 'not selected'})`),
      'errors and non-2xx include the warm-up; cpu columns are cores busy during the case: server process, load generator, whole host',
      '',
      results.length > 0 ? resultTable(results) : '(no results)',
    ];
    for (const row of failedRequests) {
      lines.push(
        `errors in ${row.backend} / ${row.operation} x${row.connections}: status codes ${JSON.stringify(row.statusCodes)}; ${row.firstError ?? ''}`,
      );
    }
    for (const failure of failures) lines.push(`FAILED ${failure.backend}: ${failure.error}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return failures.length > 0 || failedRequests.length > 0 ? 1 : 0;
}

main()
  .then((code) => {
    process.exitCode = code;
  })
  .catch(async (error: unknown) => {
    progress(`failed: ${(error as Error).stack ?? String(error)}`);
    await cleanup();
    process.exitCode = 1;
  });
