/**
 * `GET /metrics` in Prometheus's text format (prom-client), one registry per server: what this
 * process does (runs it finished and how long they took, model calls and their time to first token,
 * streams open, HTTP requests) and, read from the database at scrape time, what every process shares
 * (runs by status, the queue and how long its oldest run has waited, ingestion backlog), plus live
 * code_interpreter kernels, the database pool and Node's own process metrics.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunEvent } from './engine/events.js';
import { RUN_TRANSITIONS, TERMINAL_STATUSES } from './engine/run-state.js';
import type { LanguageModel } from './providers/types.js';
import type { SqlClient } from './storage/sql.js';

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Where a pass of a run ends: a terminal status, or waiting for tool outputs. */
const PASS_ENDS = new Set<string>([...TERMINAL_STATUSES, 'requires_action']);
const MAX_MODEL_LABELS = 100;
const RUN_STATUSES = Object.keys(RUN_TRANSITIONS);

export interface MetricsSources {
  sql: SqlClient;
  /** Live code_interpreter kernels in this process (null: code_interpreter is off). */
  liveKernels: () => number | null;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly runsFinished: Counter<'status'>;
  private readonly runDuration: Histogram<'status'>;
  private readonly modelCalls: Counter<'model' | 'outcome'>;
  private readonly modelDuration: Histogram<'model' | 'outcome'>;
  private readonly firstToken: Histogram<'model'>;
  private readonly streams: Gauge;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** When each run this process is executing went in_progress. */
  private readonly started = new Map<string, number>();
  /** Model names seen as labels: clients choose them (any `anthropic/...` routes), so they are capped. */
  private readonly modelLabels = new Set<string>();

  private modelLabel(name: string): string {
    if (this.modelLabels.has(name)) return name;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return 'other';
    this.modelLabels.add(name);
    return name;
  }

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'assistd_' });
    this.runsFinished = new Counter({ name: 'assistd_runs_finished_total', help: 'Runs this process brought to a terminal status or requires_action', labelNames: ['status'], registers });
    this.runDuration = new Histogram({ name: 'assistd_run_duration_seconds', help: 'From in_progress to the status the pass ended in, in this process', labelNames: ['status'], buckets: SECONDS, registers });
    this.modelCalls = new Counter({ name: 'assistd_model_calls_total', help: 'Model calls by model name and outcome (ok, error, cancelled)', labelNames: ['model', 'outcome'], registers });
    this.modelDuration = new Histogram({ name: 'assistd_model_call_duration_seconds', help: 'Whole model calls, to their finish', labelNames: ['model', 'outcome'], buckets: SECONDS, registers });
    this.firstToken = new Histogram({ name: 'assistd_time_to_first_token_seconds', help: 'From a model call to its first text or tool-call piece', labelNames: ['model'], buckets: SECONDS, registers });
    this.streams = new Gauge({ name: 'assistd_active_streams', help: 'Run event streams (SSE) open on this process', registers });
    this.httpDuration = new Histogram({ name: 'assistd_http_request_duration_seconds', help: 'HTTP requests by route pattern and status (streams: until their headers)', labelNames: ['method', 'route', 'status'], buckets: SECONDS, registers });

    const runsByStatus = new Gauge({
      name: 'assistd_runs',
      help: 'Runs in the database by status (every process)',
      labelNames: ['status'],
      registers,
      collect: async () => {
        const { rows } = await sources.sql.query<{ status: string; count: number }>('SELECT status, count(*)::int AS count FROM runs GROUP BY status');
        const counts = new Map(rows.map((row) => [row.status, row.count]));
        for (const status of RUN_STATUSES) runsByStatus.set({ status }, counts.get(status) ?? 0);
      },
    });
    const oldestQueued = new Gauge({
      name: 'assistd_queue_oldest_seconds',
      help: 'How long the oldest queued run has waited to be claimed (0: none waits); the claim lag',
      registers,
      collect: async () => {
        const { rows } = await sources.sql.query<{ created: number | null }>("SELECT min(created_at) AS created FROM runs WHERE status = 'queued'");
        const created = rows[0]?.created ?? null;
        oldestQueued.set(created === null ? 0 : Math.max(0, Date.now() / 1000 - created));
      },
    });
    const ingestion = new Gauge({
      name: 'assistd_ingestion_backlog_files',
      help: 'Vector store files still being indexed (every process)',
      registers,
      collect: async () => {
        const { rows } = await sources.sql.query<{ count: number }>("SELECT count(*)::int AS count FROM vector_store_files WHERE status = 'in_progress'");
        ingestion.set(rows[0]?.count ?? 0);
      },
    });
    const kernels: Gauge = new Gauge({
      name: 'assistd_code_interpreter_kernels',
      help: 'Live code_interpreter kernels on this process',
      registers,
      collect: () => {
        kernels.set(sources.liveKernels() ?? 0);
      },
    });
    const pool = new Gauge({
      name: 'assistd_database_connections',
      help: 'The PostgreSQL pool of this process: total, idle, waiting (clients queued for one) and max',
      labelNames: ['state'],
      registers,
      collect: () => {
        const stats = sources.sql.poolStats?.();
        if (!stats) return;
        for (const [state, value] of Object.entries(stats)) pool.set({ state }, value);
      },
    });
  }

  /** Every run event this process publishes passes here (see RunEventBus.observe). */
  observeRunEvent = (runId: string, event: RunEvent): void => {
    if (!event.event.startsWith('thread.run.') || event.event.startsWith('thread.run.step.')) return;
    const status = event.event.slice('thread.run.'.length);
    if (status === 'in_progress') {
      this.started.set(runId, performance.now());
      return;
    }
    if (!PASS_ENDS.has(status)) return;
    this.runsFinished.inc({ status });
    const start = this.started.get(runId);
    if (start !== undefined) {
      this.runDuration.observe({ status }, (performance.now() - start) / 1000);
      this.started.delete(runId);
    }
  };

  /** `model`, its calls timed: to the first piece, and to the end. */
  meter(model: LanguageModel | undefined, name: string): LanguageModel | undefined {
    if (!model) return undefined;
    const metrics = this;
    const label = this.modelLabel(name);
    return {
      modelId: model.modelId,
      async *stream(request, options) {
        const start = performance.now();
        let first = true;
        let outcome = 'error';
        try {
          for await (const part of model.stream(request, options)) {
            if (first && part.type !== 'finish') {
              first = false;
              metrics.firstToken.observe({ model: label }, (performance.now() - start) / 1000);
            }
            yield part;
          }
          outcome = 'ok';
        } catch (error) {
          if (options.signal.aborted) outcome = 'cancelled';
          throw error;
        } finally {
          metrics.modelCalls.inc({ model: label, outcome });
          metrics.modelDuration.observe({ model: label, outcome }, (performance.now() - start) / 1000);
        }
      },
    };
  }

  streamOpened(): void {
    this.streams.inc();
  }

  streamClosed(): void {
    this.streams.dec();
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status: String(status) }, seconds);
  }
}
