/**
 * Load benchmark: the whole Assistants flow, many clients at once, against a split deployment:
 * N API replicas (`assistd serve --no-worker`) and M workers (`assistd worker`) over one PostgreSQL
 * database (a fresh one per layout, dropped afterwards), all routing `*` (and the embedding model
 * text-embedding-3-small) to the scripted fake model, which runs in a child process of its own
 * (`node dist/bench/load.js --fake-model-child`) and answers by the requested model name. Every
 * process is a separate node, so none shares an event loop; all traffic stays on 127.0.0.1.
 *
 * Once per layout a file is uploaded and indexed into a vector store (by a worker) that every
 * assistant searches. Then BENCH_LOAD_CLIENTS clients (closed loop, client i on API replica
 * i mod N, node:http with a keep-alive agent) repeat, for BENCH_LOAD_SECONDS, one full flow:
 *
 *   1. create an assistant (a function tool and file_search over the shared store)
 *   2. create a thread, 3. add a message
 *   4. a streamed run, SSE read until [DONE]: time to the first thread.message.delta, and in all
 *   5. a non-streamed run, GET every 20 ms until terminal (executed by a worker)
 *   6. a function-call run: polled to requires_action, submit_tool_outputs, polled to completed
 *   7. a streamed file_search run: the model calls file_search, the server searches, the model answers
 *
 * A client that is past the deadline finishes its flow and stops; a failed step ends that flow.
 * After the last client a drain of BENCH_LOAD_DRAIN_SECONDS, then the runs table is read directly:
 * every run not in a terminal status is reported.
 *
 * Printed: full flows/s and requests/s (over the wall time from the first request to the last
 * client done), p50/p99/max per operation, errors (count and the first few, grouped), runs left
 * non-terminal, CPU (cores) of each process, and log lines the servers wrote. It measures and
 * prints; it never judges. The exit code is 1 only when something failed to start (the fake model,
 * a database, a server or a worker, the vector store setup).
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench:load
 *
 * Environment: DATABASE_URL (required; a database of its own is made per layout), BENCH_LOAD_CLIENTS
 * (200), BENCH_LOAD_SECONDS (30), BENCH_LOAD_LAYOUTS ("1+1,2+2": API replicas + workers, each
 * layout a fresh set of processes and database), BENCH_LOAD_DRAIN_SECONDS (5).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { TERMINAL_STATUSES } from '../src/engine/run-state.js';
import type { FakeTurn } from '../test/helpers/fake-model.js';
import {
  AUTH,
  cleanup,
  cleanups,
  cpuMeter,
  createBenchDatabase,
  envPositive,
  forkReadyChild,
  HOST,
  installCleanupHandlers,
  machine,
  MASTER_KEY,
  percentile,
  progress,
  readSseBlocks,
  sourceRevision,
  startServer,
  table,
  type Cpu,
  type ServerChild,
} from './lib.js';

const FAKE_CHILD_FLAG = '--fake-model-child';
const SELF = fileURLToPath(import.meta.url);

// ---- the scripted model: the turn by the requested model name, and by whether a tool answered last

const MODELS = {
  stream: 'bench-load-stream',
  poll: 'bench-load-poll',
  function: 'bench-load-function',
  fileSearch: 'bench-load-file-search',
} as const;
const EMBEDDING_MODEL = 'text-embedding-3-small';
const FUNCTION_NAME = 'get_weather';
const SEARCH_QUERY = 'lighthouse keeper storm lantern';
const words = (count: number, word: string) => Array.from({ length: count }, (_, index) => (index === 0 ? word : ` ${word}`));

function turnFor(body: { model?: unknown; messages?: { role?: string }[] } | null): FakeTurn {
  const model = String(body?.model);
  const afterTool = body?.messages?.at(-1)?.role === 'tool';
  switch (model) {
    case MODELS.stream:
      return { chunks: words(20, 'word') };
    case MODELS.poll:
      return { chunks: words(5, 'done') };
    case MODELS.function:
      return afterTool ? { text: 'It is 18 degrees in Paris.' } : { toolCalls: [{ name: FUNCTION_NAME, arguments: '{"city":"Paris"}' }] };
    case MODELS.fileSearch:
      return afterTool
        ? { text: 'The keeper lights the lantern before every storm 【0:0†handbook.txt】.' }
        : { toolCalls: [{ name: 'file_search', arguments: JSON.stringify({ queries: [SEARCH_QUERY] }) }] };
    default:
      return { status: 400, errorMessage: `bench fake model: unknown model '${model}'` };
  }
}

async function fakeModelChild(): Promise<void> {
  const { startFakeModel } = await import('../test/helpers/fake-model.js');
  const fake = await startFakeModel();
  fake.onRequest((request) => {
    // The fake keeps every request it saw; only the latest few are of any use here.
    if (fake.requests.length > 64) fake.requests.splice(0, fake.requests.length - 1);
    return turnFor(request.body);
  });
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(0), 2_000).unref();
    void fake.close().finally(() => process.exit(0));
  };
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.send!({ type: 'ready', url: fake.url });
}

if (process.argv[2] === FAKE_CHILD_FLAG) {
  await fakeModelChild();
} else {
  await benchMain().catch(async (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    await cleanup();
    process.exit(1);
  });
}

async function benchMain(): Promise<void> {
  // ---- settings

  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    process.stderr.write('bench: bench:load needs DATABASE_URL (API replicas and workers share a PostgreSQL database)\n');
    process.exit(2);
  }
  const CLIENTS = envPositive('BENCH_LOAD_CLIENTS', 200, true);
  const SECONDS = envPositive('BENCH_LOAD_SECONDS', 30, false);
  const DRAIN_SECONDS = envPositive('BENCH_LOAD_DRAIN_SECONDS', 5, false);
  const layoutsRaw = process.env.BENCH_LOAD_LAYOUTS || '1+1,2+2';
  const LAYOUTS = layoutsRaw.split(',').map((part) => {
    const match = /^\s*(\d+)\s*\+\s*(\d+)\s*$/.exec(part);
    const api = Number(match?.[1]);
    const workers = Number(match?.[2]);
    if (!match || api < 1 || workers < 1 || api > 16 || workers > 16) {
      process.stderr.write(`bench: BENCH_LOAD_LAYOUTS must list API+workers pairs from 1 to 16 each (e.g. "1+1,2+2"), got '${layoutsRaw}'\n`);
      process.exit(2);
    }
    return { api, workers, name: `${api}+${workers}` };
  });
  const POLL_EVERY_MS = 20;
  const REQUEST_TIMEOUT_MS = 60_000;
  const STREAM_TIMEOUT_MS = 120_000;
  const RUN_TIMEOUT_MS = 120_000;
  const STOP_TIMEOUT_MS = 20_000;

  installCleanupHandlers('children');
  const sleep = (delay: number) => new Promise((done) => setTimeout(done, delay));
  const ms = (value: number | null | undefined, digits = 1) => (value === null || value === undefined ? '-' : value.toFixed(digits));
  const cores = (value: number | null | undefined) => (value === null || value === undefined ? '-' : value.toFixed(2));

  // ---- HTTP client: one keep-alive agent; every request counted against the current layout

  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096 });
  let requestCount = 0;

  class HttpError extends Error {}

  function requestRaw(base: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) {
    requestCount++;
    return new Promise<{ status: number; text: string }>((resolveResponse, reject) => {
      const request = http.request(base + path, {
        method,
        agent,
        headers: { ...AUTH, ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) },
      });
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
      request.on('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`${method} ${path}: ${error.message}`));
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => {
          clearTimeout(timer);
          reject(new Error(`${method} ${path}: ${error.message}`));
        });
        response.on('end', () => {
          clearTimeout(timer);
          resolveResponse({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      request.end(body);
    });
  }

  async function api(base: string, method: string, path: string, body?: unknown): Promise<any> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const response = await requestRaw(base, method, path, payload, payload === undefined ? {} : { 'content-type': 'application/json' });
    if (response.status < 200 || response.status >= 300) throw new HttpError(`${method} ${path} -> ${response.status}: ${response.text.slice(0, 300)}`);
    return JSON.parse(response.text);
  }

  interface StreamOutcome {
    ttftMs: number | null;
    totalMs: number;
    /** file_search results seen in completed tool-call steps. */
    searchResults: number;
    searchCalls: number;
  }

  /** A streamed run: SSE parsed as it arrives; rejects unless 200, thread.run.completed and [DONE], with no error event. */
  function streamedRun(base: string, path: string, body: unknown): Promise<StreamOutcome> {
    requestCount++;
    return new Promise((resolveOutcome, reject) => {
      const payload = JSON.stringify(body);
      const started = performance.now();
      const outcome: StreamOutcome = { ttftMs: null, totalMs: 0, searchResults: 0, searchCalls: 0 };
      let lastRunEvent: string | null = null;
      let done = false;
      let errorEvent: string | null = null;
      let settled = false;
      const settle = (failure?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outcome.totalMs = performance.now() - started;
        if (failure === undefined && errorEvent) failure = `error event: ${errorEvent}`;
        if (failure === undefined && lastRunEvent !== 'thread.run.completed') failure = `did not complete (last run event ${lastRunEvent ?? 'none'})`;
        if (failure === undefined && !done) failure = 'no [DONE]';
        if (failure === undefined) resolveOutcome(outcome);
        else reject(new Error(`POST ${path} (stream): ${failure}`));
      };
      const request = http.request(base + path, {
        method: 'POST',
        agent,
        headers: { ...AUTH, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), accept: 'text/event-stream' },
      });
      const timer = setTimeout(() => request.destroy(new Error(`no end within ${STREAM_TIMEOUT_MS} ms`)), STREAM_TIMEOUT_MS);
      const onBlock = (block: string) => {
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += (data === '' ? '' : '\n') + line.slice(line.startsWith('data: ') ? 6 : 5);
        }
        if (event === 'thread.message.delta') {
          outcome.ttftMs ??= performance.now() - started;
        } else if (event === 'done') {
          if (data === '[DONE]') done = true;
        } else if (event === 'error') {
          errorEvent ??= data.slice(0, 300);
        } else if (event === 'thread.run.step.completed') {
          const step = JSON.parse(data) as { step_details?: { type?: string; tool_calls?: { type?: string; file_search?: { results?: unknown[] } }[] } };
          for (const call of step.step_details?.tool_calls ?? []) {
            if (call.type !== 'file_search') continue;
            outcome.searchCalls++;
            outcome.searchResults += call.file_search?.results?.length ?? 0;
          }
        } else if (event.startsWith('thread.run.') && !event.startsWith('thread.run.step')) {
          lastRunEvent = event;
        }
      };
      request.on('error', (error) => settle(error.message));
      request.on('response', (response) => {
        response.setEncoding('utf8');
        let buffer = '';
        if (response.statusCode !== 200) {
          response.on('data', (chunk: string) => {
            if (buffer.length < 2000) buffer += chunk;
          });
          response.on('end', () => settle(`HTTP ${response.statusCode}: ${buffer.slice(0, 300)}`));
          response.on('error', (error) => settle(error.message));
          return;
        }
        readSseBlocks(response, onBlock, () => settle());
        response.on('error', (error) => settle(error.message));
        response.on('close', () => settle('connection closed before the body ended'));
      });
      request.end(payload);
    });
  }

  /** GET the run every POLL_EVERY_MS until its status is one of `until` (or terminal); returns the run. */
  async function pollRun(base: string, threadId: string, run: any, until: string[]): Promise<any> {
    const started = performance.now();
    while (!until.includes(run.status)) {
      if ((TERMINAL_STATUSES as readonly string[]).includes(run.status)) {
        throw new Error(`run ended ${run.status} waiting for ${until.join('/')}: ${JSON.stringify(run.last_error ?? run.incomplete_details ?? null).slice(0, 300)}`);
      }
      if (performance.now() - started > RUN_TIMEOUT_MS) throw new Error(`run ${run.id} still ${run.status} after ${RUN_TIMEOUT_MS} ms (waiting for ${until.join('/')})`);
      await sleep(POLL_EVERY_MS);
      run = await api(base, 'GET', `/v1/threads/${threadId}/runs/${run.id}`);
    }
    return run;
  }

  // ---- children

  function startFakeChild(): Promise<{ url: string; pid: number | undefined }> {
    return forkReadyChild(SELF, [FAKE_CHILD_FLAG], STOP_TIMEOUT_MS, 'fake model', (reason) => current?.errors.push(reason));
  }

  interface Proc {
    label: string;
    child: ServerChild;
    /** Log lines written while `log.capture` is on (from when every process is up until they are stopped). */
    log: { lines: string[]; count: number; capture: boolean };
  }

  /** What a server prints once after it is ready (lib.ts's startServer drops only its storage and model lines). */
  const STARTUP_BANNER = /^assistd: (no worker here|models by provider prefix|file_search: |code_interpreter: )/;

  async function startProc(label: string, command: 'serve' | 'worker', fakeUrl: string, databaseUrl: string): Promise<Proc> {
    const log = { lines: [] as string[], count: 0, capture: false };
    const upstream = { api_base: fakeUrl, api_key: 'x' };
    const child = await startServer({
      backend: 'postgres',
      workDirPrefix: `assistd-bench-load-${label.replace('#', '')}-`,
      config: {
        model_list: [
          { model_name: '*', litellm_params: { model: 'openai/*', ...upstream } },
          { model_name: EMBEDDING_MODEL, litellm_params: { model: `openai/${EMBEDDING_MODEL}`, ...upstream } },
        ],
        general_settings: { master_key: MASTER_KEY },
      },
      dropEnv: /^OPENAI_BASE_URL$/,
      databaseUrl,
      cpuProfDir: undefined,
      cpuProfName: '',
      stopTimeoutMs: STOP_TIMEOUT_MS,
      command,
      extraArgs: command === 'serve' ? ['--no-worker'] : [],
      onLog: (line) => {
        if (!log.capture || STARTUP_BANNER.test(line)) return;
        log.count++;
        if (log.lines.length < 10) log.lines.push(line.slice(0, 400));
      },
      onUnexpectedExit: (how) => current?.errors.push(`${label} exited unexpectedly (${how})`),
    });
    return { label, child, log };
  }

  // ---- one layout

  const OPERATIONS = [
    'create assistant',
    'create thread',
    'add message',
    'stream: first delta',
    'stream: total',
    'polled run to completed',
    'function call round trip',
    'function: to requires_action',
    'function: submit to completed',
    'file_search run (stream)',
    'full flow',
  ] as const;
  type Operation = (typeof OPERATIONS)[number];

  interface LayoutResult {
    name: string;
    api: number;
    workers: number;
    setupMs: number;
    indexMs: number;
    wallMs: number;
    flows: number;
    requests: number;
    samples: Map<Operation, number[]>;
    errors: string[];
    searchRunsWithoutResults: number;
    nonTerminal: { status: string; model: string; count: number; examples: string }[];
    runsByStatus: string;
    cpu: { label: string; pid: number | undefined; cores: number | null }[];
    baseCpu: Cpu | null;
    logs: { label: string; count: number; lines: string[] }[];
    failedToStart?: string;
  }

  let current: LayoutResult | undefined;

  async function runLayout(index: number, layout: (typeof LAYOUTS)[number], fake: { url: string; pid: number | undefined }): Promise<LayoutResult> {
    const result: LayoutResult = {
      name: layout.name,
      api: layout.api,
      workers: layout.workers,
      setupMs: 0,
      indexMs: 0,
      wallMs: 0,
      flows: 0,
      requests: 0,
      samples: new Map(OPERATIONS.map((operation) => [operation, []])),
      errors: [],
      searchRunsWithoutResults: 0,
      nonTerminal: [],
      runsByStatus: '',
      cpu: [],
      baseCpu: null,
      logs: [],
    };
    current = result;
    const procs: Proc[] = [];
    let setupDone = false;
    try {
      const setupStarted = performance.now();
      const database = await createBenchDatabase(adminUrl!, `assistd_bench_load_${process.pid}_${index}`);
      postgresVersion = database.version;
      progress(`${layout.name}: starting ${layout.api} API replica(s) and ${layout.workers} worker(s)`);
      // The first process migrates the fresh database alone; the others start together.
      procs.push(await startProc('api#1', 'serve', fake.url, database.url));
      procs.push(
        ...(await Promise.all([
          ...Array.from({ length: layout.api - 1 }, (_, n) => startProc(`api#${n + 2}`, 'serve', fake.url, database.url)),
          ...Array.from({ length: layout.workers }, (_, n) => startProc(`worker#${n + 1}`, 'worker', fake.url, database.url)),
        ])),
      );
      const apis = procs.filter((proc) => proc.label.startsWith('api#'));
      for (const proc of procs) proc.log.capture = true;
      result.setupMs = performance.now() - setupStarted;

      // The shared vector store: one uploaded file, indexed by a worker.
      const indexStarted = performance.now();
      const base0 = apis[0]!.child.url;
      const boundary = `----assistd-bench-${process.pid}`;
      const document = handbook();
      const multipart = Buffer.concat([
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n`),
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="handbook.txt"\r\ncontent-type: text/plain\r\n\r\n`),
        Buffer.from(document),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const uploaded = await requestRaw(base0, 'POST', '/v1/files', multipart, { 'content-type': `multipart/form-data; boundary=${boundary}` });
      if (uploaded.status !== 200) throw new Error(`POST /v1/files -> ${uploaded.status}: ${uploaded.text.slice(0, 300)}`);
      const file = JSON.parse(uploaded.text) as { id: string };
      let store = await api(base0, 'POST', '/v1/vector_stores', { name: 'bench-load', file_ids: [file.id] });
      const indexDeadline = performance.now() + 60_000;
      while (store.file_counts?.completed !== 1) {
        if (store.file_counts?.failed > 0 || store.file_counts?.cancelled > 0) throw new Error(`indexing the vector store failed: ${JSON.stringify(store.file_counts)}`);
        if (performance.now() > indexDeadline) throw new Error(`vector store not indexed within 60 s: ${JSON.stringify(store.file_counts)}`);
        await sleep(50);
        store = await api(base0, 'GET', `/v1/vector_stores/${store.id}`);
      }
      result.indexMs = performance.now() - indexStarted;
      progress(`${layout.name}: up in ${(result.setupMs / 1000).toFixed(1)} s; ${document.length} B file indexed in ${ms(result.indexMs, 0)} ms`);

      const assistantBody = {
        model: MODELS.stream,
        name: 'bench-load',
        instructions: 'You are a helpful assistant. Answer briefly.',
        tools: [
          {
            type: 'function',
            function: {
              name: FUNCTION_NAME,
              description: 'The current weather in a city.',
              parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
            },
          },
          { type: 'file_search' },
        ],
        tool_resources: { file_search: { vector_store_ids: [store.id] } },
      };

      /** One full flow on one API replica; every step timed into `record`. */
      async function flow(base: string, record: (operation: Operation, value: number) => void): Promise<void> {
        const flowStarted = performance.now();
        let started = performance.now();
        const assistant = await api(base, 'POST', '/v1/assistants', assistantBody);
        record('create assistant', performance.now() - started);
        started = performance.now();
        const thread = await api(base, 'POST', '/v1/threads', {});
        record('create thread', performance.now() - started);
        started = performance.now();
        await api(base, 'POST', `/v1/threads/${thread.id}/messages`, { role: 'user', content: 'What is the weather in Paris, and what does the handbook say about storms?' });
        record('add message', performance.now() - started);
        const runs = `/v1/threads/${thread.id}/runs`;

        const streamed = await streamedRun(base, runs, { assistant_id: assistant.id, model: MODELS.stream, stream: true });
        record('stream: first delta', streamed.ttftMs ?? streamed.totalMs);
        record('stream: total', streamed.totalMs);

        started = performance.now();
        await pollRun(base, thread.id, await api(base, 'POST', runs, { assistant_id: assistant.id, model: MODELS.poll }), ['completed']);
        record('polled run to completed', performance.now() - started);

        started = performance.now();
        let run = await pollRun(base, thread.id, await api(base, 'POST', runs, { assistant_id: assistant.id, model: MODELS.function }), ['requires_action']);
        const calls = (run.required_action?.submit_tool_outputs?.tool_calls ?? []) as { id: string; function: { name: string } }[];
        if (calls.length === 0 || calls.some((call) => call.function.name !== FUNCTION_NAME)) throw new Error(`requires_action without a ${FUNCTION_NAME} call: ${JSON.stringify(run.required_action).slice(0, 300)}`);
        const submitted = performance.now();
        record('function: to requires_action', submitted - started);
        run = await api(base, 'POST', `${runs}/${run.id}/submit_tool_outputs`, { tool_outputs: calls.map((call) => ({ tool_call_id: call.id, output: '{"celsius":18}' })) });
        await pollRun(base, thread.id, run, ['completed']);
        record('function: submit to completed', performance.now() - submitted);
        record('function call round trip', performance.now() - started);

        const searched = await streamedRun(base, runs, { assistant_id: assistant.id, model: MODELS.fileSearch, stream: true });
        if (searched.searchCalls === 0 || searched.searchResults === 0) result.searchRunsWithoutResults++;
        record('file_search run (stream)', searched.totalMs);
        record('full flow', performance.now() - flowStarted);
      }

      // Warm-up: one flow per replica, not counted (a failure is an error of the layout, not a start failure).
      setupDone = true;
      await Promise.all(
        apis.map((proc) => flow(proc.child.url, () => {}).catch((error: unknown) => void result.errors.push(`warm-up: ${(error as Error).message}`))),
      );
      await sleep(500);

      progress(`${layout.name}: ${CLIENTS} clients for ${SECONDS} s`);
      const meters = procs.map((proc) => ({ proc, meter: cpuMeter({ server: proc.child.pid }) }));
      const baseMeter = cpuMeter({ model: fake.pid });
      const requestsBefore = requestCount;
      const loadStarted = performance.now();
      const deadline = loadStarted + SECONDS * 1000;
      const record = (operation: Operation, value: number) => result.samples.get(operation)!.push(value);
      await Promise.all(
        Array.from({ length: CLIENTS }, async (_, client) => {
          const base = apis[client % apis.length]!.child.url;
          while (performance.now() < deadline) {
            try {
              await flow(base, record);
              result.flows++;
            } catch (error) {
              result.errors.push((error as Error).message);
              await sleep(100); // a failing server is not hammered in a tight loop
            }
          }
        }),
      );
      result.wallMs = performance.now() - loadStarted;
      result.requests = requestCount - requestsBefore;
      result.baseCpu = baseMeter();
      result.cpu = meters.map(({ proc, meter }) => ({ label: proc.label, pid: proc.child.pid, cores: meter().server }));
      progress(`${layout.name}: ${result.flows} flows in ${(result.wallMs / 1000).toFixed(1)} s, ${result.errors.length} errors; draining ${DRAIN_SECONDS} s`);

      await sleep(DRAIN_SECONDS * 1000);
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const terminal = [...TERMINAL_STATUSES];
        const left = await client.query<{ status: string; model: string; count: string; examples: string }>(
          `SELECT status, model, count(*)::text AS count, string_agg(id, ' ' ORDER BY created_at) AS examples
             FROM runs WHERE status <> ALL($1::text[]) GROUP BY status, model ORDER BY count(*) DESC`,
          [terminal],
        );
        result.nonTerminal = left.rows.map((row) => ({ status: row.status, model: row.model, count: Number(row.count), examples: row.examples.split(' ').slice(0, 3).join(' ') }));
        const all = await client.query<{ status: string; count: string }>('SELECT status, count(*)::text AS count FROM runs GROUP BY status ORDER BY count(*) DESC');
        result.runsByStatus = all.rows.map((row) => `${row.status} ${row.count}`).join(', ');
      } finally {
        await client.end();
      }
    } catch (error) {
      // Past the set-up (the drain's query), a failure is one more error; before it, the layout did not start.
      if (setupDone) result.errors.push(`after the load: ${(error as Error).message}`);
      else result.failedToStart = (error as Error).message;
      progress(`${layout.name}: ${(error as Error).message}`);
    } finally {
      current = undefined;
      for (const proc of procs) proc.log.capture = false;
      await Promise.all(procs.map((proc) => proc.child.stop()));
      result.logs = procs.filter((proc) => proc.log.count > 0).map((proc) => ({ label: proc.label, count: proc.log.count, lines: proc.log.lines }));
    }
    return result;
  }

  /** A plain-text document of some 40 KB, so the store holds several chunks; the searched words are in a few of them. */
  function handbook(): string {
    const paragraphs: string[] = [];
    for (let index = 0; index < 120; index++) {
      paragraphs.push(
        index % 10 === 3
          ? `Section ${index}. The lighthouse keeper lights the lantern at dusk and before every storm, checks the lens for salt, and writes the weather in the log.`
          : `Section ${index}. The harbour office records arrivals and departures, the tides of the day, the cargo of each vessel and the fees paid at the quay, in ledger ${index}.`,
      );
      paragraphs.push('Rules for the quay: ropes are coiled, gangways are lifted at night, and no fire is lit on the wooden pier. '.repeat(2).trim());
    }
    return paragraphs.join('\n\n');
  }

  // ---- main

  let postgresVersion: string | null = null;
  const results: LayoutResult[] = [];
  let fake: { url: string; pid: number | undefined };
  try {
    progress('starting the fake model child');
    fake = await startFakeChild();
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    await cleanup();
    process.exit(1);
  }
  for (const [index, layout] of LAYOUTS.entries()) results.push(await runLayout(index, layout, fake));
  await cleanup();
  agent.destroy();

  // ---- report

  const environment = machine();
  const out: string[] = [];
  out.push(
    `assistd load benchmark (${sourceRevision()}): node ${environment.node} on ${environment.platform}, ${environment.cpus} CPUs (${environment.cpuModel}); PostgreSQL ${postgresVersion ?? '?'} (fresh database per layout)`,
  );
  out.push(
    `${CLIENTS} concurrent clients (closed loop, round-robin over the API replicas) for ${SECONDS} s per layout; polled runs GET every ${POLL_EVERY_MS} ms; drain ${DRAIN_SECONDS} s; fake model in its own process (pid ${fake.pid}), instant answers`,
  );
  out.push(
    'flow: create assistant, thread, message; streamed run (20 deltas); polled run; function call (requires_action -> submit_tool_outputs -> completed, polled); streamed file_search run (search over one indexed 40 KB file)',
  );
  out.push('layout N+M: N x `assistd serve --no-worker` + M x `assistd worker` on one database; throughput over the wall time from the first request to the last client done');
  out.push('');
  out.push(
    table(
      ['layout', 'start s', 'index ms', 'flows', 'flows/s', 'requests', 'req/s', 'errors', 'non-terminal runs', 'file_search w/o results', 'runs in the table'],
      results.map((row) =>
        row.failedToStart
          ? [row.name, '-', '-', '-', '-', '-', '-', '-', '-', '-', `FAILED: ${row.failedToStart.split('\n')[0]!.slice(0, 160)}`]
          : [
              row.name,
              (row.setupMs / 1000).toFixed(1),
              ms(row.indexMs, 0),
              String(row.flows),
              (row.flows / (row.wallMs / 1000)).toFixed(2),
              String(row.requests),
              (row.requests / (row.wallMs / 1000)).toFixed(0),
              String(row.errors.length),
              String(row.nonTerminal.reduce((sum, entry) => sum + entry.count, 0)),
              String(row.searchRunsWithoutResults),
              row.runsByStatus,
            ],
      ),
    ),
  );
  const ran = results.filter((row) => !row.failedToStart);
  if (ran.length > 0) {
    out.push('');
    out.push('latency per operation, ms (from sending the request; polled figures include the polling)');
    const header = ['operation'];
    for (const row of ran) header.push(`${row.name} n`, `${row.name} p50`, `${row.name} p99`, `${row.name} max`);
    out.push(
      table(
        header,
        OPERATIONS.map((operation) => {
          const cells: string[] = [operation];
          for (const row of ran) {
            const values = row.samples.get(operation)!;
            cells.push(String(values.length), ms(percentile(values, 0.5)), ms(percentile(values, 0.99)), ms(percentile(values, 1)));
          }
          return cells;
        }),
      ),
    );
    out.push('');
    out.push('CPU during the load, cores (1.00 = one core busy all the time); "rest of host" is mostly PostgreSQL');
    const labels = [...new Set(ran.flatMap((row) => row.cpu.map((entry) => entry.label)))];
    const cpuRows = labels.map((label) => [label, ...ran.map((row) => cores(row.cpu.find((entry) => entry.label === label)?.cores))]);
    cpuRows.push(['fake model', ...ran.map((row) => cores(row.baseCpu?.model))]);
    cpuRows.push(['load generator', ...ran.map((row) => cores(row.baseCpu?.gen))]);
    cpuRows.push([
      'rest of host',
      ...ran.map((row) => {
        const host = row.baseCpu?.host;
        if (host === null || host === undefined) return '-';
        const known = row.cpu.reduce((sum, entry) => sum + (entry.cores ?? 0), 0) + (row.baseCpu?.model ?? 0) + (row.baseCpu?.gen ?? 0);
        return cores(host - known);
      }),
    ]);
    cpuRows.push(['whole host', ...ran.map((row) => cores(row.baseCpu?.host))]);
    out.push(table(['process', ...ran.map((row) => row.name)], cpuRows));
  }
  for (const row of results) {
    out.push('');
    if (row.failedToStart) {
      out.push(`${row.name}: FAILED TO START OR SET UP:`);
      out.push(...row.failedToStart.split('\n').map((line) => `  ${line}`));
    }
    if (row.errors.length === 0 && !row.failedToStart) out.push(`${row.name}: no errors`);
    else if (row.errors.length > 0) {
      const kinds = new Map<string, number>();
      for (const error of row.errors) {
        const key = error.replace(/(asst|run|msg|thread|step|call|file|vs)_[A-Za-z0-9]+/g, '$1_…').slice(0, 300);
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
      }
      out.push(`${row.name}: ${row.errors.length} errors, ${kinds.size} kind(s); the most frequent:`);
      for (const [kind, count] of [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 8)) out.push(`  ${count}x ${kind}`);
      out.push('  first errors as they came:');
      for (const error of row.errors.slice(0, 3)) out.push(`    ${error.slice(0, 400)}`);
    }
    if (row.nonTerminal.length > 0) {
      out.push(`${row.name}: runs not terminal ${DRAIN_SECONDS} s after the last client:`);
      for (const entry of row.nonTerminal) out.push(`  ${entry.count}x ${entry.status} (model ${entry.model}), e.g. ${entry.examples}`);
    } else if (!row.failedToStart) out.push(`${row.name}: every run terminal after the drain`);
    for (const log of row.logs) {
      out.push(`${row.name} ${log.label} wrote ${log.count} log line(s) between start-up and stop; first ${log.lines.length}:`);
      out.push(...log.lines.map((line) => `  ${line}`));
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
  process.exitCode = results.some((row) => row.failedToStart) ? 1 : 0;
}
