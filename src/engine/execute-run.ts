import type {
  FunctionToolCall,
  MessageObject,
  ToolCall,
  RunError,
  RunObject,
  RunStepObject,
} from '../api/objects.js';
import type { AssistdSettings } from '../config.js';
import { isDatabaseUnavailable } from '../errors.js';
import { newId, nowSeconds } from '../ids.js';
import { sleep } from '../async.js';
import type { ModelRegistry } from '../providers/registry.js';
import { ProviderError, type ChatTool, type ChatToolChoice, type LanguageModel, type ModelRequest, type StreamPart, type Usage } from '../providers/types.js';
import type { Storage } from '../storage/index.js';
import type { SqlClient } from '../storage/sql.js';
import { buildPrompt, imageFileIds, stepsToChat } from './build-prompt.js';
import { imageDataUrls } from './images.js';
import {
  FILE_SEARCH_FUNCTION,
  FILE_SEARCH_INSTRUCTIONS,
  FILE_SEARCH_TOOL,
  fileSearchOptions,
  findCitations,
  parseQueries,
  toStoredResults,
  type FileCitation,
  type FileSearchOptions,
  type StoredResult,
} from '../tools/file-search.js';
import type { VectorStoreService } from '../ingest/vector-store-service.js';
import {
  CODE_INTERPRETER_FUNCTION,
  CODE_INTERPRETER_TOOL,
  codeInterpreterInstructions,
  findFilePaths,
  formatOutputs,
  parseCode,
  StreamingCode,
  type CodeOutput,
  type FilePathAnnotation,
} from '../tools/code-interpreter.js';
import type { CodeInterpreter, InputFile } from '../sandbox/sandbox.js';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import {
  fencedClient,
  LeaseLostError,
  messageInserts,
  newMessageRows,
  RunRepository,
  usagePlusSql,
  type ExecutionLoad,
  type PromptStep,
  type RowWrite,
  type RunClaim,
} from '../storage/runs.js';
import { FileRepository } from '../storage/files.js';
import { CompletionBudget, completionTokens } from './completion-budget.js';
import type { RunEvent, RunEventBus } from './events.js';
import { allowedFrom, isTerminal } from './run-state.js';

export interface EngineDeps {
  storage: Storage;
  models: Pick<ModelRegistry, 'resolve'>;
  /** file_search's searches (and ingestion's progress, which a search waits for). */
  vectorStores: VectorStoreService;
  /** code_interpreter's kernels (or why code cannot run here, which the model is told). */
  codeInterpreter: CodeInterpreter;
  bus: RunEventBus;
  settings: AssistdSettings;
  log: { warn(object: unknown, message?: string): void; error(object: unknown, message?: string): void };
}

/** Why an executor was stopped from outside. */
export type StopReason = 'cancel' | 'shutdown';

/** A status write found the run no longer where this pass left it (cancelled, deleted, ...). */
class TransitionLost extends Error {
  constructor(to: string) {
    super(`the run changed before it could move to ${to}`);
  }
}

/** The `error` event a stream gets when the server stops before its run could finish. */
export const SHUTDOWN_ERROR = {
  code: 'server_error',
  message: 'The server is shutting down; the run resumes when it is back. Retrieve the run to follow it.',
  param: null,
  type: 'server_error',
};

/** The `error` event a stream gets when the database went away mid-run (the run resumes when it is back). */
const DATABASE_INTERRUPTED_ERROR = {
  code: 'server_error',
  message: 'The server lost its database during the run; the run resumes when the database is back. Retrieve the run to follow it.',
  param: null,
  type: 'server_error',
};

/** The `error` event a stream gets when this process lost the run's lease (it was stalled): another executes it now. */
export const LEASE_LOST_ERROR = {
  code: 'server_error',
  message: 'This server lost the run to another one (it was too slow to renew its lease); the run goes on there. Retrieve the run to follow it.',
  param: null,
  type: 'server_error',
};

/**
 * What an executor writes through: the database fenced by its claim (every write holds the run's
 * lease, or fails with LeaseLostError and writes nothing), and the repositories over it.
 */
export interface FencedWrites {
  sql: SqlClient;
  runs: RunRepository;
  files: FileRepository;
}

/** Another process holds the run now: the pass ends without a word more written, and its streams are told. */
export function announceLeaseLost(deps: Pick<EngineDeps, 'log' | 'bus'>, runId: string): void {
  deps.log.warn({ runId }, 'lost the lease on a run; another process executes it now');
  deps.bus.publish(runId, { event: 'error', data: LEASE_LOST_ERROR });
}

/**
 * The database went away (restarted, connections cut) during a pass: the run is not at fault and
 * stays where it was written, to be resumed (or started) by the sweep once the database is back;
 * its streams are told to follow the run.
 */
export function announceDatabaseLost(deps: Pick<EngineDeps, 'log' | 'bus'>, runId: string, error: unknown): void {
  deps.log.warn({ runId, err: error }, 'the database went away during a run; it resumes once the database is back');
  deps.bus.publish(runId, { event: 'error', data: DATABASE_INTERRUPTED_ERROR });
}

export function fencedWrites(storage: Pick<Storage, 'sql'>, claim: RunClaim): FencedWrites {
  const sql = fencedClient(storage.sql, claim);
  return { sql, runs: new RunRepository(sql), files: new FileRepository(sql) };
}

/** A row write of `commit`, with the event its written row is published as. */
type EventWrite = RowWrite & { event?: string };

export class StopSignal extends Error {
  constructor(readonly reason: StopReason) {
    super(`run stopped: ${reason}`);
  }
}

const MAX_TURNS = 64;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 8_000;
const RETRY_AFTER_CAP_MS = 60_000;

/**
 * The run's tools in chat-completions form: its functions, and the built-in tools as the
 * functions the model calls to search or to run code (answered here). A function of the client's
 * own named like one of those gives way.
 */
function chatTools(run: RunObject, fileSearch: boolean, codeInterpreter: boolean): ChatTool[] {
  const builtIn = [...(fileSearch ? [FILE_SEARCH_TOOL] : []), ...(codeInterpreter ? [CODE_INTERPRETER_TOOL] : [])];
  const taken = new Set(builtIn.map((tool) => tool.function.name));
  const functions = (run.tools as { type: string; function?: ChatTool['function'] }[])
    .filter((tool) => tool.type === 'function' && tool.function && !taken.has(tool.function.name))
    .map((tool): ChatTool => ({ type: 'function', function: tool.function! }));
  return [...functions, ...builtIn];
}

function chatToolChoice(choice: unknown, tools: ChatTool[]): ChatToolChoice | undefined {
  if (tools.length === 0) return undefined;
  if (choice === 'none' || choice === 'auto' || choice === 'required') return choice;
  const named = choice as { type?: string; function?: { name: string } } | null;
  if (named?.type === 'function' && named.function) return { type: 'function', function: { name: named.function.name } };
  if (named?.type === 'file_search' && tools.some((tool) => tool.function.name === FILE_SEARCH_FUNCTION)) {
    return { type: 'function', function: { name: FILE_SEARCH_FUNCTION } };
  }
  if (named?.type === 'code_interpreter' && tools.some((tool) => tool.function.name === CODE_INTERPRETER_FUNCTION)) {
    return { type: 'function', function: { name: CODE_INTERPRETER_FUNCTION } };
  }
  // A named built-in tool that is not available: the model must still call something.
  if (named?.type) return 'required';
  return undefined;
}

/** How long a search waits for files still being indexed into the stores it searches. */
const INGESTION_WAIT_MS = 10 * 60_000;
const INGESTION_POLL_MS = 200;

const addUsage = (a: Usage | null, b: Usage): Usage => ({
  prompt_tokens: (a?.prompt_tokens ?? 0) + b.prompt_tokens,
  completion_tokens: (a?.completion_tokens ?? 0) + b.completion_tokens,
  total_tokens: (a?.total_tokens ?? 0) + b.total_tokens,
});

/** A tool call of one model call: a function for the client, or a search or code answered here. */
interface TurnCall {
  id: string;
  kind: 'function' | 'file_search' | 'code_interpreter';
  name: string;
  arguments: string;
  /** file_search: the number its results are cited by, and the results once searched. */
  ordinal?: number;
  results?: StoredResult[];
  /** code_interpreter: the code as it streams, its outputs, what the model reads back, the files it made. */
  code?: StreamingCode;
  input?: string;
  outputs?: CodeOutput[];
  output?: string;
  files?: Record<string, string>;
}

type Annotation = FileCitation | FilePathAnnotation;

/** A thread's sandbox files are named after their uploads; a name taken twice gets the file's id. */
function sandboxName(filename: string, id: string, taken: Set<string>): string {
  const base = filename.split(/[\\/]/).pop()!.replace(/[\u0000-\u001f]/g, '').trim() || id;
  const name = taken.has(base) ? `${id}-${base}` : base;
  taken.add(name);
  return name;
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g|gif|webp)$/i;
const MIME_TYPES: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp' };

/** A model's parts as withLookahead hands them on: one by one, or a whole answer at once. */
type LookaheadItem = StreamPart | { type: 'whole'; parts: StreamPart[] };

/** Resolves with null once the event loop has turned: what has not arrived by then is not in hand. */
const loopTurned = () => new Promise<null>((resolve) => setImmediate(resolve, null));

/**
 * The model's parts, looking ahead once, at the first text when `wanted()`: the parts already in
 * hand (those that arrive before the event loop turns: the rest of the same read) are gathered, and
 * when they reach the finish with nothing but text, they come as one `whole` item. Otherwise what
 * was gathered comes on part by part, and so does the rest.
 */
async function* withLookahead(stream: AsyncIterable<StreamPart>, wanted: () => boolean): AsyncGenerator<LookaheadItem> {
  const parts = stream[Symbol.asyncIterator]();
  let looked = false;
  let carried: Promise<IteratorResult<StreamPart>> | null = null;
  try {
    for (;;) {
      const next: IteratorResult<StreamPart> = await (carried ?? parts.next());
      carried = null;
      if (next.done) return;
      const part = next.value;
      if (looked || part.type !== 'text-delta' || part.text === '' || !wanted()) {
        yield part;
        continue;
      }
      looked = true;
      const gathered: StreamPart[] = [part];
      for (;;) {
        const pending = parts.next();
        const ready = await Promise.race([pending, loopTurned()]);
        if (ready === null) {
          carried = pending;
          break;
        }
        if (ready.done) break;
        gathered.push(ready.value);
        if (ready.value.type !== 'text-delta') break;
      }
      if (gathered.at(-1)!.type === 'finish') yield { type: 'whole', parts: gathered };
      else for (const item of gathered) yield item;
    }
  } finally {
    // Left early (a break, a throw): the model's stream is closed. With a read still pending, it
    // closes once that read settles (an abort settles it at once); nobody waits for that.
    if (carried) {
      carried.catch(() => {});
      void parts.return?.()?.catch(() => {});
    } else await parts.return?.();
  }
}

/** One model call's visible progress: the message it writes and the tool calls it makes. */
class Turn {
  message: MessageObject | undefined;
  messageStep: RunStepObject | undefined;
  messageDone = false;
  text = '';
  /** What clients have been sent of the message; a retry's answer may repeat it. */
  streamed = '';
  toolStep: RunStepObject | undefined;
  readonly calls = new Map<number, TurnCall>();
  /** Citations and file links found in `text`, in order, and where the next scans start. */
  annotations: Annotation[] = [];
  scanFrom = 0;
  pathScanFrom = 0;
  /** Images the run's code showed since the last message: this message shows them, above its text. */
  images: string[] = [];
  constructor(readonly number: number) {}
  /** After a divergent retry: the answer so far goes into a fresh message nobody has seen. */
  startNewMessage(text: string) {
    this.message = undefined;
    this.messageStep = undefined;
    this.messageDone = false;
    this.streamed = '';
    this.text = text;
    this.replaying = false;
    this.annotations = [];
    this.scanFrom = 0;
    this.pathScanFrom = 0;
    this.images = [];
  }
  /** Set by a retry while `streamed` still holds text the new attempt may repeat. */
  private replaying = false;
  reset() {
    this.text = '';
    this.calls.clear();
    this.replaying = this.streamed !== '';
  }
  /**
   * What clients have not seen of `text`, which `delta` just extended; `undefined` when a retried
   * answer no longer matches what was already streamed. A retry usually repeats the cut-off
   * prefix: that is not sent twice. Outside a replay this is the delta itself (no string scans:
   * the cost per delta stays constant however long the answer grows).
   */
  unseenText(delta: string): string | undefined {
    if (!this.replaying) return delta;
    if (this.streamed.startsWith(this.text)) return '';
    if (!this.text.startsWith(this.streamed)) return undefined;
    this.replaying = false;
    return this.text.slice(this.streamed.length);
  }
}

/**
 * Executes one pass of a run: from queued or in_progress until it needs tool outputs or ends.
 * Every state change is written before its event is published, and the writes that end a model
 * call (message, step, run) commit together, so a crash leaves nothing half-written that a resumed
 * pass could duplicate.
 */
export class RunExecutor {
  private run!: RunObject;
  private usageTotal: Usage | null = null;
  private currentTurn: Turn | undefined;
  private completionUsed = 0;
  /** Image files read for this pass's prompts, by id (null: gone, too large or not an image). */
  private readonly images = new Map<string, string | null>();
  /** The run's file_search options, or null when it has no file_search tool. */
  private fileSearch: FileSearchOptions | null = null;
  /** Every search of the run so far, by the number its results are cited by. */
  private readonly searchResults = new Map<number, StoredResult[]>();
  private nextOrdinal = 0;
  /** Whether the run has the code_interpreter tool; the files its code made, by path; images not yet in a message. */
  private codeInterpreter = false;
  private readonly producedFiles = new Map<string, string>();
  private pendingImages: string[] = [];
  /** The files the thread's code sees at /mnt/data (assistant's, thread's, attachments'). */
  private codeInputs: (InputFile & { fileId: string })[] = [];

  private readonly writes: FencedWrites;
  /** Whether the pass let go of its claim itself (in the write that ended the run or asked for tool outputs). */
  released = false;

  constructor(
    private readonly deps: EngineDeps,
    private readonly claim: RunClaim,
    private readonly signal: AbortSignal,
    /** What the claim read (claimForExecution): the run, moved to in_progress already if it was queued. */
    private readonly loaded: ExecutionLoad,
  ) {
    this.writes = fencedWrites(deps.storage, claim);
  }

  private get runId() {
    return this.claim.runId;
  }

  private get runs() {
    return this.writes.runs;
  }

  /**
   * Set while the current turn's message and step exist only here (its whole answer was in hand at
   * its first text, see withLookahead): the events published meanwhile, in order, held until the
   * write that ends the turn inserts them. Null otherwise.
   */
  private held: RunEvent[] | null = null;

  private publish(event: string, data: unknown) {
    if (this.held) this.held.push({ event, data });
    else this.deps.bus.publish(this.runId, { event, data });
  }

  /** Publishes the held events, now that what they announce is written. */
  private releaseHeld() {
    const held = this.held ?? [];
    this.held = null;
    for (const event of held) this.deps.bus.publish(this.runId, event);
  }

  /** Moves the run to `to`, or throws `TransitionLost` when another writer changed it first. */
  private async transition(to: RunObject['status'], fields: Record<string, unknown> = {}, client?: SqlClient) {
    const updated = await this.runs.transition(this.runId, allowedFrom(to), to, fields, client);
    if (!updated) throw new TransitionLost(to);
    this.run = updated;
    return updated;
  }

  async execute(): Promise<void> {
    const loaded = this.loaded;
    this.run = loaded.run;
    this.usageTotal = loaded.usageTotal;
    this.completionUsed = this.usageTotal?.completion_tokens ?? 0;
    const previousStatus = loaded.previousStatus;
    const resumed = previousStatus === 'in_progress';

    try {
      if (this.run.status === 'cancelling') return await this.finishCancelled();
      if (this.run.status !== 'in_progress') return;
      // The claim moved a queued run to in_progress (written, so now published).
      if (previousStatus === 'queued') this.publish('thread.run.in_progress', this.run);
      // Resuming a run found in progress (after a crash or a shutdown): a model call that was cut
      // off is redone from the last persisted step. A queued run has no unfinished work.
      if (resumed) {
        for (const blobId of await this.runs.discardUnfinishedWork(this.runId)) await this.deps.storage.blobs.delete(blobId).catch(() => {});
      }

      const model = this.deps.models.resolve(this.run.model);
      if (!model) {
        return await this.fail(undefined, { code: 'invalid_prompt', message: `The model '${this.run.model}' does not route to any configured deployment.` });
      }
      this.codeInterpreter = (this.run.tools as { type: string }[]).some((tool) => tool.type === 'code_interpreter');
      this.fileSearch = fileSearchOptions(this.run.tools);
      await this.loop(model, loaded.additionalInstructions, loaded.reasoningEffort);
    } catch (error) {
      if (error instanceof LeaseLostError) return announceLeaseLost(this.deps, this.runId);
      if (error instanceof StopSignal || this.signal.aborted) {
        const reason = error instanceof StopSignal ? error.reason : (this.signal.reason as StopSignal | undefined)?.reason;
        if (reason === 'cancel') return await this.finishCancelled();
        // Shutdown: the run stays in progress and the next owner resumes it; streams are told.
        this.publish('error', SHUTDOWN_ERROR);
        return;
      }
      // Resumed from its last written step once its lease lapses (or sooner, when it could be let go).
      if (isDatabaseUnavailable(error)) return announceDatabaseLost(this.deps, this.runId, error);
      // Whatever went wrong, a run that was cancelled meanwhile ends cancelled, and a run that is
      // gone (its thread deleted) ends here without a word.
      const current = await this.runs.getRunById(this.runId).catch(() => undefined);
      if (!current) return;
      if (current.status === 'cancelling') return await this.finishCancelled();
      if (error instanceof TransitionLost) return;
      this.deps.log.error({ err: error, runId: this.runId }, 'run failed');
      const message = 'The server had an error while processing the run.';
      await this.fail(this.currentTurn, { code: 'server_error', message }).catch(() => {});
      // A fault of ours, not the model's: streams also get the `error` event the SDKs raise.
      this.publish('error', { code: 'server_error', message, param: null, type: 'server_error' });
    }
  }

  private async loop(model: LanguageModel, additionalInstructions: string | null, reasoningEffort: string | null) {
    for (let guard = 0; guard < MAX_TURNS; guard++) {
      // A run's first pass has its thread's messages from the claim already.
      const { steps, threadMessages } =
        guard === 0 && this.loaded.threadMessages ? { steps: [], threadMessages: this.loaded.threadMessages } : await this.runs.promptHistory(this.runId, this.run.thread_id);
      this.rememberSearches(steps);
      this.rememberCode(steps);
      const last = steps.at(-1);
      const lastTurn = last?.turn ?? -1;
      // Resumed after the final message was written: nothing is left to ask the model.
      const lastTurnCalls = steps.some((step) => step.turn === lastTurn && step.type === 'tool_calls' && step.status !== 'failed');
      if (last && last.type === 'message_creation' && last.status === 'completed' && !lastTurnCalls) {
        await this.transition('completed', { completed_at: nowSeconds(), expires_at: null, required_action: null });
        this.publish('thread.run.completed', this.run);
        return;
      }

      const runMessageIds = steps.flatMap((step) =>
        step.step_details.type === 'message_creation' ? [step.step_details.message_creation.message_id] : [],
      );
      const runMessages = new Map((await this.runs.getMessagesByIds(runMessageIds)).map((message) => [message.id, message]));
      const tools = chatTools(this.run, this.fileSearch !== null, this.codeInterpreter);
      // Read once a pass: no message joins the thread while its run is active.
      if (this.codeInterpreter && guard === 0) this.codeInputs = await this.codeInputFiles(threadMessages);
      const toolInstructions = [
        this.fileSearch ? FILE_SEARCH_INSTRUCTIONS : null,
        this.codeInterpreter ? codeInterpreterInstructions(this.codeInputs.map((input) => input.name)) : null,
      ].filter((text) => text !== null);
      const prompt = buildPrompt({
        run: this.run,
        additionalInstructions,
        toolInstructions: toolInstructions.length > 0 ? toolInstructions.join('\n\n') : null,
        tools,
        threadMessages,
        runTurns: stepsToChat(steps, runMessages),
        images: await imageDataUrls(this.deps.storage, imageFileIds(threadMessages), this.images),
      });
      if ('incomplete' in prompt) return await this.finishIncomplete(undefined, 'max_prompt_tokens');

      let maxCompletionTokens: number | null = null;
      if (this.run.max_completion_tokens !== null) {
        maxCompletionTokens = this.run.max_completion_tokens - this.completionUsed;
        if (maxCompletionTokens <= 0) return await this.finishIncomplete(undefined, 'max_completion_tokens');
      }
      const request: ModelRequest = {
        messages: prompt.messages,
        tools: tools.length > 0 ? tools : undefined,
        toolChoice: chatToolChoice(this.run.tool_choice, tools),
        parallelToolCalls: tools.length > 0 ? this.run.parallel_tool_calls : undefined,
        temperature: this.run.temperature,
        topP: this.run.top_p,
        maxCompletionTokens,
        responseFormat: this.run.response_format === 'auto' ? undefined : this.run.response_format,
        reasoningEffort,
      };
      const turn = new Turn(lastTurn + 1);
      this.currentTurn = turn;
      const outcome = await this.callWithRetries(model, request, turn, prompt.promptTokens);
      if (outcome === 'ended' || outcome === 'requires_action') return;
      // 'continue': the model's searches were answered here; it is asked again with their results.
    }
    await this.fail(undefined, { code: 'server_error', message: `The run stopped after ${MAX_TURNS} model calls without an answer.` });
  }

  /** One model call, retried on retryable failures with backoff that honours Retry-After. */
  private async callWithRetries(model: LanguageModel, request: ModelRequest, turn: Turn, promptTokens: number) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.callModel(model, request, turn, promptTokens);
      } catch (error) {
        if (!(error instanceof ProviderError) || this.signal.aborted) throw error;
        if (!error.isRetryable || attempt >= this.deps.settings.modelMaxRetries) {
          await this.fail(turn, { code: error.runErrorCode, message: error.message });
          return 'ended' as const;
        }
        const backoff = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
        const wait = error.retryAfterMs !== null ? Math.min(RETRY_AFTER_CAP_MS, Math.max(error.retryAfterMs, 0)) : backoff;
        // The upstream's words stay out of the log (they may quote the prompt); its status says what failed.
        this.deps.log.warn({ runId: this.runId, attempt: attempt + 1, wait, status: error.statusCode }, 'retrying model call');
        await sleep(wait, this.signal);
        // What a broken attempt streamed is replaced by the retry's answer; tool calls it began
        // are dropped (their step fails) and the retry decides afresh.
        if (turn.toolStep) {
          const step = await this.runs.updateStep(turn.toolStep.id, {
            status: 'failed',
            failed_at: nowSeconds(),
            last_error: { code: 'server_error', message: 'The model call was cut off; it was retried.' },
          });
          if (step) this.publish('thread.run.step.failed', step);
          turn.toolStep = undefined;
        }
        turn.reset();
      }
    }
  }

  /**
   * Opens the turn's message and its step: written now, or (`unsaved`, a whole answer in hand)
   * only made here, with their events held until the turn's last write inserts them.
   */
  private async startMessage(turn: Turn, unsaved = false) {
    const { message, step } = unsaved ? newMessageRows(this.run) : await this.runs.startMessage(this.run, turn.number);
    turn.message = message;
    turn.messageStep = step;
    if (unsaved) this.held = [];
    turn.images = this.pendingImages;
    this.pendingImages = [];
    this.publish('thread.run.step.created', step);
    this.publish('thread.run.step.in_progress', step);
    this.publish('thread.message.created', message);
    this.publish('thread.message.in_progress', message);
    if (turn.images.length > 0) {
      this.publish('thread.message.delta', {
        id: message.id,
        object: 'thread.message.delta',
        delta: { content: turn.images.map((fileId, index) => ({ index, type: 'image_file', image_file: { file_id: fileId } })) },
      });
    }
  }

  /** Writes an unsaved message and its step as begun (in progress), then publishes what was held. */
  private async saveMessage(turn: Turn) {
    if (!this.held) return;
    await this.runs.startMessage(this.run, turn.number, undefined, { message: turn.message!, step: turn.messageStep! });
    this.releaseHeld();
  }

  private messageContent(turn: Turn) {
    const images = turn.images.map((fileId) => ({ type: 'image_file', image_file: { file_id: fileId } }));
    return turn.text === '' ? images : [...images, { type: 'text', text: { value: turn.text, annotations: turn.annotations } }];
  }

  /** Files the message links to that the run's code made: attached to it, as OpenAI's were. */
  private messageAttachments(turn: Turn) {
    const ids = [...new Set(turn.annotations.flatMap((annotation) => (annotation.type === 'file_path' ? [annotation.file_path.file_id] : [])))];
    return ids.map((fileId) => ({ file_id: fileId, tools: [{ type: 'code_interpreter' }] }));
  }

  /**
   * The writes that end the turn's message and its step (completed, or incomplete with a reason),
   * each with the event it makes; none when the turn has no open message.
   */
  private endMessageWrites(turn: Turn, incompleteReason?: string, usage?: Usage | null): EventWrite[] {
    if (!turn.message || !turn.messageStep || turn.messageDone) return [];
    turn.messageDone = true;
    const now = nowSeconds();
    // A link to a made file at the very end of the text is only known complete now.
    const lastLinks = this.newFilePaths(turn, true);
    if (lastLinks.length > 0) this.publishTextDelta(turn, '', lastLinks);
    const attachments = this.messageAttachments(turn);
    const message = {
      ...(incompleteReason
        ? { status: 'incomplete', content: this.messageContent(turn), incomplete_at: now, incomplete_details: { reason: incompleteReason } }
        : { status: 'completed', content: this.messageContent(turn), completed_at: now }),
      ...(attachments.length > 0 ? { attachments } : {}),
    };
    const step = { status: 'completed', completed_at: now, usage: usage ?? null };
    // Not written yet (events held): the message and its step are inserted as they end.
    const [messageWrite, stepWrite]: RowWrite[] = this.held
      ? messageInserts({ message: turn.message, step: turn.messageStep }, turn.number, { message, step })
      : [
          { table: 'messages', id: turn.message.id, fields: message },
          { table: 'run_steps', id: turn.messageStep.id, fields: step },
        ];
    return [
      { ...messageWrite!, event: 'thread.message.' + (incompleteReason ? 'incomplete' : 'completed') },
      { ...stepWrite!, event: 'thread.run.step.completed' },
    ];
  }

  /** The run's move to `to` (with `fields`) as a write of `commit`, announced as `thread.run.<to>`. */
  private runWrite(to: RunObject['status'], fields: Record<string, unknown>): EventWrite {
    // A run that ends, or waits for tool outputs, is let go of in the same write.
    const release = isTerminal(to) || to === 'requires_action' ? { locked_by: null, locked_until: null } : {};
    return { table: 'runs', id: this.runId, from: allowedFrom(to), status: to, fields: { ...fields, ...release }, event: `thread.run.${to}` };
  }

  /**
   * Writes `writes` in one statement, then publishes their events in order. A run write that finds
   * the run no longer where this pass left it throws TransitionLost (and nothing is written).
   */
  private async commit(writes: EventWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const rows = await this.runs.writeTogether(this.runId, writes);
    // Held events announce the message and step this write inserted (endMessageWrites).
    if (this.held) this.releaseHeld();
    const runIndex = writes.findIndex((write) => write.table === 'runs');
    if (runIndex !== -1) {
      const run = rows[runIndex] as RunObject | undefined;
      if (!run) throw new TransitionLost((writes[runIndex] as { status?: string }).status ?? 'its next status');
      this.run = run;
      if ((writes[runIndex]!.fields as { locked_by?: unknown }).locked_by === null) this.released = true;
    }
    for (const [index, write] of writes.entries()) if (write.event && rows[index]) this.publish(write.event, rows[index]);
  }

  private async callModel(model: LanguageModel, request: ModelRequest, turn: Turn, promptTokens: number) {
    let reason: string = 'stop';
    let usage: Usage | null = null;
    // Upstreams that ignore the limit they are sent are held to it here: at the limit the stream is
    // left (which aborts the upstream request) and the run ends incomplete.
    const budget = request.maxCompletionTokens != null ? new CompletionBudget(request.maxCompletionTokens) : null;
    let cutOff = false;
    // A whole plain answer in hand at its first text, with no stream listening, is written in one
    // statement at the end. A stream gets its first token sooner from the message's own write
    // (the end's is larger, and waits for the whole answer).
    const wholeWanted = () =>
      !this.deps.bus.hasSubscribers(this.runId) && !turn.message && !turn.toolStep && turn.streamed === '' && budget === null && this.pendingImages.length === 0;
    let whole = false;
    try {
      stream: for await (const item of withLookahead(model.stream(request, { signal: this.signal }), wholeWanted)) {
        if (item.type === 'whole') whole = true;
        for (const part of item.type === 'whole' ? item.parts : [item]) {
          if (part.type === 'text-delta') {
            if (part.text === '') continue;
            if (turn.toolStep) continue; // text after tool calls began has no open message to join
            if (!turn.message) await this.startMessage(turn, whole);
            let delta = part.text;
            if (budget?.exceeds(delta, () => completionTokens(turn.text + delta, turn.calls.values()))) {
              delta = budget.fit(turn.text, delta);
              cutOff = true;
            }
            turn.text += delta;
            let value = turn.unseenText(delta);
            if (value === undefined) {
              // A retry that says something else than clients already saw: the seen text stays as an
              // incomplete message of its own, and the new answer streams into a new one.
              const answer = turn.text;
              turn.text = turn.streamed;
              await this.commit(this.endMessageWrites(turn, 'run_failed'));
              turn.startNewMessage(answer);
              await this.startMessage(turn);
              value = answer;
            }
            if (value !== '') {
              const first = turn.streamed === '';
              // Text only counts as seen when a stream is listening; unseen text a retry may replace.
              if (this.deps.bus.hasSubscribers(this.runId)) turn.streamed += value;
              // Each citation or file link goes out once, in the delta that completes it, with its index.
              this.publishTextDelta(turn, value, [...this.newCitations(turn), ...this.newFilePaths(turn, false)], first);
            }
            if (cutOff) break stream;
          } else if (part.type === 'tool-call-delta') {
            // A piece of a call that would pass the limit is not kept: the call is cut off before it.
            const piece = (part.name ?? '') + part.argumentsDelta;
            if (budget?.exceeds(piece, () => completionTokens(turn.text, turn.calls.values()) + completionTokens(piece, []))) {
              cutOff = true;
              break stream;
            }
            if (turn.message && !turn.messageDone) {
              // One step is active at a time: the message is finished before tool calls start.
              await this.commit(this.endMessageWrites(turn));
            }
            if (!turn.toolStep) {
              turn.toolStep = await this.runs.createStep(this.run, { type: 'tool_calls', tool_calls: [] }, turn.number);
              this.publish('thread.run.step.created', turn.toolStep);
              this.publish('thread.run.step.in_progress', turn.toolStep);
            }
            let call = turn.calls.get(part.index);
            let delta: Record<string, unknown> | undefined;
            if (!call) {
              const kind =
                this.fileSearch && part.name === FILE_SEARCH_FUNCTION
                  ? 'file_search'
                  : this.codeInterpreter && part.name === CODE_INTERPRETER_FUNCTION
                    ? 'code_interpreter'
                    : 'function';
              call = { id: part.id || newId('call'), kind, name: part.name ?? '', arguments: '' };
              turn.calls.set(part.index, call);
              // A search shows as a file_search call (what the model asked it stays here); code as a
              // code_interpreter call, whose id and type go out alone first, then the input as it is written.
              if (kind === 'file_search') delta = { index: part.index, id: call.id, type: 'file_search', file_search: {} };
              else if (kind === 'code_interpreter') {
                call.code = new StreamingCode();
                this.publishStepDelta(turn, { index: part.index, id: call.id, type: 'code_interpreter', code_interpreter: { input: '', outputs: [] } });
                const input = call.code.feed(part.argumentsDelta);
                if (input !== '') delta = { index: part.index, type: 'code_interpreter', code_interpreter: { input } };
              } else delta = { index: part.index, type: 'function', id: call.id, function: { name: call.name, arguments: part.argumentsDelta, output: null } };
            } else {
              if (part.name) call.name += part.name;
              if (call.kind === 'function') delta = { index: part.index, type: 'function', function: { arguments: part.argumentsDelta } };
              else if (call.kind === 'code_interpreter') {
                const input = call.code!.feed(part.argumentsDelta);
                if (input !== '') delta = { index: part.index, type: 'code_interpreter', code_interpreter: { input } };
              }
            }
            call.arguments += part.argumentsDelta;
            if (delta) this.publishStepDelta(turn, delta);
          } else {
            reason = part.reason;
            usage = part.usage;
          }
        }
      }
      // A cancel that arrived as the stream ended still wins over completing the run.
      this.signal.throwIfAborted();
      // Upstreams that report no usage (and answers cut off here) are counted with the same
      // tokenizer as max_prompt_tokens.
      if (!usage || cutOff) {
        const completion = completionTokens(turn.text, turn.calls.values());
        usage = { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
      }
      this.usageTotal = addUsage(this.usageTotal, usage);
      this.completionUsed += usage.completion_tokens;

      if (cutOff || reason === 'length') {
        await this.saveMessage(turn);
        if (!turn.message && !turn.toolStep) await this.startMessage(turn);
        await this.finishIncomplete(turn, 'max_completion_tokens', usage);
        return 'ended' as const;
      }
      if (turn.calls.size > 0) return this.answerToolCalls(turn, usage);
      if (!turn.message) await this.startMessage(turn);
      // The message, its step and the run (with the call's usage added) in one write; an unsaved
      // message and its step are inserted by it.
      await this.commit([
        ...this.endMessageWrites(turn, reason === 'content_filter' ? 'content_filter' : undefined, usage),
        this.runWrite('completed', { completed_at: nowSeconds(), expires_at: null, usage: usagePlusSql(usage!) }),
      ]);
      return 'ended' as const;
    } finally {
      // Not written (a cancel, a failure): nothing of it was published, so nothing of it remains.
      if (this.held) {
        turn.message = undefined;
        turn.messageStep = undefined;
        turn.messageDone = false;
        turn.streamed = '';
        this.held = null;
      }
    }
  }

  /** A text delta of the turn's message, with the annotations it completes (numbered in the message's order). */
  private publishTextDelta(turn: Turn, value: string, annotations: Annotation[], first = false) {
    const text: Record<string, unknown> = first ? { value, annotations: [] } : { value };
    if (annotations.length > 0) {
      const offset = turn.annotations.length - annotations.length;
      text.annotations = annotations.map((annotation, position) => ({ index: offset + position, ...annotation }));
    }
    this.publish('thread.message.delta', {
      id: turn.message!.id,
      object: 'thread.message.delta',
      delta: { content: [{ index: turn.images.length, type: 'text', text }] },
    });
  }

  private publishStepDelta(turn: Turn, call: Record<string, unknown>) {
    this.publish('thread.run.step.delta', {
      id: turn.toolStep!.id,
      object: 'thread.run.step.delta',
      delta: { step_details: { type: 'tool_calls', tool_calls: [call] } },
    });
  }

  /** The turn's tool calls as its step shows them, in the order the model made them. */
  private stepCalls(turn: Turn): ToolCall[] {
    return [...turn.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, call]): ToolCall =>
        call.kind === 'file_search'
          ? { id: call.id, type: 'file_search', file_search: { ...this.rankingOptions(), ...(call.results ? { results: call.results } : {}) } }
          : call.kind === 'code_interpreter'
            ? { id: call.id, type: 'code_interpreter', code_interpreter: { input: call.input ?? parseCode(call.arguments), outputs: call.outputs ?? [] } }
            : { id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments, output: null } },
      );
  }

  /** What the turn's built-in calls were asked, kept beside the step for the prompts to come. */
  private toolState(turn: Turn) {
    const state: Record<string, { arguments: string; ordinal?: number; output?: string; files?: Record<string, string> }> = {};
    for (const call of turn.calls.values()) {
      if (call.kind === 'file_search' && call.ordinal !== undefined) state[call.id] = { arguments: call.arguments, ordinal: call.ordinal };
      if (call.kind === 'code_interpreter' && call.output !== undefined) state[call.id] = { arguments: call.arguments, output: call.output, files: call.files ?? {} };
    }
    return state;
  }

  private rankingOptions() {
    return { ranking_options: { ranker: this.fileSearch?.ranker ?? 'default_2024_08_21', score_threshold: this.fileSearch?.scoreThreshold ?? 0 } };
  }

  /** The searches of earlier turns (and passes), for citations and the numbering of new ones. */
  private rememberSearches(steps: PromptStep[]) {
    this.searchResults.clear();
    this.nextOrdinal = 0;
    for (const step of steps) {
      if (step.status === 'failed' || step.step_details.type !== 'tool_calls') continue;
      for (const call of step.step_details.tool_calls) {
        const state = step.tool_state[call.id];
        if (call.type !== 'file_search' || !state) continue;
        const ordinal = state.ordinal ?? 0;
        this.searchResults.set(ordinal, (call.file_search.results ?? []) as StoredResult[]);
        this.nextOrdinal = Math.max(this.nextOrdinal, ordinal + 1);
      }
    }
  }

  /** The files earlier calls made (for links) and the images no message has shown yet. */
  private rememberCode(steps: PromptStep[]) {
    this.producedFiles.clear();
    this.pendingImages = [];
    for (const step of steps) {
      if (step.status === 'failed') continue;
      if (step.step_details.type === 'message_creation') {
        this.pendingImages = [];
        continue;
      }
      for (const call of step.step_details.tool_calls) {
        if (call.type !== 'code_interpreter') continue;
        for (const [path, fileId] of Object.entries(step.tool_state[call.id]?.files ?? {})) this.producedFiles.set(path, fileId);
        for (const output of call.code_interpreter.outputs) if (output.type === 'image') this.pendingImages.push(output.image.file_id);
      }
    }
  }

  /** Links to made files completed by the text written since the last scan, recorded on the turn. */
  private newFilePaths(turn: Turn, final: boolean): FilePathAnnotation[] {
    if (this.producedFiles.size === 0) return [];
    const { annotations, next } = findFilePaths(turn.text, turn.pathScanFrom, this.producedFiles, final);
    turn.pathScanFrom = next;
    turn.annotations.push(...annotations);
    return annotations;
  }

  /** The files the thread's code sees: the assistant's and thread's code_interpreter files, and attachments for it. */
  private async codeInputFiles(threadMessages: readonly MessageObject[]): Promise<(InputFile & { fileId: string })[]> {
    const ids = new Set<string>();
    for (const resources of await this.toolResources()) for (const id of resources?.code_interpreter?.file_ids ?? []) ids.add(id);
    for (const message of threadMessages) {
      for (const attachment of message.attachments as { file_id: string; tools?: { type: string }[] }[]) {
        if (attachment.tools?.some((tool) => tool.type === 'code_interpreter')) ids.add(attachment.file_id);
      }
    }
    const taken = new Set<string>();
    const inputs: (InputFile & { fileId: string })[] = [];
    for (const id of ids) {
      const stored = await this.deps.storage.files.getStoredFile(id);
      if (!stored) continue; // deleted since: nothing to show
      const blobs = this.deps.storage.blobs;
      inputs.push({
        fileId: id,
        name: sandboxName(stored.file.filename, id, taken),
        read: () => buffer(blobs.get(stored.blobId)),
      });
    }
    return inputs;
  }

  /** A file the code made (in step `stepId`), stored as a File (purpose assistants_output). */
  private async saveOutput(stepId: string, filename: string, source: AsyncIterable<Uint8Array>, mimeType: string | null): Promise<string | null> {
    const maxBytes = this.deps.settings.maxUploadSizeMb * 1024 * 1024;
    let blobId: string | undefined;
    try {
      const blob = await this.deps.storage.blobs.put(source, { maxBytes });
      blobId = blob.id;
      const file = await this.writes.files.createFile({ filename, purpose: 'assistants_output', bytes: blob.bytes, blobId: blob.id, mimeType, expiresAt: null, madeByStep: stepId });
      return file.id;
    } catch (error) {
      if (blobId !== undefined) await this.deps.storage.blobs.delete(blobId).catch(() => {});
      if (error instanceof LeaseLostError) throw error;
      this.deps.log.warn({ err: error, runId: this.runId, filename }, 'code_interpreter: an output file could not be stored');
      return null;
    }
  }

  /** Answers a code_interpreter call: runs the code in the thread's kernel and shows what came out. */
  private async runCode(turn: Turn, index: number, call: TurnCall) {
    call.input = parseCode(call.arguments);
    const service = this.deps.codeInterpreter;
    const outputs: CodeOutput[] = [];
    const files: { path: string; fileId: string }[] = [];
    let error: { name: string } | null = null;
    if (!service.pool) {
      outputs.push({ type: 'logs', logs: service.unavailable ?? 'code_interpreter is not available on this server.' });
      error = { name: 'Unavailable' };
    } else {
      const result = await service.pool.execute(this.run.thread_id, call.input, this.codeInputs, this.signal);
      this.signal.throwIfAborted();
      error = result.error;
      if (result.logs !== '') outputs.push({ type: 'logs', logs: result.logs });
      let shown = 0;
      for (const image of result.images) {
        const fileId = await this.saveOutput(turn.toolStep!.id, `${call.id}-figure-${shown + 1}.png`, Readable.from([image]), 'image/png');
        if (fileId) {
          outputs.push({ type: 'image', image: { file_id: fileId } });
          shown++;
        }
      }
      for (const made of result.files) {
        const info = await stat(made.hostPath).catch(() => undefined);
        if (!info?.isFile()) continue;
        const extension = made.path.split('.').pop()!.toLowerCase();
        const fileId = await this.saveOutput(turn.toolStep!.id, made.path, createReadStream(made.hostPath), MIME_TYPES[extension] ?? null);
        if (!fileId) continue;
        files.push({ path: made.path, fileId });
        // A saved image is shown too, unless the call already showed its figure.
        if (shown === 0 && IMAGE_EXTENSIONS.test(made.path)) outputs.push({ type: 'image', image: { file_id: fileId } });
      }
    }
    // The files and images reach the next turn's links and message through the step (rememberCode).
    call.outputs = outputs;
    call.files = Object.fromEntries(files.map((file) => [file.path, file.fileId]));
    call.output = formatOutputs(outputs, files, error);
    this.publishStepDelta(turn, { index, type: 'code_interpreter', code_interpreter: { outputs: outputs.map((output, position) => ({ index: position, ...output })) } });
  }

  /** Citations completed by the text written since the last scan, recorded on the turn. */
  private newCitations(turn: Turn): FileCitation[] {
    if (this.searchResults.size === 0) return [];
    const { citations, next } = findCitations(turn.text, turn.scanFrom, this.searchResults);
    turn.scanFrom = next;
    turn.annotations.push(...citations);
    return citations;
  }

  /** The assistant's and the thread's tool_resources, as they are now. */
  private async toolResources() {
    const [assistant, thread] = await Promise.all([this.deps.storage.getAssistant(this.run.assistant_id), this.deps.storage.getThread(this.run.thread_id)]);
    type Resources = { file_search?: { vector_store_ids?: string[] }; code_interpreter?: { file_ids?: string[] } } | undefined;
    return [assistant?.tool_resources as Resources, thread?.tool_resources as Resources];
  }

  /** The stores a search looks in: the assistant's and the thread's (which holds files attached to messages). */
  private async searchScope() {
    const ids = new Set<string>();
    for (const resources of await this.toolResources()) for (const id of resources?.file_search?.vector_store_ids ?? []) ids.add(id);
    return [...(await this.deps.storage.vectorStores.getStores([...ids])).values()];
  }

  /** Answers a file_search call: waits for files still being indexed, searches, shows the results. */
  private async runSearch(turn: Turn, index: number, call: TurnCall) {
    call.ordinal = this.nextOrdinal++;
    const stores = await this.searchScope();
    const storeIds = stores.map((stored) => stored.store.id);
    const deadline = Date.now() + INGESTION_WAIT_MS;
    while (Date.now() < deadline && (await this.deps.storage.vectorStores.pendingCount(storeIds)) > 0) await sleep(INGESTION_POLL_MS, this.signal);
    const queries = parseQueries(call.arguments);
    const hits =
      queries.length > 0 && this.fileSearch
        ? await this.deps.vectorStores.search(stores, { queries, maxResults: this.fileSearch.maxResults, scoreThreshold: this.fileSearch.scoreThreshold })
        : [];
    call.results = toStoredResults(hits);
    this.searchResults.set(call.ordinal, call.results);
    this.publishStepDelta(turn, { index, type: 'file_search', file_search: { ...this.rankingOptions(), results: call.results } });
  }

  /**
   * The model called tools: searches are answered here, and the model is asked again ('continue');
   * function calls wait for the client's outputs (requires_action), the searches' results kept.
   */
  private async answerToolCalls(turn: Turn, usage: Usage) {
    for (const [index, call] of [...turn.calls.entries()].sort(([a], [b]) => a - b)) {
      if (call.kind === 'file_search') await this.runSearch(turn, index, call);
      if (call.kind === 'code_interpreter') await this.runCode(turn, index, call);
    }
    this.signal.throwIfAborted();
    const calls = this.stepCalls(turn);
    const functions = calls.filter((call): call is FunctionToolCall => call.type === 'function');
    const stepFields = { step_details: { type: 'tool_calls', tool_calls: calls }, tool_state: this.toolState(turn), usage };
    if (functions.length === 0) {
      await this.commit([
        { table: 'run_steps', id: turn.toolStep!.id, fields: { ...stepFields, status: 'completed', completed_at: nowSeconds() }, event: 'thread.run.step.completed' },
        { table: 'runs', id: this.runId, fields: { usage: usagePlusSql(usage) } },
      ]);
      return 'continue' as const;
    }
    const toolCalls = functions.map((call) => ({ id: call.id, type: 'function', function: { name: call.function.name, arguments: call.function.arguments } }));
    await this.commit([
      { table: 'run_steps', id: turn.toolStep!.id, fields: stepFields },
      this.runWrite('requires_action', { usage: usagePlusSql(usage), required_action: { type: 'submit_tool_outputs', submit_tool_outputs: { tool_calls: toolCalls } } }),
    ]);
    return 'requires_action' as const;
  }

  /**
   * Ends the run incomplete. The turn's message keeps its text (incomplete, `max_tokens`); tool calls
   * the model was cut off in are kept as they came, in a cancelled step, and never asked for.
   */
  private async finishIncomplete(turn: Turn | undefined, reason: 'max_completion_tokens' | 'max_prompt_tokens', usage?: Usage) {
    const now = nowSeconds();
    await this.commit([
      ...(turn ? this.endMessageWrites(turn, 'max_tokens', usage) : []),
      ...(turn?.toolStep
        ? [
            {
              table: 'run_steps' as const,
              id: turn.toolStep.id,
              fields: { status: 'cancelled', cancelled_at: now, step_details: { type: 'tool_calls', tool_calls: this.stepCalls(turn) }, usage: usage ?? null },
              event: 'thread.run.step.cancelled',
            },
          ]
        : []),
      this.runWrite('incomplete', { incomplete_details: { reason }, completed_at: now, expires_at: null, ...(usage ? { usage: usagePlusSql(usage) } : {}) }),
    ]);
  }

  private async fail(turn: Turn | undefined, lastError: RunError) {
    const now = nowSeconds();
    const { messages, steps } = await this.writes.sql.transaction(async (tx) => {
      const messages = turn?.message && !turn.messageDone
        ? [await this.runs.updateMessage(turn.message.id, { status: 'incomplete', content: this.messageContent(turn), incomplete_at: now, incomplete_details: { reason: 'run_failed' } }, tx)]
        : [];
      const steps = await this.runs.endOpenSteps(this.runId, 'failed', { failed_at: now, last_error: lastError }, tx);
      await this.transition('failed', { failed_at: now, last_error: lastError, expires_at: null, required_action: null }, tx);
      return { messages, steps };
    });
    for (const message of messages) this.publish('thread.message.incomplete', message);
    for (const step of steps) this.publish('thread.run.step.failed', step);
    this.publish('thread.run.failed', this.run);
  }

  /** Ends a cancelling run: the open message keeps what was streamed, open steps are cancelled. */
  private async finishCancelled() {
    const turn = this.currentTurn;
    const partial = turn?.message && !turn.messageDone ? { messageId: turn.message.id, text: turn.text } : undefined;
    const result = await finishCancellation(this.writes, this.runId, nowSeconds(), partial);
    if (result) {
      for (const message of result.messages) this.publish('thread.message.incomplete', message);
      for (const step of result.steps) this.publish('thread.run.step.cancelled', step);
      this.run = result.run;
      this.publish('thread.run.cancelled', result.run);
    }
  }
}

/**
 * cancelling → cancelled, with the run's open message marked incomplete (its streamed text kept
 * when `partial` gives it) and its open steps cancelled, in one transaction.
 */
export async function finishCancellation(
  writes: Pick<FencedWrites, 'sql' | 'runs'>,
  runId: string,
  now: number,
  partial?: { messageId: string; text: string },
): Promise<{ run: RunObject; steps: RunStepObject[]; messages: MessageObject[] } | undefined> {
  const runs = writes.runs;
  return writes.sql.transaction(async (tx) => {
    const openMessages = await tx.query<{ id: string }>(
      `SELECT step_details->'message_creation'->>'message_id' AS id FROM run_steps
       WHERE run_id = $1 AND status = 'in_progress' AND type = 'message_creation'`,
      [runId],
    );
    const messages: MessageObject[] = [];
    for (const { id } of openMessages.rows) {
      const fields: Record<string, unknown> = { status: 'incomplete', incomplete_at: now, incomplete_details: { reason: 'run_cancelled' } };
      if (partial?.messageId === id && partial.text !== '') fields.content = [{ type: 'text', text: { value: partial.text, annotations: [] } }];
      const message = await runs.updateMessage(id, fields, tx);
      if (message) messages.push(message);
    }
    const steps = await runs.endOpenSteps(runId, 'cancelled', { cancelled_at: now }, tx);
    const run = await runs.transition(runId, allowedFrom('cancelled'), 'cancelled', { cancelled_at: now, expires_at: null, required_action: null }, tx);
    return run ? { run, steps, messages } : undefined;
  });
}
