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
