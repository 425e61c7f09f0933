/**
 * How soon a background run starts, and finishes, when the process that took the request is not the
 * one that executes it: `assistd serve --no-worker` + `assistd worker` over one PostgreSQL database
 * (the run handed over with NOTIFY), against one `assistd serve` doing both, in the same run, with an
 * instant fake model (in this process). Runs are created one at a time (POST /v1/threads/runs, not
 * streamed) and polled every millisecond:
 *
 *   - start: from the create response to the first poll that no longer reads `queued`;
 *   - end:   from the create response to the first poll that reads `completed`.
 *
 * It measures and prints; it never judges speed. Needs DATABASE_URL (a database of its own is made
 * and dropped).
 *
 *   npm run bench:workers            BENCH_WORKER_RUNS (runs per setup, default 200)
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { cleanup, cleanups, createBenchDatabase, envPositive, installCleanupHandlers, machine, percentile, progress, sourceRevision, startServer, table } from './lib.js';

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function call(base: string, method: string, path: string, body?: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(`${base}${path}`, { method, agent, headers: { 'content-type': 'application/json', 'openai-beta': 'assistants=v2', ...(payload ? { 'content-length': Buffer.byteLength(payload) } : {}) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((response.statusCode ?? 500) >= 400) reject(new Error(`${method} ${path}: ${response.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
    });
    request.on('error', reject);
    request.end(payload);
  });
}

async function measure(base: string, assistantId: string, runs: number): Promise<{ start: number[]; end: number[] }> {
  const start: number[] = [];
  const end: number[] = [];
  for (let index = 0; index < runs; index++) {
    const run = await call(base, 'POST', '/v1/threads/runs', { assistant_id: assistantId, thread: { messages: [{ role: 'user', content: 'Hi' }] } });
    const created = performance.now();
    let started: number | null = null;
    for (;;) {
      const current = await call(base, 'GET', `/v1/threads/${run.thread_id}/runs/${run.id}`);
      const now = performance.now();
      if (started === null && current.status !== 'queued') started = now - created;
      if (current.status === 'completed') {
        start.push(started ?? now - created);
        end.push(now - created);
        break;
      }
      if (['failed', 'cancelled', 'expired', 'incomplete'].includes(current.status)) throw new Error(`run ${run.id} ended ${current.status}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
  return { start, end };
}

async function main(): Promise<void> {
  installCleanupHandlers('bench: stopping');
  const adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    process.stderr.write('bench: bench:workers needs DATABASE_URL\n');
    process.exit(2);
  }
  const runs = envPositive('BENCH_WORKER_RUNS', 200, true);
  const { startFakeModel } = await import('../test/helpers/fake-model.js');
  const fake = await startFakeModel();
  cleanups.push(() => fake.close());
  fake.onRequest(() => {
    if (fake.requests.length > 64) fake.requests.splice(0, fake.requests.length - 1);
    return undefined;
  });
  const config = { model_list: [{ model_name: '*', litellm_params: { model: 'openai/*', api_base: fake.url, api_key: 'sk-fake' } }] };
  const common = { backend: 'postgres' as const, config, cpuProfDir: undefined, cpuProfName: '', stopTimeoutMs: 10_000 };

  const results: Record<string, { start: number[]; end: number[] }> = {};
  for (const setup of ['serve (API and worker in one)', 'serve --no-worker + worker'] as const) {
    const database = await createBenchDatabase(adminUrl, `assistd_bench_workers_${process.pid}_${Object.keys(results).length}`);
    const split = setup !== 'serve (API and worker in one)';
    progress(`${setup}: starting`);
    const api = await startServer({ ...common, workDirPrefix: 'assistd-bench-api-', databaseUrl: database.url, extraArgs: split ? ['--no-worker'] : [] });
    cleanups.push(() => api.stop());
    if (split) {
      const worker = await startServer({ ...common, workDirPrefix: 'assistd-bench-worker-', databaseUrl: database.url, command: 'worker' });
      cleanups.push(() => worker.stop());
    }
    const assistant = await call(api.url, 'POST', '/v1/assistants', { model: 'gpt-4o' });
    await measure(api.url, assistant.id, 10); // warm-up
    progress(`${setup}: ${runs} runs, one at a time`);
    results[setup] = await measure(api.url, assistant.id, runs);
  }

  const ms = (value: number | null) => (value === null ? '-' : value.toFixed(2));
  const rows = Object.entries(results).map(([setup, { start, end }]) => [setup, ms(percentile(start, 0.5)), ms(percentile(start, 0.99)), ms(percentile(end, 0.5)), ms(percentile(end, 0.99))]);
  process.stdout.write(
    [
      `bench/workers: background runs handed to a worker process vs executed where they were created, ${runs} runs each, PostgreSQL, instant fake model`,
      `machine: ${JSON.stringify(machine())}; revision ${sourceRevision()}`,
      '',
      table(['setup', 'start p50', 'start p99', 'completed p50', 'completed p99'], rows),
      '',
      'ms from the create response; polled every 1 ms (so each figure includes up to one poll round trip).',
      '',
    ].join('\n'),
  );
  await cleanup();
}

main().catch(async (error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await cleanup();
  process.exit(1);
});
