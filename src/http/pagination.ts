import { listQuerySchema } from '../api/schemas.js';
import { parseOrThrow } from '../api/validation.js';
import type { PageRequest } from '../storage/repositories.js';

/** limit/order/after/before from a query string, validated as OpenAI does. */
export function pageFromQuery(query: unknown, schema = listQuerySchema): PageRequest & Record<string, unknown> {
  const values = { ...(query as Record<string, unknown> | undefined) };
  // Query strings are text; a numeric limit is judged as the number it spells.
  if (typeof values.limit === 'string' && values.limit.trim() !== '' && Number.isFinite(Number(values.limit))) {
    values.limit = Number(values.limit);
  }
  return parseOrThrow(schema, values);
}
