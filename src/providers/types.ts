/**
 * The provider interface: the only thing the run engine knows about models. One file per provider,
 * each a factory taking its connection settings and returning a `LanguageModel`.
 */

/** Chat messages in OpenAI's chat-completions shape: the lingua franca every provider maps from. */
export type ChatContentPart =
  | { type: 'text'; text: string }
  | { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' } };

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string | ChatContentPart[] }
  | { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
}

export type ChatToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

export interface ModelRequest {
  messages: ChatMessage[];
  tools?: ChatTool[];
  toolChoice?: ChatToolChoice;
  parallelToolCalls?: boolean;
  temperature?: number | null;
  topP?: number | null;
  maxCompletionTokens?: number | null;
  responseFormat?: unknown;
  reasoningEffort?: string | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'other';

/** What a model stream yields, in order: deltas as they arrive, then exactly one `finish`. */
export type StreamPart =
  | { type: 'text-delta'; text: string }
  /** A piece of tool call `index`: the first piece carries `id` and `name`, later ones argument text. */
  | { type: 'tool-call-delta'; index: number; id?: string; name?: string; argumentsDelta: string }
  | { type: 'finish'; reason: FinishReason; usage: Usage | null };

export interface LanguageModel {
  /** The upstream model name, for logs. */
  readonly modelId: string;
  /**
   * Streams one completion. Throws `ProviderError` for upstream failures (before or during the
   * stream); honours `signal` by aborting the upstream request.
   */
  stream(request: ModelRequest, options: { signal: AbortSignal }): AsyncIterable<StreamPart>;
}

/** An embeddings endpoint: text in, one vector per text out, in order. */
export interface EmbeddingModel {
  /** The upstream model name, for logs. */
  readonly modelId: string;
  /** The vector size asked for (models that can shorten their vectors); null: the model's own. */
  readonly dimensions: number | null;
  /** Throws `ProviderError` for upstream failures; honours `signal`. */
  embed(texts: readonly string[], options?: { signal?: AbortSignal }): Promise<number[][]>;
}

/** An upstream failure; whether a retry may help is decided once, here. */
export class ProviderError extends Error {
  readonly isRetryable: boolean;
  constructor(
    message: string,
    readonly statusCode: number | null,
    options: { retryable?: boolean; retryAfterMs?: number | null; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ProviderError';
    this.isRetryable =
      options.retryable ??
      (statusCode === null || statusCode === 408 || statusCode === 409 || statusCode === 429 || statusCode >= 500);
    this.retryAfterMs = options.retryAfterMs ?? null;
  }
  readonly retryAfterMs: number | null;

  /** The run's `last_error.code` for this failure once retries are spent. */
  get runErrorCode(): 'rate_limit_exceeded' | 'invalid_prompt' | 'server_error' {
    if (this.statusCode === 429) return 'rate_limit_exceeded';
    if (this.statusCode === 400 || this.statusCode === 413 || this.statusCode === 422) return 'invalid_prompt';
    return 'server_error';
  }
}
