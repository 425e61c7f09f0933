import { randomUUID } from 'node:crypto';
import type { AssistantObject, RunObject, RunStepObject, ThreadObject } from '../api/objects.js';
import type { CreateMessage, CreateRun, CreateThreadAndRun, Tool } from '../api/schemas.js';
import type { AssistdSettings } from '../config.js';
import { invalidRequest, isDatabaseUnavailable, notFound, notFoundInThread, quote } from '../errors.js';
import { nowSeconds } from '../ids.js';
import type { ModelRegistry } from '../providers/registry.js';
import type { Metrics } from '../metrics.js';
import type { Storage } from '../storage/index.js';
import { Repositories, type NewMessage } from '../storage/repositories.js';
import { ActiveRunError, LeaseLostError, ThreadGoneError, leaseUntilSql, type NewRun, type RunClaim } from '../storage/runs.js';
import { RunEventBus, type RunEvent } from './events.js';
import { announceDatabaseLost, announceLeaseLost, RunExecutor, SHUTDOWN_ERROR, StopSignal, fencedWrites, finishCancellation, type EngineDeps } from './execute-run.js';
import { allowedFrom, isTerminal } from './run-state.js';

const TICK_MS = 1_000;
/** Cross-process word about runs (PostgreSQL): `{"cancel": runId}` stops the run wherever it executes. */
const RUNS_CHANNEL = 'assistd_runs';
// (and `{"queued": runId}`: a background run for the workers, which start it at once)
const UNCLAIMED_GRACE_SECONDS = 5;

export interface RunServiceOptions {
  storage: Storage;
  models: ModelRegistry;
  settings: AssistdSettings;
  log: EngineDeps['log'];
  vectorStores: EngineDeps['vectorStores'];
  codeInterpreter: EngineDeps['codeInterpreter'];
  /** Converts a create-message request into what storage writes (shared with the messages route). */
  toNewMessage: (request: CreateMessage) => NewMessage;
  /** Run, model and stream figures for /metrics. */
  metrics?: Metrics;
  /**
   * Whether this process executes background runs (non-streamed ones, and runs recovered from a dead
   * process). false (`serve --no-worker`): it executes only the runs it streams, and hands the rest
   * to the workers (`assistd worker`) over the database. Default true.
   */
  worker?: boolean;
}

interface ActiveRun {
  pass: number;
  controller: AbortController;
  done: Promise<void>;
  /** The pass's claim, once taken (its lease is renewed by this process's ticks). */
  claim?: RunClaim;
  /** Word came that the run was queued again (tool outputs) while this pass was ending: another pass follows it. */
  again?: boolean;
}

/**
 * The only engine API the HTTP layer calls: creating, continuing, cancelling and streaming runs,
 * plus the background duties (lease heartbeats, orphan recovery, expiry) of this process.
 */
export class RunService {
  readonly bus = new RunEventBus();
  readonly owner = randomUUID();
  private readonly active = new Map<string, ActiveRun>();
  private readonly deps: EngineDeps;
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private passes = 0;
  private closing = false;
  /** Leases are renewed three times a lease, so one late renewal never loses a run. */
  private readonly leaseMs: number;
  private readonly renewEveryTicks: number;
  private listener: { close(): Promise<void> } | null = null;

  constructor(private readonly options: RunServiceOptions) {
    this.leaseMs = Math.max(1, options.settings.runLeaseSeconds) * 1000;
    this.renewEveryTicks = Math.max(1, Math.floor(this.leaseMs / TICK_MS / 3));
    const metrics = options.metrics;
    const models = metrics ? { resolve: (name: string) => metrics.meter(options.models.resolve(name), name) } : options.models;
    if (metrics) this.bus.observe(metrics.observeRunEvent);
    this.deps = { storage: options.storage, models, bus: this.bus, settings: options.settings, log: options.log, vectorStores: options.vectorStores, codeInterpreter: options.codeInterpreter };
  }

  private get storage() {
    return this.options.storage;
  }

  /** A thread was deleted: its code_interpreter kernel on this process stops and its /mnt/data goes. */
  async threadDeleted(threadId: string): Promise<void> {
    await this.deps.codeInterpreter.pool?.dropThread(threadId).catch((error: unknown) => this.deps.log.warn({ err: error, threadId }, 'removing a deleted thread\'s code session failed'));
  }

  /** Rejects a model name no deployment serves, naming it, as a 400 on `param`. */
  assertModelRoutes(model: string, param = 'model') {
    if (!this.options.models.has(model)) {
      throw invalidRequest(`The model '${quote(model)}' does not exist or is not configured on this server.`, param, 'model_not_found');
    }
  }

  // ---- creating runs

  private newRun(threadId: string, request: CreateRun | CreateThreadAndRun, assistant: AssistantObject | undefined): NewRun {
    if (!assistant) throw notFound('assistant', request.assistant_id);
    const model = request.model ?? assistant.model;
    this.assertModelRoutes(model);
    const tools = (request.tools ?? assistant.tools) as Tool[];
    const toolChoice = request.tool_choice ?? 'auto';
    if (typeof toolChoice === 'object' && toolChoice.type === 'function') {
      const name = toolChoice.function?.name;
      if (!name) throw invalidRequest("Missing required parameter: 'tool_choice.function'.", 'tool_choice.function');
      if (!tools.some((tool) => tool.type === 'function' && tool.function.name === name)) {
        throw invalidRequest(`Invalid 'tool_choice': the function '${quote(name)}' is not one of the run's tools.`, 'tool_choice.function.name');
      }
    }
    return {
      threadId,
      assistantId: assistant.id,
      model,
      instructions: request.instructions ?? assistant.instructions,
      additionalInstructions: 'additional_instructions' in request ? (request.additional_instructions ?? null) : null,
      tools,
      metadata: request.metadata ?? {},
      temperature: request.temperature ?? assistant.temperature ?? 1,
      topP: request.top_p ?? assistant.top_p ?? 1,
      maxCompletionTokens: request.max_completion_tokens ?? null,
      maxPromptTokens: request.max_prompt_tokens ?? null,
      truncationStrategy: request.truncation_strategy
        ? { type: request.truncation_strategy.type, last_messages: request.truncation_strategy.last_messages ?? null }
        : { type: 'auto', last_messages: null },
      responseFormat: request.response_format ?? assistant.response_format ?? 'auto',
      toolChoice,
      parallelToolCalls: request.parallel_tool_calls ?? true,
      reasoningEffort: request.reasoning_effort ?? null,
      expiresAfterSeconds: this.options.settings.runExpirySeconds,
      // Created held by this process, so no sweeper elsewhere takes it before it starts here.
      lockedBy: this.owner,
      leaseMs: this.leaseMs,
    };
  }

  async createRun(threadId: string, request: CreateRun): Promise<RunObject> {
    // The thread and the assistant are read together; a missing thread is the error told first.
    const { assistant, threadExists } = await this.storage.assistantAndThread(request.assistant_id, threadId);
    if (!threadExists) throw notFound('thread', threadId);
    const run = this.newRun(threadId, request, assistant);
    try {
      return await this.storage.runs.createRun(run, (request.additional_messages ?? []).map(this.options.toNewMessage));
    } catch (error) {
      if (error instanceof ActiveRunError) throw invalidRequest(error.message);
      if (error instanceof ThreadGoneError) throw notFound('thread', threadId);
      throw error;
    }
  }

  /** The thread, its messages and the run, all in one transaction. */
  async createThreadAndRun(request: CreateThreadAndRun): Promise<{ thread: ThreadObject; run: RunObject }> {
    const template = this.newRun('', request, await this.storage.getAssistant(request.assistant_id));
    return this.storage.sql.transaction(async (tx) => {
      const repositories = new Repositories(tx);
      const thread = await repositories.createThread({
        messages: (request.thread?.messages ?? []).map(this.options.toNewMessage),
        toolResources: request.thread?.tool_resources,
        metadata: request.thread?.metadata,
      });
      const run = await this.storage.runs.createRun({ ...template, threadId: thread.id }, [], tx);
      return { thread, run };
    });
  }

  // ---- executing

  /**
   * Starts the run's next execution pass in this process and returns its number. A pass still
   * finishing here is waited for first, so two passes of one run never overlap in a process (and
   * the lease keeps other processes out).
   */
  execute(runId: string): number {
    const previous = this.active.get(runId);
    const pass = ++this.passes;
    const controller = new AbortController();
    const done = (async () => {
      if (previous) await previous.done;
      try {
        if (this.closing && !controller.signal.aborted) {
          // Shutting down: the run is handed to another process (or the next start); a stream opened for it is told so.
          this.bus.publish(runId, { event: 'error', data: SHUTDOWN_ERROR });
          await this.handOn(runId);
          return;
        }
        // Claimed (with the next fencing token), read and, when queued, moved to in_progress in one statement.
        const claimed = await this.storage.runs.claimForExecution(runId, this.owner, this.leaseMs, nowSeconds());
        if (!claimed) return;
        const { claim } = claimed;
        const active = this.active.get(runId);
        if (active?.pass === pass) active.claim = claim;
        const executor = new RunExecutor(this.deps, claim, controller.signal, claimed.load);
        try {
          await executor.execute();
        } finally {
          // Stopped by a shutdown before it ended, the run is handed on at once, not when a sweep finds it.
          if ((controller.signal.reason as StopSignal | undefined)?.reason === 'shutdown') await this.handOn(runId, claim);
          else if (!executor.released) await this.storage.runs.release(claim).catch(() => {});
        }
      } catch (error) {
        if (error instanceof LeaseLostError) return announceLeaseLost(this.deps, runId);
        if (isDatabaseUnavailable(error)) return announceDatabaseLost(this.deps, runId, error);
        this.options.log.error({ err: error, runId }, 'run execution crashed');
        this.bus.publish(runId, {
          event: 'error',
          data: { code: 'server_error', message: 'The server had an error while processing the run.', param: null, type: 'server_error' },
        });
      } finally {
        const current = this.active.get(runId);
        if (current?.pass === pass) {
          this.active.delete(runId);
          if (current.again && !this.closing) this.execute(runId);
        }
        this.bus.endPass(runId, pass);
      }
    })();
    this.active.set(runId, { pass, controller, done });
    return pass;
  }

  /**
   * Starts the run's next pass with `listener` subscribed to it until it ends. A client that goes
   * away calls the returned function; the run goes on.
   */
  stream(runId: string, listener: (event: RunEvent) => void, onEnd: () => void): () => void {
    const pass = this.execute(runId);
    this.options.metrics?.streamOpened();
    let open = true;
    const stop = () => {
      if (!open) return;
      open = false;
      this.options.metrics?.streamClosed();
      unsubscribe();
    };
    const unsubscribe = this.bus.subscribe(runId, pass, listener, () => {
      stop();
      onEnd();
    });
    return stop;
  }

  /** Resolves when every pass running in this process has ended (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.active.size > 0) await Promise.all([...this.active.values()].map((run) => run.done));
  }

  // ---- tool outputs, cancel, modify

  async submitToolOutputs(
    threadId: string,
    runId: string,
    outputs: { tool_call_id: string; output?: string | undefined }[],
  ): Promise<{ run: RunObject; step: RunStepObject | undefined }> {
    const run = await this.storage.runs.getRun(threadId, runId);
    if (!run) throw await notFoundInThread(this.storage, threadId, 'run', runId);
    if (run.status !== 'requires_action' || !run.required_action) {
      throw invalidRequest(`Runs in status "${run.status}" do not accept tool outputs.`);
    }
    const pending = run.required_action.submit_tool_outputs.tool_calls.map((call) => call.id);
    const given = new Map<string, string>();
    for (const [index, output] of outputs.entries()) {
      if (!pending.includes(output.tool_call_id)) {
        throw invalidRequest(`Invalid 'tool_outputs[${index}].tool_call_id': no tool call with id '${quote(output.tool_call_id)}' is awaiting output.`, `tool_outputs[${index}].tool_call_id`);
      }
      if (given.has(output.tool_call_id)) {
        throw invalidRequest(`Duplicate output for tool call '${quote(output.tool_call_id)}'.`, `tool_outputs[${index}].tool_call_id`);
      }
      given.set(output.tool_call_id, output.output ?? '');
    }
    const missing = pending.filter((id) => !given.has(id));
    if (missing.length > 0) {
      throw invalidRequest(`Expected tool outputs for call_ids ${JSON.stringify(pending)}, got ${JSON.stringify([...given.keys()])}`, 'tool_outputs');
    }
    const now = nowSeconds();
    // The run row is locked first, as every other writer does, so racing writers cannot deadlock.
    return this.storage.sql.transaction(async (tx) => {
      const queued = await this.storage.runs.transition(
        runId,
        ['requires_action'],
        'queued',
        { required_action: null, locked_by: this.owner, locked_until: leaseUntilSql(this.leaseMs) },
        tx,
      );
      if (!queued) throw invalidRequest('The run is no longer awaiting tool outputs.');
      const step = await this.storage.runs.recordToolOutputs(runId, given, now, tx);
      return { run: queued, step };
    });
  }

  async cancel(threadId: string, runId: string): Promise<RunObject> {
    const run = await this.storage.runs.getRun(threadId, runId);
    if (!run) throw await notFoundInThread(this.storage, threadId, 'run', runId);
    if (run.status === 'cancelling') return run;
    if (isTerminal(run.status)) throw invalidRequest(`Cannot cancel run with status '${run.status}'.`);
    const cancelling = await this.storage.runs.transition(runId, allowedFrom('cancelling'), 'cancelling');
    if (!cancelling) return (await this.storage.runs.getRun(threadId, runId)) ?? run;
    this.bus.publish(runId, { event: 'thread.run.cancelling', data: cancelling });
    const local = this.active.get(runId);
    if (local) {
      local.controller.abort(new StopSignal('cancel'));
    } else {
      const claim = await this.storage.runs.claim(runId, this.owner, this.leaseMs);
      if (claim) {
        // No executor holds the run (it waited for tool outputs, or had not started): end it here.
        try {
          await finishCancellation(fencedWrites(this.storage, claim), runId, nowSeconds());
        } finally {
          await this.storage.runs.release(claim);
        }
        return cancelling;
      }
      // Another process executes it: told now (and its lease renewal would see `cancelling` too).
      await this.storage.sql.notify?.(RUNS_CHANNEL, JSON.stringify({ cancel: runId })).catch((error: unknown) => this.options.log.warn({ err: error, runId }, 'could not tell the other processes of a cancel; the owner sees it at its next lease renewal'));
    }
    return cancelling;
  }

  // ---- background duties

  /** Recovers runs left unfinished by a previous process, then keeps leases, orphans and expiry in hand. */
  async start(options: { recoverAll: boolean }): Promise<void> {
    // Processes sharing a PostgreSQL database hear of cancels at once, whichever one executes the run.
    this.listener = (await this.storage.sql.listen?.(RUNS_CHANNEL, (payload) => this.onNotification(payload))) ?? null;
    if (this.worker) {
      const orphans = await this.storage.runs.orphanedRuns(UNCLAIMED_GRACE_SECONDS, { includeHeld: options.recoverAll });
      for (const runId of orphans) void this.recover(runId, options.recoverAll);
    }
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  private get worker(): boolean {
    return this.options.worker !== false;
  }

  /**
   * A run to execute in the background: here, or (without a worker in this process) by a worker,
   * told over the database at once. A worker that misses the word finds the run within a few seconds.
   */
  dispatch(runId: string): void {
    if (this.worker) {
      this.execute(runId);
      return;
    }
    void this.handOn(runId);
  }

  /**
   * Lets go of a run this process holds but will not execute (no worker here, or shutting down) and
   * tells the workers over the database, at once; one that misses the word finds it at its next sweep.
   */
  private async handOn(runId: string, claim?: RunClaim): Promise<void> {
    try {
      if (claim) await this.storage.runs.release(claim);
      else await this.storage.runs.releaseHeld(runId, this.owner);
      await this.storage.sql.notify?.(RUNS_CHANNEL, JSON.stringify({ queued: runId }));
    } catch (error) {
      this.options.log.warn({ err: error, runId }, 'could not hand a run on to the workers; one finds it at its next sweep');
    }
  }

  private onNotification(payload: string): void {
    let message: { cancel?: unknown; queued?: unknown };
    try {
      message = JSON.parse(payload) as { cancel?: unknown; queued?: unknown };
    } catch {
      return;
    }
    if (typeof message.cancel === 'string') this.active.get(message.cancel)?.controller.abort(new StopSignal('cancel'));
    if (typeof message.queued === 'string' && this.worker && !this.closing) {
      // A pass of the run still ending here (it just asked for tool outputs) is followed by a new one.
      const running = this.active.get(message.queued);
      if (running) running.again = true;
      else this.execute(message.queued);
    }
  }

  private async recover(runId: string, forceRelease: boolean) {
    // An embedded store has one process, so any lease found in it at start belongs to a dead one.
    if (forceRelease) await this.storage.runs.releaseHeld(runId, null);
    this.execute(runId);
  }

  private async tick() {
    this.ticks++;
    // While closing, only the runs still finishing here are looked after: their leases must not
    // lapse during the grace period (another replica would take them over mid-answer).
    if (!this.closing) {
      await this.expireRuns().catch((error: unknown) => this.options.log.warn({ err: error }, 'run expiry failed; retrying next tick'));
    }
    if (this.ticks % this.renewEveryTicks !== 0) return;
    try {
      const claims = [...this.active.values()].flatMap((run) => (run.claim ? [run.claim] : []));
      // Leases are extended, and a run that was cancelled from another process, deleted with its
      // thread, or lost (taken over, or its lease lapsed while this process stalled) is stopped here.
      const held = new Set(await this.storage.runs.extendLeases(claims, this.leaseMs));
      for (const claim of claims) {
        if (!held.has(claim.runId)) this.active.get(claim.runId)?.controller.abort(new StopSignal('cancel'));
      }
      if (this.closing || !this.worker) return;
      for (const runId of await this.storage.runs.orphanedRuns(UNCLAIMED_GRACE_SECONDS)) {
        if (!this.active.has(runId)) this.execute(runId);
      }
    } catch (error) {
      this.options.log.warn({ err: error }, 'run maintenance failed; retrying next tick');
    }
  }

  async expireRuns(): Promise<void> {
    const now = nowSeconds();
    for (const runId of await this.storage.runs.runsAwaitingExpiry(now)) {
      const result = await this.storage.sql.transaction(async (tx) => {
        // (A claim moves a queued run to in_progress in one statement: a run claimed meanwhile is not expired.)
        const run = await this.storage.runs.transition(runId, ['requires_action', 'queued'], 'expired', { required_action: null, locked_by: null, locked_until: null }, tx);
        if (!run) return undefined;
        const steps = await this.storage.runs.endOpenSteps(runId, 'expired', { expired_at: now }, tx);
        return { run, steps };
      });
      if (!result) continue;
      for (const step of result.steps) this.bus.publish(runId, { event: 'thread.run.step.expired', data: step });
      this.bus.publish(runId, { event: 'thread.run.expired', data: result.run });
    }
  }

  /**
   * Stops background work, gives running passes `graceMs` to finish, then stops the rest; they
   * stay in progress and the next process (or another replica) resumes them.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const running = [...this.active.values()];
    if (running.length > 0) {
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(running.map((run) => run.done)),
        new Promise<void>((resolve) => {
          timeout = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timeout);
      this.stopAll();
      await Promise.all([...this.active.values()].map((run) => run.done));
    }
    if (this.timer) clearInterval(this.timer);
    await this.listener?.close();
    this.listener = null;
  }

  /** Stops every pass running here now; their runs stay in progress for the next owner to resume. */
  stopAll(): void {
    for (const run of this.active.values()) run.controller.abort(new StopSignal('shutdown'));
  }
}
