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
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

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

function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`bench: ${name} must be a positive number, got '${raw}'\n`);
    process.exit(2);
  }
  return value;
}

const SECONDS = positiveNumber('BENCH_SECONDS', 5);
const WARMUP_SECONDS = positiveNumber('BENCH_WARMUP_SECONDS', 1);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '1,32').split(',').map((part) => {
  const value = Number(part.trim());
  if (!Number.isInteger(value) || value < 1 || value > 1024) {
    process.stderr.write(`bench: BENCH_CONNECTIONS must list integers from 1 to 1024, got '${process.env.BENCH_CONNECTIONS}'\n`);
    process.exit(2);
  }
  return value;
});
const LIST_THREAD_MESSAGES = 120;
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const MASTER_KEY = `sk-bench-${randomBytes(12).toString('hex')}`;
const AUTH = { authorization: `Bearer ${MASTER_KEY}` };
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

type Backend = 'pglite' | 'postgres';
const databaseUrl = process.env.DATABASE_URL || undefined;
const requested = (flags.backend ?? []) as string[];
for (const name of requested) {
  if (name !== 'pglite' && name !== 'postgres') {
    process.stderr.write(`bench: --backend must be pglite or postgres, got '${name}'\n`);
    process.exit(2);
  }
}
const BACKENDS: Backend[] = (['pglite', 'postgres'] as const).filter(
  (backend) => (requested.length === 0 || requested.includes(backend)) && (backend === 'pglite' || databaseUrl !== undefined),
);
if (requested.includes('postgres') && databaseUrl === undefined) {
  process.stderr.write('bench: --backend postgres needs DATABASE_URL\n');
  process.exit(2);
}

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

// ---- cleanup: every child and database is registered here so any exit path releases it

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const task of cleanups.splice(0).reverse()) await task().catch((error: unknown) => progress(`cleanup: ${String(error)}`));
  })();
  return cleaning;
}
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal} received, stopping servers`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- CPU accounting (Linux /proc; reported as '-' elsewhere)

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* keep the usual 100 */
}

/** CPU seconds a process has used (user + system), or undefined without /proc. */
function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return undefined;
  }
}

/** Busy and total CPU seconds across the whole host. */
function hostCpuSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const numbers = line.trim().split(/\s+/).slice(1).map(Number);
    const total = numbers.slice(0, 8).reduce((sum, value) => sum + value, 0);
    const idle = (numbers[3] ?? 0) + (numbers[4] ?? 0);
    return { busy: (total - idle) / clockTicks, total: total / clockTicks };
  } catch {
    return undefined;
  }
}

/** The commit the server was built from, marked dirty when src/ has uncommitted changes. */
function sourceRevision(): string {
  try {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return dirty.trim() === '' ? commit : `${commit}+dirty src`;
  } catch {
    return 'unknown';
  }
}

// ---- the server child

interface ServerChild {
  backend: Backend;
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startServer(backend: Backend, childDatabaseUrl: string | undefined): Promise<ServerChild> {
  const workDir = mkdtempSync(join(tmpdir(), `assistd-bench-${backend}-`));
  cleanups.push(async () => rmSync(workDir, { recursive: true, force: true }));
  const dataDir = join(workDir, 'data');
  const configFile = join(workDir, 'config.yaml');
  writeFileSync(configFile, JSON.stringify(CONFIG, null, 2)); // JSON is YAML
  const env: NodeJS.ProcessEnv = { ...process.env, ASSISTD_MASTER_KEY: MASTER_KEY };
  delete env.DATABASE_URL;
  delete env.ASSISTD_DATA_DIR;
  // Only the configured deployment: no provider picked up from the bench's own environment.
  for (const name of Object.keys(env)) if (/_API_(KEY|BASE)$/.test(name)) delete env[name];
  if (childDatabaseUrl) env.DATABASE_URL = childDatabaseUrl;
  const nodeArgs: string[] = [];
  if (flags['cpu-prof']) {
    const dir = resolve(flags['cpu-prof']);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=server-${backend}-${process.pid}.cpuprofile`);
  }
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'serve', '--config', configFile, '--port', '0', '--host', HOST, '--data-dir', dataDir], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let exited = false;
  const exitedPromise = new Promise<void>((done) =>
    child.once('exit', () => {
      exited = true;
      children.delete(child);
      done();
    }),
  );
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exitedPromise;
    clearTimeout(timer);
  };
  cleanups.push(stop);

  const output: string[] = [];
  const remember = (line: string) => {
    output.push(line);
    if (output.length > 40) output.shift();
  };
  createInterface({ input: child.stderr! }).on('line', remember);
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    lines.on('line', (line) => {
      remember(line);
      const match = /^assistd: listening on http:\/\/(\S+):(\d+) \(bound to (\S+)\)$/.exec(line);
      if (!match) return;
      clearTimeout(timer);
      if (match[1] !== HOST) reject(new Error(`server listens on ${match[1]}, expected ${HOST}`));
      else resolveUrl(`http://${HOST}:${match[2]}`);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${signal ?? `code ${code}`}) before listening`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw new Error(`${(error as Error).message}\n--- server output ---\n${output.join('\n')}`);
  });
  // Both line readers stay attached, so the pipes keep draining and a chatty server never blocks.
  return { backend, url, child, stop };
}

// ---- PostgreSQL: one database of its own per run

async function createBenchDatabase(url: string): Promise<{ url: string; version: string }> {
  const name = `assistd_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  let version: string;
  try {
    version = (await admin.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => client.query(`DROP DATABASE IF EXISTS "${name}"`));
    } finally {
      await client.end();
    }
  });
  const childUrl = new URL(url);
  childUrl.pathname = `/${name}`;
  return { url: childUrl.toString(), version };
}

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

function percentile(sorted: Float64Array, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
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

  const serverBefore = processCpuSeconds(server.child.pid);
  const loadgenBefore = process.cpuUsage();
  const hostBefore = hostCpuSeconds();
  const startedAt = process.hrtime.bigint();
  const run = await cannon(server.url, connections, SECONDS, request);
  const wall = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const serverAfter = processCpuSeconds(server.child.pid);
  const loadgen = process.cpuUsage(loadgenBefore);
  const hostAfter = hostCpuSeconds();

  const { result } = run;
  const sorted = run.latencies.subarray(0, run.latencyCount).sort();
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
    p50Ms: round(percentile(sorted, 0.5), 3),
    p99Ms: round(percentile(sorted, 0.99), 3),
    errors,
    non2xx,
    statusCodes,
    ...(firstError === undefined ? {} : { firstError }),
    serverCpu: serverBefore === undefined || serverAfter === undefined ? null : round((serverAfter - serverBefore) / wall, 2),
    loadgenCpu: round((loadgen.user + loadgen.system) / 1e6 / wall, 2),
    hostCpu: hostBefore && hostAfter ? round((hostAfter.busy - hostBefore.busy) / wall, 2) : null,
  };
}

// ---- output

function table(rows: CaseResult[]): string {
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
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((row) => row[column]!.length)));
  const numeric = (column: number) => column >= 2;
  const format = (row: string[]) =>
    row.map((value, column) => (numeric(column) ? value.padStart(widths[column]!) : value.padEnd(widths[column]!))).join('  ');
  return [format(header), widths.map((width) => '-'.repeat(width)).join('  '), ...body.map(format)].join('\n');
}

// ---- main

async function main(): Promise<number> {
  const environment = {
    revision: sourceRevision(),
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
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
        const database = await createBenchDatabase(databaseUrl!);
        childUrl = database.url;
        environment.postgres = database.version;
      }
      progress(`${backend}: starting server`);
      const started = Date.now();
      server = await startServer(backend, childUrl);
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
      results.length > 0 ? table(results) : '(no results)',
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
