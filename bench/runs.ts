/**
 * Run-engine benchmark: what the Assistants layer adds on top of the model it runs on. Three
 * processes, so no two of them share an event loop:
 *
 *   - the fake model (test/helpers/fake-model.ts) in a child process of its own
 *     (`node dist/bench/runs.js --fake-model-child`), answering by the requested model name;
 *   - the real server, `node dist/src/cli.js serve`, as a child process routing `*` to the fake model;
 *   - this process, the load generator (node:http with a keep-alive http.Agent, SSE parsed as it arrives).
 *
 * Measured, on embedded PGlite and, when DATABASE_URL is set, on PostgreSQL (in a fresh database
 * created for the run and dropped afterwards):
 *
 *   1. ttft    time to first token: request sent → first `thread.message.delta` of a streamed run,
 *              against request sent → first content chunk when calling the fake model directly with
 *              the same turn; at 1 and 50 concurrent runs (each run on a thread of its own)
 *   2. long    total time of a streamed run answering 2,000 one-word chunks / the same call made
 *              directly to the model, p50 over 20 alternating pairs; again with max_completion_tokens
 *              set far above the answer (every delta counted against the limit)
 *   3. streams concurrent streamed runs against a slow model (20 chunks, 500 ms apart), opened all at
 *              once; errors, latency and the server's RSS (VmRSS of the child) before/peak/after
 *   4. poll    non-streamed run: POST …/runs → GET …/runs/{id} reads `completed`, polled every
 *              1 ms (first GET right after the POST answers), with an instant model, against the
 *              same turn called on the fake model directly (alternating, one at a time)
 *
 * It measures and prints; it never judges speed. The exit code is 1 only when something failed (a
 * server or the fake model not starting, a non-200, an `error` event, a run not ending
 * `thread.run.completed` + `[DONE]`, a timeout); every failure is printed.
 *
 *   npm run bench:runs
 *   npm run bench:runs -- --backend pglite          one backend only (pglite | postgres)
 *   npm run bench:runs -- --only ttft --only poll   some sections only (ttft | long | streams | poll)
 *   npm run bench:runs -- --cpu-prof DIR            run the server children under `node --cpu-prof`
 *
 * Environment: DATABASE_URL (adds PostgreSQL), BENCH_TTFT_RUNS (200 per level), BENCH_TTFT_LEVELS
 * ("1,50"), BENCH_LONG_RUNS (20), BENCH_LONG_CHUNKS (2000, at most 10000), BENCH_STREAMS ("100,500,1000"),
 * BENCH_POLL_RUNS (100), BENCH_POLL_EVERY_MS (1).
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
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
  parseIntList,
  percentile,
  progress,
  readSseBlocks,
  ROOT,
  rssMiB,
  selectBackends,
  sourceRevision,
  startServer,
  table,
  type Backend,
  type Cpu,
  type ServerChild,
} from './lib.js';

const FAKE_CHILD_FLAG = '--fake-model-child';
const FLOOR_CHILD_FLAG = '--floor-child';
const SELF = fileURLToPath(import.meta.url);

// ---- the scripted turns, chosen by the requested model name (the config routes `*` through)

const INSTRUCTIONS = 'You are a helpful assistant. Answer briefly.';
const USER_TEXT = 'Tell me something about the sea.';
const TTFT_CHUNKS = 20;
const SLOW_CHUNKS = 20;
const SLOW_DELAY_MS = 500;

const intList = (name: string, fallback: string, max: number) => parseIntList(name, process.env[name] || fallback, max);

const LONG_CHUNKS = envPositive('BENCH_LONG_CHUNKS', 2000, true);
/**
 * The fake model writes an undelayed stream by synchronous recursion, one frame per SSE event:
 * from about 12,000 events on the stack overflows and the stream hangs (with the default stack).
 */
const MAX_LONG_CHUNKS = 10_000;
if (LONG_CHUNKS > MAX_LONG_CHUNKS) {
  process.stderr.write(`bench: BENCH_LONG_CHUNKS must be at most ${MAX_LONG_CHUNKS} (the fake model's undelayed streams recurse once per event)\n`);
  process.exit(2);
}
const words = (count: number, word: string) => Array.from({ length: count }, (_, index) => (index === 0 ? word : ` ${word}`));
const MODELS = {
  ttft: 'bench-ttft',
  long: 'bench-long',
  slow: 'bench-slow',
  instant: 'bench-instant',
} as const;
const TURNS: Record<string, FakeTurn> = {
  [MODELS.ttft]: { chunks: words(TTFT_CHUNKS, 'word') },
  [MODELS.long]: { chunks: words(LONG_CHUNKS, 'tok') },
  [MODELS.slow]: { chunks: words(SLOW_CHUNKS, 'slow'), chunkDelayMs: SLOW_DELAY_MS },
  [MODELS.instant]: { chunks: ['Done.'] },
};

/** Soft and hard open-file limits of this process (Linux /proc), or undefined. */
function fileLimits(): { soft: number; hard: number } | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((entry) => entry.startsWith('Max open files'));
    const parts = line?.trim().split(/\s{2,}/) ?? [];
    const value = (text: string | undefined) => (text === 'unlimited' ? Infinity : Number(text));
    const soft = value(parts[1]);
    const hard = value(parts[2]);
    return Number.isNaN(soft) || Number.isNaN(hard) ? undefined : { soft, hard };
  } catch {
    return undefined;
  }
}

// ---- the fake model child: started by the main process, stops when it goes away

async function fakeModelChild(): Promise<void> {
  const { startFakeModel } = await import('../test/helpers/fake-model.js');
  const fake = await startFakeModel();
  fake.onRequest((request) => {
    // The fake keeps every request it saw; only the latest few are of any use here.
    if (fake.requests.length > 64) fake.requests.splice(0, fake.requests.length - 1);
    const model = (request.body as { model?: unknown } | null)?.model;
    return TURNS[String(model)] ?? { status: 400, errorMessage: `bench fake model: unknown model '${String(model)}'` };
  });
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    const timer = setTimeout(() => process.exit(0), 2_000);
    timer.unref();
    void fake.close().finally(() => process.exit(0));
  };
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.send!({ type: 'ready', url: fake.url });
}

// ---- the floor child: what any Node server between the client and the model costs

/**
 * A bare streaming proxy, no storage and no validation: each POST is sent on to the fake model as a
 * streamed chat completion, and each content chunk comes back as a `thread.message.delta` event,
 * framed as a run's stream (`thread.run.created` first, `thread.run.completed` and `done` last).
 * The same client measures it as it measures a run; the gap to the direct call is the cost of one
 * more Node process on the path (two HTTP hops and SSE parsing and writing), which no run can go
 * below on this machine.
 */
async function floorChild(modelUrl: string): Promise<void> {
  const upstream = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const server = http.createServer((request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(parts).toString('utf8')) as { model?: string };
      const payload = JSON.stringify({
        model: body.model,
        messages: [
          { role: 'system', content: INSTRUCTIONS },
          { role: 'user', content: USER_TEXT },
        ],
        stream: true,
      });
      response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      response.socket?.setNoDelay(true);
      response.write(`event: thread.run.created\ndata: ${JSON.stringify({ id: 'run_floor', object: 'thread.run', status: 'queued' })}\n\n`);
      const call = http.request(`${modelUrl}/chat/completions`, {
        method: 'POST',
        agent: upstream,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), authorization: 'Bearer x' },
      });
      call.on('response', (answer) => {
        answer.setEncoding('utf8');
        let out = '';
        readSseBlocks(
          answer,
          (block) => {
            const data = block.trim();
            if (!data.startsWith('data:') || data.endsWith('[DONE]')) return;
            const content = (JSON.parse(data.slice(5)) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content;
            if (!content) return;
            const delta = { id: 'msg_floor', object: 'thread.message.delta', delta: { content: [{ index: 0, type: 'text', text: { value: content } }] } };
            out += `event: thread.message.delta\ndata: ${JSON.stringify(delta)}\n\n`;
          },
          () =>
            response.end(
              `${out}event: thread.run.completed\ndata: ${JSON.stringify({ id: 'run_floor', object: 'thread.run', status: 'completed' })}\n\nevent: done\ndata: [DONE]\n\n`,
            ),
        );
        // Listeners run in the order they were added: this one sees the blocks of each read
        // re-framed already, and sends them in one write, as the server does.
        answer.on('data', () => {
          if (out === '') return;
          response.write(out);
          out = '';
        });
      });
      call.on('error', () => response.destroy());
      call.end(payload);
    });
  });
  await new Promise<void>((listening) => server.listen(0, HOST, listening));
  const stop = () => process.exit(0);
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.send!({ type: 'ready', url: `http://${HOST}:${(server.address() as { port: number }).port}` });
}

if (process.argv[2] === FAKE_CHILD_FLAG) {
  await fakeModelChild();
} else if (process.argv[2] === FLOOR_CHILD_FLAG) {
  await floorChild(process.argv[3]!);
} else {
  await benchMain();
}

async function benchMain(): Promise<void> {
  // ---- settings

  const { values: flags } = parseArgs({
    options: {
      backend: { type: 'string', multiple: true },
      only: { type: 'string', multiple: true },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (flags.help) {
    process.stdout.write('Usage: node dist/bench/runs.js [--backend pglite|postgres]... [--only ttft|long|streams|poll]... [--cpu-prof DIR]\n');
    return;
  }
  type Section = 'ttft' | 'long' | 'streams' | 'poll';
  const SECTIONS: Section[] = ['ttft', 'long', 'streams', 'poll'];
  const { backends: BACKENDS, databaseUrl } = selectBackends((flags.backend ?? []) as string[]);
  const requestedSections = (flags.only ?? []) as string[];
  for (const name of requestedSections) {
    if (!SECTIONS.includes(name as Section)) {
      process.stderr.write(`bench: --only must be one of ${SECTIONS.join(', ')}, got '${name}'\n`);
      process.exit(2);
    }
  }
  const runs = (section: Section) => requestedSections.length === 0 || requestedSections.includes(section);

  const TTFT_RUNS = envPositive('BENCH_TTFT_RUNS', 200, true);
  const TTFT_LEVELS = intList('BENCH_TTFT_LEVELS', '1,50', 1000);
  const LONG_RUNS = envPositive('BENCH_LONG_RUNS', 20, true);
  const STREAM_LEVELS = intList('BENCH_STREAMS', '100,500,1000', 5000);
  const POLL_RUNS = envPositive('BENCH_POLL_RUNS', 100, true);
  const POLL_EVERY_MS = envPositive('BENCH_POLL_EVERY_MS', 1, true);

  // Each concurrent stream holds a socket in this process, two in the server (client and upstream)
  // and one in the fake model. `ulimit -n` is per process and inherited: when the soft limit is too
  // low and the hard limit allows more, the benchmark re-runs itself under a shell that raises it.
  const neededFiles = (runs('streams') ? Math.max(...STREAM_LEVELS) : 100) * 2 + 1024;
  const limits = fileLimits();
  if (limits && limits.soft < neededFiles && process.env.BENCH_RUNS_FD_RAISED !== '1') {
    const target = limits.hard === Infinity ? neededFiles : Math.min(limits.hard, neededFiles);
    if (target > limits.soft) {
      process.stderr.write(`bench: open-file limit ${limits.soft} < ${neededFiles}: re-running under 'ulimit -n ${target}'\n`);
      const child = spawn('/bin/sh', ['-c', `ulimit -n ${target} && exec "$0" "$@"`, process.execPath, ...process.execArgv, SELF, ...process.argv.slice(2)], {
        stdio: 'inherit',
        env: { ...process.env, BENCH_RUNS_FD_RAISED: '1' },
      });
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
      const code = await new Promise<number>((done) => child.once('exit', (exitCode, signal) => done(exitCode ?? (signal ? 130 : 1))));
      process.exitCode = code;
      return;
    }
  }
  if (limits && limits.soft < neededFiles) {
    process.stderr.write(`bench: warning: open-file limit ${limits.soft} (hard ${limits.hard}) is below the ${neededFiles} the largest level may need\n`);
  }

  const STOP_TIMEOUT_MS = 20_000;
  const REQUEST_TIMEOUT_MS = 30_000;
  /** A slow run takes SLOW_CHUNKS × SLOW_DELAY_MS (10 s) at the model; this bounds a whole level. */
  const STREAM_TIMEOUT_MS = 180_000;
  const POLL_TIMEOUT_MS = 15_000;

  const errors: string[] = [];
  const recordError = (line: string) => {
    errors.push(line);
    progress(`ERROR ${line}`);
  };

  installCleanupHandlers('children');

  // ---- /proc accounting (Linux; '-' elsewhere)

  const openFileLimit = (): string => {
    const limits = fileLimits();
    return limits ? `${limits.soft} (hard ${limits.hard})` : 'unknown';
  };
  /** Host-wide count of connections dropped because a listen queue was full (Linux). */
  const listenOverflows = (): number | undefined => {
    try {
      const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
      for (let index = 0; index + 1 < lines.length; index += 2) {
        const names = lines[index]!.split(/\s+/);
        const values = lines[index + 1]!.split(/\s+/);
        const column = names.indexOf('ListenOverflows');
        if (names[0] === 'TcpExt:' && column > 0) return Number(values[column]);
      }
    } catch {
      /* not Linux */
    }
    return undefined;
  };

  /** Server CPU per run over a phase, in ms. */
  const perRun = (cpu: Cpu, count: number) => (cpu.serverSeconds === null || count === 0 ? '-' : ((cpu.serverSeconds * 1000) / count).toFixed(1));
  const cpuCell = (cpu: Cpu) => [cpu.server, cpu.model, cpu.gen, cpu.host].map((value) => (value === null ? '-' : value.toFixed(2))).join('/');

  // ---- HTTP client: one keep-alive agent with as many sockets as asked for

  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 2048 });

  function requestJson(base: string, method: string, path: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS) {
    return new Promise<{ status: number; json: any; text: string; ms: number }>((resolveResponse, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const started = performance.now();
      const request = http.request(base + path, {
        method,
        agent,
        headers: { ...AUTH, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
      });
      const timer = setTimeout(() => request.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)), timeoutMs);
      request.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
        response.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* left null */
          }
          resolveResponse({ status: response.statusCode ?? 0, json, text, ms: performance.now() - started });
        });
      });
      request.end(payload);
    });
  }

  async function api(base: string, method: string, path: string, body?: unknown): Promise<any> {
    const response = await requestJson(base, method, path, body);
    if (response.status < 200 || response.status >= 300) throw new Error(`${method} ${path} -> ${response.status}: ${response.text.slice(0, 300)}`);
    return response.json;
  }

  interface StreamOutcome {
    status: number;
    /** From sending the request: TCP connected (0 on a reused keep-alive socket), response headers, first token, end of the body (ms). */
    connectMs: number | null;
    headersMs: number | null;
    ttftMs: number | null;
    totalMs: number;
    deltas: number;
    text: string;
    errorEvents: string[];
    /** Last `thread.run.*` status event (assistant streams). */
    lastRunEvent: string | null;
    completed: boolean;
    done: boolean;
    ended: boolean;
    failure?: string;
    errorBody?: string;
  }

  /**
   * One streamed request, its SSE body parsed as it arrives. `assistant`: the Assistants framing
   * (`event:` + `data:`), first token = first `thread.message.delta`; `openai`: chat-completion
   * chunks, first token = first chunk with non-empty `delta.content`.
   */
  function streamRequest(
    url: string,
    headers: Record<string, string>,
    body: unknown,
    kind: 'assistant' | 'openai',
    options: { collectText?: boolean; timeoutMs: number },
  ): Promise<StreamOutcome> {
    return new Promise((resolveOutcome) => {
      const payload = JSON.stringify(body);
      const outcome: StreamOutcome = {
        status: 0,
        connectMs: null,
        headersMs: null,
        ttftMs: null,
        totalMs: 0,
        deltas: 0,
        text: '',
        errorEvents: [],
        lastRunEvent: null,
        completed: false,
        done: false,
        ended: false,
      };
      let settled = false;
      const started = performance.now();
      const finish = (failure?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outcome.totalMs = performance.now() - started;
        if (failure !== undefined && !outcome.ended) outcome.failure = failure;
        resolveOutcome(outcome);
      };
      const request = http.request(url, {
        method: 'POST',
        agent,
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
          accept: 'text/event-stream',
        },
      });
      const timer = setTimeout(() => {
        request.destroy(new Error(`no end within ${options.timeoutMs} ms`));
      }, options.timeoutMs);

      const onBlock = (block: string) => {
        let event = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += (data === '' ? '' : '\n') + line.slice(line.startsWith('data: ') ? 6 : 5);
        }
        if (kind === 'assistant') {
          if (event === 'thread.message.delta') {
            if (outcome.ttftMs === null) outcome.ttftMs = performance.now() - started;
            outcome.deltas++;
            if (options.collectText) {
              const parsed = JSON.parse(data) as { delta: { content: { text?: { value?: string } }[] } };
              outcome.text += parsed.delta.content[0]?.text?.value ?? '';
            }
          } else if (event === 'done') {
            if (data === '[DONE]') outcome.done = true;
          } else if (event === 'error') {
            outcome.errorEvents.push(data.slice(0, 300));
          } else if (event.startsWith('thread.run.') && !event.startsWith('thread.run.step')) {
            outcome.lastRunEvent = event;
            if (event === 'thread.run.completed') outcome.completed = true;
          }
          return;
        }
        if (data === '[DONE]') {
          outcome.done = true;
          return;
        }
        if (data === '') return;
        let chunk: { choices?: { delta?: { content?: string | null } }[]; error?: unknown };
        try {
          chunk = JSON.parse(data);
        } catch {
          outcome.errorEvents.push(`unparseable chunk: ${data.slice(0, 200)}`);
          return;
        }
        if (chunk.error) outcome.errorEvents.push(data.slice(0, 300));
        const content = chunk.choices?.[0]?.delta?.content;
        if (typeof content === 'string' && content !== '') {
          if (outcome.ttftMs === null) outcome.ttftMs = performance.now() - started;
          outcome.deltas++;
          if (options.collectText) outcome.text += content;
        }
        // Chat completions end successfully with a finish reason; `completed` mirrors it.
        if ((chunk.choices?.[0] as { finish_reason?: string | null } | undefined)?.finish_reason === 'stop') outcome.completed = true;
      };

      request.on('socket', (socket) => {
        if (!socket.connecting) outcome.connectMs = 0;
        else socket.once('connect', () => (outcome.connectMs = performance.now() - started));
      });
      request.on('error', (error) => finish(error.message));
      request.on('response', (response) => {
        outcome.status = response.statusCode ?? 0;
        outcome.headersMs = performance.now() - started;
        response.setEncoding('utf8');
        if (outcome.status !== 200) {
          let text = '';
          response.on('data', (chunk: string) => {
            if (text.length < 2000) text += chunk;
          });
          response.on('end', () => {
            outcome.errorBody = text.slice(0, 300);
            outcome.ended = true;
            finish();
          });
          response.on('error', (error) => finish(error.message));
          response.on('close', () => finish('connection closed before the body ended'));
          return;
        }
        readSseBlocks(response, onBlock, () => {
          outcome.ended = true;
          finish();
        });
        response.on('error', (error) => finish(error.message));
        response.on('close', () => finish('connection closed before the body ended'));
      });
      request.end(payload);
    });
  }

  function describeFailure(outcome: StreamOutcome): string | undefined {
    if (outcome.failure) return `request failed: ${outcome.failure}`;
    if (outcome.status !== 200) return `HTTP ${outcome.status}: ${outcome.errorBody ?? ''}`;
    if (outcome.errorEvents.length > 0) return `error event: ${outcome.errorEvents[0]}`;
    if (!outcome.completed) return `did not complete (last run event ${outcome.lastRunEvent ?? 'none'})`;
    if (!outcome.done) return 'no [DONE]';
    return undefined;
  }

  // ---- statistics

  const difference = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  const ms = (value: number | null | undefined, digits = 1) => (value === null || value === undefined ? '-' : value.toFixed(digits));
  const sub = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);

  /** Runs `count` tasks, at most `concurrency` at a time (a closed loop: each worker starts the next when one ends). */
  async function pool<T>(count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
    const results: T[] = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const index = next++;
        results[index] = await task(index);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    return results;
  }

  const sleep = (delay: number) => new Promise((done) => setTimeout(done, delay));

  // ---- children

  interface FakeChild {
    url: string;
    pid: number | undefined;
    stop(): Promise<void>;
  }

  function startFakeChild(): Promise<FakeChild> {
    return forkReadyChild(SELF, [FAKE_CHILD_FLAG], STOP_TIMEOUT_MS, 'fake model', recordError);
  }
  interface RunsServer extends ServerChild {
    command: string;
    /** Log lines the server wrote after it started listening: the first few, and how many in all. */
    log: { lines: string[]; count: number };
  }

  async function startRunsServer(backend: Backend, fakeUrl: string, childDatabaseUrl: string | undefined): Promise<RunsServer> {
    let dataDir: string | undefined; // with PostgreSQL unused, but the CLI resolves it: the default in the work dir
    if (backend === 'pglite') {
      const { preparedDataDir } = await import('../test/helpers/storage.js');
      const prepared = await preparedDataDir();
      cleanups.push(async () => rmSync(prepared, { recursive: true, force: true }));
      dataDir = prepared;
    }
    const log = { lines: [] as string[], count: 0 };
    const server = await startServer({
      backend,
      workDirPrefix: `assistd-bench-runs-${backend}-${process.pid}-`,
      config: {
        model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fakeUrl, api_key: 'x' } }],
        general_settings: { master_key: MASTER_KEY },
      },
      dropEnv: /^OPENAI_BASE_URL$/,
      databaseUrl: childDatabaseUrl,
      dataDir,
      cpuProfDir: flags['cpu-prof'],
      cpuProfName: `server-runs-${backend}-${process.pid}.cpuprofile`,
      stopTimeoutMs: STOP_TIMEOUT_MS,
      onLog: (line) => {
        log.count++;
        if (log.lines.length < 20) log.lines.push(line.slice(0, 500));
      },
      onUnexpectedExit: (how) => recordError(`${backend}: server exited unexpectedly (${how})`),
    });
    const command =
      (childDatabaseUrl ? `DATABASE_URL=${redact(childDatabaseUrl)} ` : '') +
      `node ${server.args.map((arg) => (arg.startsWith(ROOT) ? relative(ROOT, arg) : arg)).join(' ')}`;
    return { ...server, command, log };
  }

  function redact(url: string): string {
    try {
      const parsed = new URL(url);
      if (parsed.password) parsed.password = '***';
      return parsed.toString();
    } catch {
      return '(unparseable url)';
    }
  }

  // ---- workloads

  interface Context {
    backend: Backend;
    server: RunsServer;
    fake: FakeChild;
    assistantId: string;
  }

  const chatBody = (model: string) => ({
    model,
    messages: [
      { role: 'system', content: INSTRUCTIONS },
      { role: 'user', content: USER_TEXT },
    ],
    stream: true,
    stream_options: { include_usage: true },
  });

  const direct = (ctx: Pick<Context, 'fake'>, model: string, options: { collectText?: boolean; timeoutMs?: number } = {}) =>
    streamRequest(`${ctx.fake.url}/chat/completions`, { authorization: 'Bearer x' }, chatBody(model), 'openai', {
      collectText: options.collectText,
      timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS,
    });

  const streamedRun = (
    ctx: Context,
    threadId: string,
    model: string,
    options: { collectText?: boolean; timeoutMs?: number; params?: Record<string, unknown> } = {},
  ) =>
    streamRequest(
      `${ctx.server.url}/v1/threads/${threadId}/runs`,
      AUTH,
      { assistant_id: ctx.assistantId, model, stream: true, ...options.params },
      'assistant',
      { collectText: options.collectText, timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS },
    );

  /** Fresh threads holding one user message each: one active run per thread. */
  async function createThreads(ctx: Context, count: number): Promise<string[]> {
    return pool(count, 16, async () => {
      const thread = await api(ctx.server.url, 'POST', '/v1/threads', { messages: [{ role: 'user', content: USER_TEXT }] });
      return thread.id as string;
    });
  }

  /** Counts failures of a batch as errors, with the first few described. */
  function checkOutcomes(label: string, outcomes: StreamOutcome[]): number {
    const failures = outcomes.map(describeFailure).filter((failure): failure is string => failure !== undefined);
    if (failures.length > 0) {
      const kinds = new Map<string, number>();
      for (const failure of failures) {
        const key = failure.replace(/(run|msg|thread|step)_[A-Za-z0-9]+/g, '$1_…').slice(0, 160);
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
      }
      recordError(`${label}: ${failures.length} of ${outcomes.length} failed: ${[...kinds].slice(0, 5).map(([kind, count]) => `${count}× ${kind}`).join('; ')}`);
    }
    return failures.length;
  }

  // 1. time to first token
  interface TtftRow {
    /** `floor`: the bare proxy (floorChild) in place of the server. */
    backend: Backend | 'floor';
    concurrency: number;
    runs: number;
    direct: number[];
    run: number[];
    errors: number;
    cpuDirect: Cpu;
    cpuRun: Cpu;
  }
  /** Warm-up calls (and runs) before each measured phase of the ttft section. */
  const ttftWarmup = (concurrency: number) => Math.max(10, concurrency);
  async function measureTtft(ctx: Context, concurrency: number): Promise<TtftRow> {
    const warmup = ttftWarmup(concurrency);
    const threads = await createThreads(ctx, warmup + TTFT_RUNS);
    return ttftPhases(ctx.backend, ctx.server.pid, ctx.fake, concurrency, warmup, (index) => streamedRun(ctx, threads[index]!, MODELS.ttft));
  }
  /** The same phases with the bare proxy in the server's place. */
  async function measureFloor(floor: FakeChild, fake: FakeChild, concurrency: number): Promise<TtftRow> {
    const body = { assistant_id: 'asst_floor', model: MODELS.ttft, stream: true };
    return ttftPhases('floor', floor.pid, fake, concurrency, ttftWarmup(concurrency), () =>
      streamRequest(`${floor.url}/v1/threads/thread_floor/runs`, AUTH, body, 'assistant', { timeoutMs: REQUEST_TIMEOUT_MS }),
    );
  }
  async function ttftPhases(
    backend: TtftRow['backend'],
    serverPid: number | undefined,
    fake: FakeChild,
    concurrency: number,
    warmup: number,
    run: (index: number) => Promise<StreamOutcome>,
  ): Promise<TtftRow> {
    const ctx = { backend, server: { pid: serverPid }, fake };
    const label = `${backend} ttft x${concurrency}`;
    progress(`${label}: warm-up (${warmup} direct, ${warmup} runs), then ${TTFT_RUNS} direct calls and ${TTFT_RUNS} runs`);
    let errorsSeen = 0;
    errorsSeen += checkOutcomes(`${label} warm-up direct`, await pool(warmup, concurrency, () => direct(ctx, MODELS.ttft)));
    errorsSeen += checkOutcomes(`${label} warm-up runs`, await pool(warmup, concurrency, run));

    let meter = cpuMeter({ server: ctx.server.pid, model: ctx.fake.pid });
    const directOutcomes = await pool(TTFT_RUNS, concurrency, () => direct(ctx, MODELS.ttft));
    const cpuDirect = meter();
    meter = cpuMeter({ server: ctx.server.pid, model: ctx.fake.pid });
    const runOutcomes = await pool(TTFT_RUNS, concurrency, (index) => run(warmup + index));
    const cpuRun = meter();
    errorsSeen += checkOutcomes(`${label} direct`, directOutcomes);
    errorsSeen += checkOutcomes(`${label} runs`, runOutcomes);
    const firsts = (outcomes: StreamOutcome[]) =>
      outcomes.filter((outcome) => describeFailure(outcome) === undefined && outcome.ttftMs !== null).map((outcome) => outcome.ttftMs!);
    return {
      backend: ctx.backend,
      concurrency,
      runs: TTFT_RUNS,
      direct: firsts(directOutcomes),
      run: firsts(runOutcomes),
      errors: errorsSeen,
      cpuDirect,
      cpuRun,
    };
  }

  // 2. total time for a long answer
  interface LongRow {
    backend: Backend;
    /** Extra run parameters, as shown in the table. */
    params: string;
    pairs: number;
    direct: number[];
    run: number[];
    ratios: number[];
    runDeltas: number;
    errors: number;
    cpu: Cpu;
  }
  /**
   * With `params` (max_completion_tokens far above the answer), the same answer is counted against
   * the limit delta by delta, as the engine does for upstreams that may ignore it.
   */
  async function measureLong(ctx: Context, params: Record<string, unknown> = {}): Promise<LongRow> {
    const warmup = 3;
    const threads = await createThreads(ctx, warmup + LONG_RUNS);
    const expected = words(LONG_CHUNKS, 'tok').join('');
    const shown = Object.entries(params).map(([key, value]) => `${key} ${value}`).join(', ') || 'none';
    const label = `${ctx.backend} long (${shown})`;
    progress(`${label}: ${warmup} warm-up pairs, then ${LONG_RUNS} pairs (direct, then run) of ${LONG_CHUNKS} chunks`);
    let errorsSeen = 0;
    const row: LongRow = { backend: ctx.backend, params: shown, pairs: LONG_RUNS, direct: [], run: [], ratios: [], runDeltas: 0, errors: 0, cpu: cpuMeter({})() };
    let meter = cpuMeter({});
    for (let index = 0; index < warmup + LONG_RUNS; index++) {
      if (index === warmup) meter = cpuMeter({ server: ctx.server.pid, model: ctx.fake.pid });
      const directOutcome = await direct(ctx, MODELS.long, { collectText: true });
      const runOutcome = await streamedRun(ctx, threads[index]!, MODELS.long, { collectText: true, timeoutMs: 120_000, params });
      errorsSeen += checkOutcomes(`${label} direct #${index}`, [directOutcome]);
      errorsSeen += checkOutcomes(`${label} run #${index}`, [runOutcome]);
      for (const [name, outcome] of [['direct', directOutcome], ['run', runOutcome]] as const) {
        if (describeFailure(outcome) === undefined && outcome.text !== expected) {
          errorsSeen++;
          recordError(`${label} ${name} #${index}: streamed text differs from the model's (${outcome.text.length} chars, expected ${expected.length})`);
        }
      }
      if (index < warmup) continue;
      if (describeFailure(directOutcome) === undefined && describeFailure(runOutcome) === undefined) {
        row.direct.push(directOutcome.totalMs);
        row.run.push(runOutcome.totalMs);
        row.ratios.push(runOutcome.totalMs / directOutcome.totalMs);
        row.runDeltas = runOutcome.deltas;
      }
    }
    row.cpu = meter();
    row.errors = errorsSeen;
    return row;
  }

  // 3. concurrent slow streams
  interface StreamsRow {
    backend: Backend;
    opened: number;
    ok: number;
    errors: number;
    failureKinds: string;
    connect: number[];
    headers: number[];
    ttft: number[];
    total: number[];
    wallMs: number;
    rssBefore: number | undefined;
    rssPeak: number | undefined;
    rssAfter: number | undefined;
    listenOverflows: number | undefined;
    cpu: Cpu;
  }
  async function measureStreams(ctx: Context, count: number): Promise<StreamsRow> {
    const label = `${ctx.backend} streams x${count}`;
    progress(`${label}: creating ${count} threads`);
    const threads = await createThreads(ctx, count);
    await sleep(1_000);
    const rssBefore = rssMiB(ctx.server.pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      const now = rssMiB(ctx.server.pid);
      if (now !== undefined && (rssPeak === undefined || now > rssPeak)) rssPeak = now;
    }, 100);
    progress(`${label}: opening ${count} streamed runs at once (${SLOW_CHUNKS} chunks ${SLOW_DELAY_MS} ms apart each)`);
    const overflowsBefore = listenOverflows();
    const meter = cpuMeter({ server: ctx.server.pid, model: ctx.fake.pid });
    const started = performance.now();
    const outcomes = await Promise.all(threads.map((threadId) => streamedRun(ctx, threadId, MODELS.slow, { timeoutMs: STREAM_TIMEOUT_MS })));
    const wallMs = performance.now() - started;
    const cpu = meter();
    const overflowsAfter = listenOverflows();
    clearInterval(sampler);
    const rssEnd = rssMiB(ctx.server.pid);
    if (rssEnd !== undefined && (rssPeak === undefined || rssEnd > rssPeak)) rssPeak = rssEnd;
    await sleep(2_000);
    const rssAfter = rssMiB(ctx.server.pid);
    const failures = outcomes.map(describeFailure).filter((failure): failure is string => failure !== undefined);
    const kinds = new Map<string, number>();
    for (const failure of failures) {
      const key = failure.replace(/(run|msg|thread|step)_[A-Za-z0-9]+/g, '$1_…').slice(0, 120);
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    if (failures.length > 0) checkOutcomes(label, outcomes);
    const good = outcomes.filter((outcome) => describeFailure(outcome) === undefined);
    return {
      backend: ctx.backend,
      opened: count,
      ok: good.length,
      errors: failures.length,
      failureKinds: [...kinds].map(([kind, n]) => `${n}× ${kind}`).join('; '),
      connect: outcomes.filter((outcome) => outcome.connectMs !== null).map((outcome) => outcome.connectMs!),
      headers: outcomes.filter((outcome) => outcome.headersMs !== null).map((outcome) => outcome.headersMs!),
      ttft: good.map((outcome) => outcome.ttftMs!).filter((value) => value !== null),
      total: good.map((outcome) => outcome.totalMs),
      wallMs,
      rssBefore,
      rssPeak,
      rssAfter,
      listenOverflows: overflowsBefore === undefined || overflowsAfter === undefined ? undefined : overflowsAfter - overflowsBefore,
      cpu,
    };
  }

  // 4. poll latency
  interface PollRow {
    backend: Backend;
    runs: number;
    latency: number[];
    create: number[];
    polls: number[];
    /** The same turn called on the fake model directly (streamed to its end), alternating with the runs. */
    direct: number[];
    errors: number;
    cpu: Cpu;
  }
  async function measurePoll(ctx: Context): Promise<PollRow> {
    const warmup = 5;
    const threads = await createThreads(ctx, warmup + POLL_RUNS);
    const label = `${ctx.backend} poll`;
    progress(`${label}: ${warmup} warm-up + ${POLL_RUNS} runs (each after a direct call of the same turn), GET every ${POLL_EVERY_MS} ms until completed`);
    const row: PollRow = { backend: ctx.backend, runs: POLL_RUNS, latency: [], create: [], polls: [], direct: [], errors: 0, cpu: cpuMeter({})() };
    let meter = cpuMeter({});
    for (let index = 0; index < warmup + POLL_RUNS; index++) {
      if (index === warmup) meter = cpuMeter({ server: ctx.server.pid, model: ctx.fake.pid });
      const threadId = threads[index]!;
      const alone = await direct(ctx, MODELS.instant);
      if (index >= warmup && alone.status === 200 && alone.ended) row.direct.push(alone.totalMs);
      const started = performance.now();
      try {
        const created = await requestJson(ctx.server.url, 'POST', `/v1/threads/${threadId}/runs`, { assistant_id: ctx.assistantId, model: MODELS.instant });
        if (created.status !== 200) throw new Error(`create -> ${created.status}: ${created.text.slice(0, 200)}`);
        const runId = created.json.id as string;
        const createMs = performance.now() - started;
        let status = created.json.status as string;
        let polls = 0;
        while (status !== 'completed') {
          if (['failed', 'cancelled', 'expired', 'incomplete'].includes(status)) throw new Error(`run ended ${status}: ${JSON.stringify(created.json.last_error ?? null)}`);
          if (performance.now() - started > POLL_TIMEOUT_MS) throw new Error(`not completed within ${POLL_TIMEOUT_MS} ms (status ${status})`);
          if (polls > 0) await sleep(POLL_EVERY_MS);
          const read = await requestJson(ctx.server.url, 'GET', `/v1/threads/${threadId}/runs/${runId}`);
          polls++;
          if (read.status !== 200) throw new Error(`GET run -> ${read.status}: ${read.text.slice(0, 200)}`);
          status = read.json.status as string;
        }
        if (index >= warmup) {
          row.latency.push(performance.now() - started);
          row.create.push(createMs);
          row.polls.push(polls);
        }
      } catch (error) {
        row.errors++;
        recordError(`${label} #${index}: ${(error as Error).message}`);
      }
    }
    row.cpu = meter();
    return row;
  }

  // ---- main

  const revision = sourceRevision();
  const environment = machine();
  const ttftRows: TtftRow[] = [];
  const longRows: LongRow[] = [];
  const streamRows: StreamsRow[] = [];
  const pollRows: PollRow[] = [];
  const commands: string[] = [];
  const serverLogs: string[] = [];
  let postgresVersion: string | null = null;
  let fakePid: number | undefined;
  let slowBaseline: { ttftMs: number; totalMs: number } | undefined;

  commands.push(`bench:       node ${relative(ROOT, SELF)} ${process.argv.slice(2).join(' ')}`.trimEnd());

  try {
    progress('starting the fake model child');
    const fake = await startFakeChild();
    fakePid = fake.pid;
    commands.push(`fake model:  node ${relative(ROOT, SELF)} ${FAKE_CHILD_FLAG}   (pid ${fake.pid}, ${fake.url})`);

    if (runs('ttft')) {
      progress('floor: starting the bare proxy child');
      const floor = await forkReadyChild(SELF, [FLOOR_CHILD_FLAG, fake.url], STOP_TIMEOUT_MS, 'floor proxy', recordError);
      commands.push(`floor:       node ${relative(ROOT, SELF)} ${FLOOR_CHILD_FLAG} <fake model url>   (pid ${floor.pid})`);
      try {
        for (const level of TTFT_LEVELS) ttftRows.push(await measureFloor(floor, fake, level));
      } finally {
        await floor.stop();
      }
    }

    for (const backend of BACKENDS) {
      let server: RunsServer | undefined;
      try {
        let childUrl: string | undefined;
        if (backend === 'postgres') {
          const database = await createBenchDatabase(databaseUrl!, `assistd_bench_runs_${process.pid}`);
          childUrl = database.url;
          postgresVersion = database.version;
        }
        progress(`${backend}: starting server`);
        const startedAt = Date.now();
        server = await startRunsServer(backend, fake.url, childUrl);
        commands.push(`server (${backend}): ${server.command}   (pid ${server.pid})`);
        progress(`${backend}: listening on ${server.url} after ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
        const assistant = await api(server.url, 'POST', '/v1/assistants', { model: MODELS.ttft, name: 'bench', instructions: INSTRUCTIONS });
        const ctx: Context = { backend, server, fake, assistantId: assistant.id };

        if (runs('ttft')) for (const level of TTFT_LEVELS) ttftRows.push(await measureTtft(ctx, level));
        if (runs('long')) {
          longRows.push(await measureLong(ctx));
          longRows.push(await measureLong(ctx, { max_completion_tokens: 1_000_000 }));
        }
        if (runs('poll')) pollRows.push(await measurePoll(ctx));
        if (runs('streams')) {
          if (slowBaseline === undefined) {
            progress('slow model alone: one direct call for the baseline');
            const outcome = await direct(ctx, MODELS.slow, { timeoutMs: 60_000 });
            if (checkOutcomes('slow model direct baseline', [outcome]) === 0) slowBaseline = { ttftMs: outcome.ttftMs!, totalMs: outcome.totalMs };
          }
          for (const level of STREAM_LEVELS) {
            if (server.exited()) break;
            streamRows.push(await measureStreams(ctx, level));
          }
        }
      } catch (error) {
        recordError(`${backend}: ${(error as Error).message ?? String(error)}`);
      } finally {
        if (server) {
          await server.stop();
          if (server.log.count > 0) {
            serverLogs.push(`${backend} server wrote ${server.log.count} log line(s) while running; first ${server.log.lines.length}:`);
            serverLogs.push(...server.log.lines.map((line) => `  ${line}`));
          }
        }
      }
    }
  } catch (error) {
    recordError((error as Error).stack ?? String(error));
  } finally {
    await cleanup();
    agent.destroy();
  }

  // ---- report

  const out: string[] = [];
  out.push(
    `assistd run-engine benchmark (${revision}): node ${environment.node} on ${environment.platform}, ${environment.cpus} CPUs (${environment.cpuModel})`,
  );
  out.push(
    `backends: ${BACKENDS.map((backend) => (backend === 'postgres' ? `postgres (PostgreSQL ${postgresVersion ?? '?'}, fresh database)` : 'pglite (embedded)')).join(', ')}` +
      (databaseUrl === undefined ? '; PostgreSQL not run (DATABASE_URL unset)' : ''),
  );
  out.push(
    `processes: load generator (this, pid ${process.pid}), fake model (separate child, pid ${fakePid ?? '?'}), server (child per backend); all on ${HOST}; open-file limit ${openFileLimit()}`,
  );
  out.push('commands:');
  for (const command of commands) out.push(`  ${command}`);
  out.push(`  config:      model_list: [{model_name: "*", litellm_params: {model: "openai/*", api_base: <fake>/v1, api_key: x}}], general_settings: {master_key: <random>}`);
  out.push('cpu column: cores busy during the measured phase, server/model/load-generator/whole-host (host includes PostgreSQL and anything else running); times in ms');
  out.push('srv cpu ms/run: CPU time the server process used during the measured phase, divided by the runs in it (embedded PGlite runs inside it)');

  if (ttftRows.length > 0) {
    out.push('');
    out.push(`1. time to first token: request sent -> first thread.message.delta (run) vs first content chunk (direct); turn = ${TTFT_CHUNKS} one-word chunks, no delay`);
    out.push('   added = run percentile - direct percentile (the two are measured in separate phases at the same concurrency, so not paired)');
    out.push('   floor: a bare Node proxy in the server\'s place (no storage, no validation; the fake model\'s chunks re-framed as thread.message.delta events): what one more process on the path costs');
    out.push(
      table(
        ['backend', 'conc', 'runs', 'direct p50', 'direct p99', 'run p50', 'run p99', 'added p50', 'added p99', 'errors', 'srv cpu ms/run', 'cpu direct', 'cpu run'],
        ttftRows.map((row) => {
          const dp50 = percentile(row.direct, 0.5);
          const dp99 = percentile(row.direct, 0.99);
          const rp50 = percentile(row.run, 0.5);
          const rp99 = percentile(row.run, 0.99);
          return [
            row.backend,
            String(row.concurrency),
            String(row.runs),
            ms(dp50, 2),
            ms(dp99, 2),
            ms(rp50, 2),
            ms(rp99, 2),
            ms(sub(rp50, dp50), 2),
            ms(sub(rp99, dp99), 2),
            String(row.errors),
            perRun(row.cpuRun, row.runs),
            cpuCell(row.cpuDirect),
            cpuCell(row.cpuRun),
          ];
        }),
      ),
    );
  }
  if (longRows.length > 0) {
    out.push('');
    out.push(`2. total time for a ${LONG_CHUNKS}-chunk answer (one short word per chunk, no delay), direct call then streamed run, sequential pairs`);
    out.push(
      table(
        ['backend', 'run params', 'pairs', 'direct p50', 'run p50', 'run p99', 'ratio p50 (per pair)', 'ratio of p50s', 'deltas/run', 'errors', 'srv cpu ms/run', 'cpu'],
        longRows.map((row) => {
          const dp50 = percentile(row.direct, 0.5);
          const rp50 = percentile(row.run, 0.5);
          return [
            row.backend,
            row.params,
            String(row.pairs),
            ms(dp50),
            ms(rp50),
            ms(percentile(row.run, 0.99)),
            ms(percentile(row.ratios, 0.5), 2),
            dp50 && rp50 ? (rp50 / dp50).toFixed(2) : '-',
            String(row.runDeltas),
            String(row.errors),
            perRun(row.cpu, row.pairs),
            cpuCell(row.cpu),
          ];
        }),
      ),
    );
  }
  if (streamRows.length > 0) {
    out.push('');
    out.push(
      `3. concurrent streamed runs opened at once, slow model (${SLOW_CHUNKS} chunks, every SSE event ${SLOW_DELAY_MS} ms apart); ok = 200 + thread.run.completed + [DONE], no error event`,
    );
    out.push(
      `   the slow model alone (one direct call): first content chunk ${ms(slowBaseline?.ttftMs, 0)} ms, body ended ${ms(slowBaseline?.totalMs, 0)} ms`,
    );
    out.push('   connect/headers/ttft/total: from sending each request (connect: TCP connection up); RSS of the server child in MiB; per run = (peak - before) / opened;');
    out.push('   listen ovf: host-wide TCP listen-queue overflows during the level (a dropped SYN is retried after 1 s)');
    out.push(
      table(
        ['backend', 'opened', 'ok', 'errors', 'connect p50', 'connect max', 'headers p50', 'headers max', 'ttft p50', 'ttft p99', 'ttft max', 'total p50', 'total max', 'wall s', 'rss before', 'rss peak', 'rss after', 'MiB/run', 'listen ovf', 'srv cpu ms/run', 'cpu'],
        streamRows.map((row) => [
          row.backend,
          String(row.opened),
          String(row.ok),
          String(row.errors),
          ms(percentile(row.connect, 0.5), 0),
          ms(percentile(row.connect, 1), 0),
          ms(percentile(row.headers, 0.5), 0),
          ms(percentile(row.headers, 1), 0),
          ms(percentile(row.ttft, 0.5), 0),
          ms(percentile(row.ttft, 0.99), 0),
          ms(percentile(row.ttft, 1), 0),
          ms(percentile(row.total, 0.5), 0),
          ms(percentile(row.total, 1), 0),
          (row.wallMs / 1000).toFixed(1),
          ms(row.rssBefore, 0),
          ms(row.rssPeak, 0),
          ms(row.rssAfter, 0),
          row.rssBefore !== undefined && row.rssPeak !== undefined ? ((row.rssPeak - row.rssBefore) / row.opened).toFixed(3) : '-',
          row.listenOverflows === undefined ? '-' : String(row.listenOverflows),
          perRun(row.cpu, row.opened),
          cpuCell(row.cpu),
        ]),
      ),
    );
    for (const backend of BACKENDS) {
      const rows = streamRows.filter((row) => row.backend === backend);
      if (rows.length === 0) continue;
      const clean = rows.filter((row) => row.errors === 0).map((row) => row.opened);
      out.push(`   ${backend}: largest level with zero errors: ${clean.length > 0 ? Math.max(...clean) : 'none'} (levels tried: ${rows.map((row) => row.opened).join(', ')})`);
      for (const row of rows.filter((entry) => entry.errors > 0)) out.push(`   ${backend} x${row.opened} failures: ${row.failureKinds}`);
    }
  }
  if (pollRows.length > 0) {
    out.push('');
    out.push(`4. non-streamed run, instant model: POST .../runs sent -> GET .../runs/{id} answers completed (first GET when the POST answers, then every ${POLL_EVERY_MS} ms)`);
    out.push('   direct = the same turn called on the fake model directly, to the end of its stream (alternating with the runs); added = p50 - direct p50');
    out.push(
      table(
        ['backend', 'runs', 'direct p50', 'p50', 'added p50', 'p99', 'max', 'POST p50', 'GETs p50', 'GETs max', 'errors', 'srv cpu ms/run', 'cpu'],
        pollRows.map((row) => [
          row.backend,
          String(row.runs),
          ms(percentile(row.direct, 0.5), 2),
          ms(percentile(row.latency, 0.5), 2),
          ms(difference(percentile(row.latency, 0.5), percentile(row.direct, 0.5)), 2),
          ms(percentile(row.latency, 0.99), 2),
          ms(percentile(row.latency, 1), 2),
          ms(percentile(row.create, 0.5), 2),
          ms(percentile(row.polls, 0.5), 0),
          ms(percentile(row.polls, 1), 0),
          String(row.errors),
          perRun(row.cpu, row.runs),
          cpuCell(row.cpu),
        ]),
      ),
    );
  }
  if (serverLogs.length > 0) {
    out.push('');
    out.push(...serverLogs);
  }
  out.push('');
  if (errors.length > 0) {
    out.push(`ERRORS (${errors.length}):`);
    for (const error of errors) out.push(`  ${error}`);
  } else {
    out.push('no errors');
  }
  process.stdout.write(`${out.join('\n')}\n`);
  process.exitCode = errors.length > 0 ? 1 : 0;
}
