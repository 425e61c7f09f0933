import { listQuerySchema } from '../api/schemas.js';
import { parseOrThrow } from '../api/validation.js';
import type { PageRequest } from '../storage/repositories.js';

/** limit/order/after/before from a query string, validated as OpenAI does. */
export function pageFromQuery(query: unknown, schema = listQuerySchema): PageRequest & Record<string, unknown> {
  return parseOrThrow(schema, query ?? {});
}
