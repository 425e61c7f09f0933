import { z } from 'zod';

/** Up to 16 pairs, keys ≤ 64 characters, string values ≤ 512: OpenAI's metadata rules. */
export const metadataSchema = z
  .record(z.string(), z.string())
  .nullable()
  .superRefine((metadata, context) => {
    if (metadata === null) return;
    const keys = Object.keys(metadata);
    if (keys.length > 16) {
      context.addIssue({
        code: z.ZodIssueCode.custom,
        message: `Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with ${keys.length} properties instead.`,
      });
      return;
    }
    for (const key of keys) {
      if (key.length > 64) {
        context.addIssue({
          code: z.ZodIssueCode.custom,
          path: [key],
          message: `Invalid 'metadata': keys must be at most 64 characters, but '${key.slice(0, 16)}…' has ${key.length}.`,
        });
        return;
      }
      const value = metadata[key]!;
      if (value.length > 512) {
        context.addIssue({
          code: z.ZodIssueCode.custom,
          path: [key],
          message: `Invalid 'metadata.${key}': string too long. Expected a string with maximum length 512, but got a string with length ${value.length} instead.`,
        });
        return;
      }
    }
  });

const functionObject = z
  .object({
    name: z
      .string()
      .max(64)
      .regex(/^[a-zA-Z0-9_-]+$/, "expected a name matching '^[a-zA-Z0-9_-]+$'."),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  })
  .strict();

const rankingOptions = z
  .object({
    ranker: z.enum(['auto', 'default_2024_08_21']).optional(),
    score_threshold: z.number().min(0).max(1),
  })
  .strict();

export const toolSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('code_interpreter') }).strict(),
  z
    .object({
      type: z.literal('file_search'),
      file_search: z
        .object({
          max_num_results: z.number().int().min(1).max(50).optional(),
          ranking_options: rankingOptions.optional(),
        })
        .strict()
        .optional(),
    })
    .strict(),
  z.object({ type: z.literal('function'), function: functionObject }).strict(),
]);
export type Tool = z.infer<typeof toolSchema>;

export const toolsSchema = z.array(toolSchema).max(128);

export const chunkingStrategySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto') }).strict(),
  z
    .object({
      type: z.literal('static'),
      static: z
        .object({
          max_chunk_size_tokens: z.number().int().min(100).max(4096),
          chunk_overlap_tokens: z.number().int().min(0),
        })
        .strict()
        .refine((value) => value.chunk_overlap_tokens <= value.max_chunk_size_tokens / 2, {
          message: 'chunk_overlap_tokens must not exceed half of max_chunk_size_tokens.',
          path: ['chunk_overlap_tokens'],
        }),
    })
    .strict(),
]);
export type ChunkingStrategyRequest = z.infer<typeof chunkingStrategySchema>;

export const toolResourcesSchema = z
  .object({
    code_interpreter: z.object({ file_ids: z.array(z.string()).max(20).optional() }).strict().optional(),
    file_search: z
      .object({
        vector_store_ids: z.array(z.string()).max(1).optional(),
        // created with the assistant or thread, as OpenAI allows
        vector_stores: z
          .array(
            z
              .object({
                file_ids: z.array(z.string().min(1)).max(10_000).optional(),
                chunking_strategy: chunkingStrategySchema.optional(),
                metadata: metadataSchema.optional(),
              })
              .strict(),
          )
          .max(1)
          .optional(),
      })
      .strict()
      .refine((value) => !(value.vector_store_ids?.length && value.vector_stores?.length), {
        message: 'Give either vector_store_ids or vector_stores, not both.',
        path: ['vector_stores'],
      })
      .optional(),
  })
  .strict()
  .nullable();
export type ToolResources = z.infer<typeof toolResourcesSchema>;

export const responseFormatSchema = z.union([
  z.literal('auto'),
  z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).strict(),
  z.object({ type: z.literal('json_object') }).strict(),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z
        .object({
          name: z.string().max(64).regex(/^[a-zA-Z0-9_-]+$/, "expected a name matching '^[a-zA-Z0-9_-]+$'."),
          description: z.string().optional(),
          schema: z.record(z.string(), z.unknown()).optional(),
          strict: z.boolean().nullable().optional(),
        })
        .strict(),
    })
    .strict(),
  ]),
]);

const temperature = z.number().min(0).max(2).nullable();
const topP = z.number().min(0).max(1).nullable();
const reasoningEffort = z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max']).nullable();

const assistantFields = {
  model: z.string().min(1),
  name: z.string().max(256).nullable(),
  description: z.string().max(512).nullable(),
  instructions: z.string().max(256_000).nullable(),
  reasoning_effort: reasoningEffort,
  tools: toolsSchema,
  tool_resources: toolResourcesSchema,
  metadata: metadataSchema,
  temperature,
  top_p: topP,
  response_format: responseFormatSchema.nullable(),
};

export const createAssistantSchema = z
  .object({
    ...assistantFields,
    name: assistantFields.name.optional(),
    description: assistantFields.description.optional(),
    instructions: assistantFields.instructions.optional(),
    reasoning_effort: assistantFields.reasoning_effort.optional(),
    tools: assistantFields.tools.optional(),
    tool_resources: assistantFields.tool_resources.optional(),
    metadata: assistantFields.metadata.optional(),
    temperature: assistantFields.temperature.optional(),
    top_p: assistantFields.top_p.optional(),
    response_format: assistantFields.response_format.optional(),
  })
  .strict();
export type CreateAssistant = z.infer<typeof createAssistantSchema>;

export const modifyAssistantSchema = z.object(assistantFields).partial().strict();
export type ModifyAssistant = z.infer<typeof modifyAssistantSchema>;

/** Object ids are short prefixed base62 strings; anything else cannot name an object. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
const idSchema = z.string().min(1).regex(ID_PATTERN, 'expected an object id such as msg_abc123.');

const imageDetail = z.enum(['auto', 'low', 'high']);

const contentPartSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }).strict(),
  z
    .object({
      type: z.literal('image_url'),
      image_url: z
        .object({
          url: z
            .string()
            .regex(/^(https?:\/\/|data:image\/)/, "expected an http(s) URL or a data:image/ URL."),
          detail: imageDetail.optional(),
        })
        .strict(),
    })
    .strict(),
  z
    .object({
      type: z.literal('image_file'),
      image_file: z.object({ file_id: z.string().min(1), detail: imageDetail.optional() }).strict(),
    })
    .strict(),
]);

const attachmentSchema = z
  .object({
    file_id: z.string().min(1),
    tools: z.array(
      z.discriminatedUnion('type', [
        z.object({ type: z.literal('code_interpreter') }).strict(),
        z.object({ type: z.literal('file_search') }).strict(),
      ]),
    ),
  })
  .strict();

export const createMessageSchema = z
  .object({
    role: z.enum(['user', 'assistant']),
    content: z.union([z.string().min(1), z.array(contentPartSchema).min(1)]),
    attachments: z.array(attachmentSchema).nullable().optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();
export type CreateMessage = z.infer<typeof createMessageSchema>;

export const modifyMessageSchema = z.object({ metadata: metadataSchema.optional() }).strict();

export const createThreadSchema = z
  .object({
    messages: z.array(createMessageSchema).max(32).optional(),
    tool_resources: toolResourcesSchema.optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();
export type CreateThread = z.infer<typeof createThreadSchema>;

export const modifyThreadSchema = z
  .object({
    tool_resources: toolResourcesSchema.optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();

export const listQuerySchema = z.object({
  limit: z.number().int().min(1).max(100).default(20),
  order: z.enum(['asc', 'desc']).default('desc'),
  after: idSchema.optional(),
  before: idSchema.optional(),
});
export type ListQuery = z.infer<typeof listQuerySchema>;

export const listMessagesQuerySchema = listQuerySchema.extend({ run_id: idSchema.optional() });

/** The purposes `POST /files` accepts (the others are files the API itself writes). */
export const UPLOAD_PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] as const;

/** OpenAI's file lists default to (and allow) 10,000 a page. */
export const listFilesQuerySchema = listQuerySchema.extend({
  purpose: z.string().min(1).optional(),
  limit: z.number().int().min(1).max(10_000).default(10_000),
});

/** The text fields of a `POST /files` form, `expires_after[anchor]` style, once gathered. */
export const createFileFieldsSchema = z
  .object({
    purpose: z.enum(UPLOAD_PURPOSES),
    expires_after: z
      .object({
        anchor: z.literal('created_at'),
        seconds: z.number().int().min(3_600).max(2_592_000),
      })
      .strict()
      .optional(),
  })
  .strict();

const MAX_INT32 = 2_147_483_647;

const truncationStrategySchema = z
  .object({
    type: z.enum(['auto', 'last_messages']),
    last_messages: z.number().int().min(1).max(MAX_INT32).nullable().optional(),
  })
  .strict();

const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z
    .object({
      type: z.enum(['function', 'code_interpreter', 'file_search']),
      function: z.object({ name: z.string() }).strict().optional(),
    })
    .strict(),
]);

const runFields = {
  model: z.string().min(1).nullable().optional(),
  reasoning_effort: reasoningEffort.optional(),
  instructions: z.string().max(256_000).nullable().optional(),
  tools: toolsSchema.nullable().optional(),
  metadata: metadataSchema.optional(),
  temperature: temperature.optional(),
  top_p: topP.optional(),
  stream: z.boolean().nullable().optional(),
  max_prompt_tokens: z.number().int().min(1).max(MAX_INT32).nullable().optional(),
  max_completion_tokens: z.number().int().min(1).max(MAX_INT32).nullable().optional(),
  truncation_strategy: truncationStrategySchema.nullable().optional(),
  tool_choice: toolChoiceSchema.nullable().optional(),
  parallel_tool_calls: z.boolean().optional(),
  response_format: responseFormatSchema.nullable().optional(),
};

export const createRunSchema = z
  .object({
    assistant_id: z.string().min(1),
    additional_instructions: z.string().max(256_000).nullable().optional(),
    additional_messages: z.array(createMessageSchema).max(32).nullable().optional(),
    ...runFields,
  })
  .strict();
export type CreateRun = z.infer<typeof createRunSchema>;

export const createThreadAndRunSchema = z
  .object({
    assistant_id: z.string().min(1),
    thread: createThreadSchema.optional(),
    tool_resources: toolResourcesSchema.optional(),
    ...runFields,
  })
  .strict();
export type CreateThreadAndRun = z.infer<typeof createThreadAndRunSchema>;

export const modifyRunSchema = z.object({ metadata: metadataSchema.optional() }).strict();

export const submitToolOutputsSchema = z
  .object({
    tool_outputs: z.array(z.object({ tool_call_id: z.string().min(1), output: z.string().optional() }).strict()),
    stream: z.boolean().nullable().optional(),
  })
  .strict();

// ---------------------------------------------------------------- vector stores



export const attributesSchema = z
  .record(z.string().max(64), z.union([z.string().max(512), z.number(), z.boolean()]))
  .refine((attributes) => Object.keys(attributes).length <= 16, { message: 'at most 16 attributes.' })
  .nullable();

const vectorStoreExpirySchema = z.object({ anchor: z.literal('last_active_at'), days: z.number().int().min(1).max(365) }).strict();

export const createVectorStoreSchema = z
  .object({
    file_ids: z.array(idSchema).max(500).optional(),
    name: z.string().max(256).optional(),
    description: z.string().max(512).optional(),
    expires_after: vectorStoreExpirySchema.optional(),
    chunking_strategy: chunkingStrategySchema.optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();
export type CreateVectorStore = z.infer<typeof createVectorStoreSchema>;

export const updateVectorStoreSchema = z
  .object({
    name: z.string().max(256).nullable().optional(),
    expires_after: vectorStoreExpirySchema.nullable().optional(),
    metadata: metadataSchema.optional(),
  })
  .strict();

const vectorStoreFileSchema = z
  .object({ file_id: idSchema, chunking_strategy: chunkingStrategySchema.optional(), attributes: attributesSchema.optional() })
  .strict();
export const createVectorStoreFileSchema = vectorStoreFileSchema;

export const createFileBatchSchema = z
  .object({
    file_ids: z.array(idSchema).min(1).max(2000).optional(),
    files: z.array(vectorStoreFileSchema).min(1).max(2000).optional(),
    chunking_strategy: chunkingStrategySchema.optional(),
    attributes: attributesSchema.optional(),
  })
  .strict();

export const updateFileAttributesSchema = z.object({ attributes: attributesSchema }).strict();

export const listVectorStoreFilesQuerySchema = listQuerySchema.extend({
  filter: z.enum(['in_progress', 'completed', 'failed', 'cancelled']).optional(),
});

const comparisonFilterSchema = z
  .object({
    type: z.enum(['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin']),
    key: z.string().min(1).max(64),
    value: z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number()]))]),
  })
  .strict()
  .superRefine((filter, context) => {
    const list = Array.isArray(filter.value);
    if ((filter.type === 'in' || filter.type === 'nin') !== list) {
      context.addIssue({ code: z.ZodIssueCode.custom, path: ['value'], message: `'${filter.type}' takes ${list ? 'a single value' : 'an array of values'}.` });
    } else if (['gt', 'gte', 'lt', 'lte'].includes(filter.type) && typeof filter.value === 'boolean') {
      context.addIssue({ code: z.ZodIssueCode.custom, path: ['value'], message: `'${filter.type}' compares numbers or strings, not booleans.` });
    }
  });

type FilterShape = z.infer<typeof comparisonFilterSchema> | { type: 'and' | 'or'; filters: FilterShape[] };
export const filterSchema: z.ZodType<FilterShape> = z.lazy(() =>
  z.union([comparisonFilterSchema, z.object({ type: z.enum(['and', 'or']), filters: z.array(filterSchema) }).strict()]),
);

export const rankingOptionsSchema = z
  .object({
    ranker: z.enum(['none', 'auto', 'default-2024-11-15', 'default_2024_08_21']).optional(),
    score_threshold: z.number().min(0).max(1).optional(),
  })
  .strict();

export const searchVectorStoreSchema = z
  .object({
    query: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(10)]),
    rewrite_query: z.boolean().optional(),
    max_num_results: z.number().int().min(1).max(50).optional(),
    filters: filterSchema.optional(),
    ranking_options: rankingOptionsSchema.optional(),
  })
  .strict();
