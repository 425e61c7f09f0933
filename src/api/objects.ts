/** Wire objects, field for field and in the order of the OpenAPI spec. */

export type Metadata = Record<string, string>;

export interface AssistantObject {
  id: string;
  object: 'assistant';
  created_at: number;
  name: string | null;
  description: string | null;
  model: string;
  instructions: string | null;
  tools: unknown[];
  tool_resources: Record<string, unknown>;
  metadata: Metadata;
  temperature: number | null;
  top_p: number | null;
  response_format: unknown;
}

export interface ThreadObject {
  id: string;
  object: 'thread';
  created_at: number;
  tool_resources: Record<string, unknown>;
  metadata: Metadata;
}

export interface MessageObject {
  id: string;
  object: 'thread.message';
  created_at: number;
  thread_id: string;
  status: 'in_progress' | 'incomplete' | 'completed';
  incomplete_details: { reason: string } | null;
  completed_at: number | null;
  incomplete_at: number | null;
  role: 'user' | 'assistant';
  content: unknown[];
  assistant_id: string | null;
  run_id: string | null;
  attachments: unknown[];
  metadata: Metadata;
}

export interface ListObject<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

export interface DeletedObject {
  id: string;
  object: string;
  deleted: true;
}

export type RunStatus =
  | 'queued'
  | 'in_progress'
  | 'requires_action'
  | 'cancelling'
  | 'cancelled'
  | 'failed'
  | 'completed'
  | 'incomplete'
  | 'expired';

export interface RunError {
  code: 'server_error' | 'rate_limit_exceeded' | 'invalid_prompt';
  message: string;
}

export interface RequiredToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface RunObject {
  id: string;
  object: 'thread.run';
  created_at: number;
  assistant_id: string;
  thread_id: string;
  status: RunStatus;
  started_at: number | null;
  expires_at: number | null;
  cancelled_at: number | null;
  failed_at: number | null;
  completed_at: number | null;
  required_action: { type: 'submit_tool_outputs'; submit_tool_outputs: { tool_calls: RequiredToolCall[] } } | null;
  last_error: RunError | null;
  model: string;
  instructions: string | null;
  tools: unknown[];
  metadata: Metadata;
  temperature: number | null;
  top_p: number | null;
  max_completion_tokens: number | null;
  max_prompt_tokens: number | null;
  truncation_strategy: { type: 'auto' | 'last_messages'; last_messages: number | null };
  incomplete_details: { reason: 'max_completion_tokens' | 'max_prompt_tokens' } | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  response_format: unknown;
  tool_choice: unknown;
  parallel_tool_calls: boolean;
}

export type StepStatus = 'in_progress' | 'cancelled' | 'failed' | 'completed' | 'expired';

export interface FunctionToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string; output: string | null };
}

export interface FileSearchToolCall {
  id: string;
  type: 'file_search';
  file_search: {
    ranking_options?: { ranker: string; score_threshold: number };
    results?: { file_id: string; file_name: string; score: number; content?: { type: 'text'; text: string }[] }[];
  };
}

export interface CodeInterpreterToolCall {
  id: string;
  type: 'code_interpreter';
  code_interpreter: {
    input: string;
    outputs: ({ type: 'logs'; logs: string } | { type: 'image'; image: { file_id: string } })[];
  };
}

export type ToolCall = FunctionToolCall | FileSearchToolCall | CodeInterpreterToolCall;

export type StepDetails =
  | { type: 'message_creation'; message_creation: { message_id: string } }
  | { type: 'tool_calls'; tool_calls: ToolCall[] };

export interface RunStepObject {
  id: string;
  object: 'thread.run.step';
  created_at: number;
  run_id: string;
  assistant_id: string;
  thread_id: string;
  type: 'message_creation' | 'tool_calls';
  status: StepStatus;
  cancelled_at: number | null;
  completed_at: number | null;
  expired_at: number | null;
  failed_at: number | null;
  last_error: RunError | null;
  step_details: StepDetails;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  metadata: Metadata;
}

export type FilePurpose = 'assistants' | 'assistants_output' | 'batch' | 'batch_output' | 'fine-tune' | 'fine-tune-results' | 'vision' | 'user_data' | 'evals';

export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: FilePurpose;
  status: 'uploaded' | 'processed' | 'error';
  status_details: string | null;
}

export interface FileCounts {
  in_progress: number;
  completed: number;
  failed: number;
  cancelled: number;
  total: number;
}

export interface VectorStoreObject {
  id: string;
  object: 'vector_store';
  created_at: number;
  name: string;
  usage_bytes: number;
  file_counts: FileCounts;
  status: 'expired' | 'in_progress' | 'completed';
  expires_after: { anchor: 'last_active_at'; days: number } | null;
  expires_at: number | null;
  last_active_at: number | null;
  metadata: Metadata;
}

export type ChunkingStrategy = { type: 'static'; static: { max_chunk_size_tokens: number; chunk_overlap_tokens: number } } | { type: 'other' };

export type FileAttributes = Record<string, string | number | boolean>;

export interface VectorStoreFileObject {
  id: string;
  object: 'vector_store.file';
  usage_bytes: number;
  created_at: number;
  vector_store_id: string;
  status: 'in_progress' | 'completed' | 'cancelled' | 'failed';
  last_error: { code: 'server_error' | 'unsupported_file' | 'invalid_file'; message: string } | null;
  chunking_strategy: ChunkingStrategy;
  attributes: FileAttributes;
}

export interface VectorStoreFileBatchObject {
  id: string;
  object: 'vector_store.files_batch';
  created_at: number;
  vector_store_id: string;
  status: 'in_progress' | 'completed' | 'cancelled' | 'failed';
  file_counts: FileCounts;
}
