import { z, type ZodIssue, type ZodTypeAny } from 'zod';
import { invalidRequest, quote, type ApiError } from '../errors.js';
import { truncate } from '../text.js';

const MAX_PARAM_CHARS = 200;

/** `['tools', 0, 'function', 'name']` → `tools[0].function.name`, OpenAI's way of naming a param. */
export function paramPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? quote(part) : `.${quote(part)}`;
  }
  return out;
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let value = root;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[part];
  }
  return value;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return 'a boolean';
  return 'an object';
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

function listValues(values: readonly unknown[]): string {
  const quoted = values.map((value) => `'${quote(value)}'`);
  if (quoted.length <= 1) return quoted.join('');
  if (quoted.length === 2) return `${quoted[0]} and ${quoted[1]}`;
  return `${quoted.slice(0, -1).join(', ')}, and ${quoted.at(-1)}`;
}

/** The deepest branch failure of a union is the one the caller most likely meant. */
function unionIssue(issue: Extract<ZodIssue, { code: 'invalid_union' }>): ZodIssue {
  let best: ZodIssue = issue;
  let bestDepth = -1;
  for (const error of issue.unionErrors) {
    const first = error.issues[0];
    if (first === undefined) continue;
    const depth = first.code === 'invalid_type' && first.path.length === issue.path.length ? -1 : first.path.length;
    if (depth > bestDepth) {
      best = first;
      bestDepth = depth;
    }
  }
  return best;
}

/** Turns the first zod issue into OpenAI's 400 with `param` naming the field. */
export function issueToError(issue: ZodIssue, input: unknown, paramPrefix = ''): ApiError {
  // A key of the client's own (a metadata key, an unknown parameter) can be of any length.
  const param = truncate(paramPrefix + paramPath(issue.path), MAX_PARAM_CHARS);
  const value = valueAt(input, issue.path);
  if (param === '' && issue.code !== 'unrecognized_keys') {
    return invalidRequest(`Invalid request body: expected a JSON object, but got ${describeType(value)} instead.`, null, 'invalid_type');
  }
  const missing = () => invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  if (issue.code === 'invalid_union') {
    if (value === undefined) return missing();
    const chosen = unionIssue(issue);
    if (chosen !== issue) return issueToError(chosen, input, paramPrefix);
    const expected = issue.unionErrors.flatMap((error) =>
      error.issues[0]?.code === 'invalid_type' ? [EXPECTED[error.issues[0].expected] ?? error.issues[0].expected] : [],
    );
    return invalidRequest(
      `Invalid type for '${param}': expected ${expected.join(' or ') || 'another type'}, but got ${describeType(value)} instead.`,
      param,
      'invalid_type',
    );
  }
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return missing();
      return invalidRequest(
        `Invalid type for '${param}': expected ${EXPECTED[issue.expected] ?? issue.expected}, but got ${describeType(value)} instead.`,
        param,
        'invalid_type',
      );
    case 'unrecognized_keys': {
      const key = issue.keys[0] ?? '';
      const unknownParam = quote(param ? `${param}.${key}` : key);
      return invalidRequest(`Unknown parameter: '${unknownParam}'.`, unknownParam, 'unknown_parameter');
    }
    case 'invalid_enum_value':
      return invalidRequest(
        `Invalid value: '${quote(value)}'. Supported values are: ${listValues(issue.options)}.`,
        param,
        'invalid_value',
      );
    case 'invalid_union_discriminator':
      if (value === undefined) return missing();
      return invalidRequest(
        `Invalid value: '${quote(value)}'. Supported values are: ${listValues(issue.options)}.`,
        param,
        'invalid_value',
      );
    case 'invalid_literal':
      return invalidRequest(`Invalid value for '${param}': expected '${quote(issue.expected)}'.`, param, 'invalid_value');
    case 'too_big':
    case 'too_small': {
      const above = issue.code === 'too_big';
      const limit = Number(above ? (issue as { maximum: number | bigint }).maximum : (issue as { minimum: number | bigint }).minimum);
      if (issue.type === 'string' && typeof value === 'string') {
        return invalidRequest(
          above
            ? `Invalid '${param}': string too long. Expected a string with maximum length ${limit}, but got a string with length ${value.length} instead.`
            : `Invalid '${param}': string too short. Expected a string with minimum length ${limit}, but got a string with length ${value.length} instead.`,
          param,
          above ? 'string_above_max_length' : 'string_below_min_length',
        );
      }
      if (issue.type === 'array' && Array.isArray(value)) {
        return invalidRequest(
          above
            ? `Invalid '${param}': array too long. Expected an array with maximum length ${limit}, but got an array with length ${value.length} instead.`
            : `Invalid '${param}': empty array. Expected an array with minimum length ${limit}, but got an array with length ${value.length} instead.`,
          param,
          above ? 'array_above_max_length' : 'array_below_min_length',
        );
      }
      const kind = Number.isInteger(Number(value)) ? 'integer' : 'decimal';
      return invalidRequest(
        above
          ? `Invalid '${param}': ${kind} above maximum value. Expected a value <= ${limit}, but got ${String(value)} instead.`
          : `Invalid '${param}': ${kind} below minimum value. Expected a value >= ${limit}, but got ${String(value)} instead.`,
        param,
        `${kind}_${above ? 'above_max_value' : 'below_min_value'}`,
      );
    }
    default:
      return invalidRequest(
        issue.message.startsWith('Invalid') ? issue.message : `Invalid '${param}': ${issue.message}`,
        param,
        'invalid_value',
      );
  }
}

const MAX_DEPTH = 64;
// NUL cannot be stored in PostgreSQL text or json, nor can a lone UTF-16 surrogate.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Rejects what no schema should have to think about: strings PostgreSQL cannot store, nesting deep
 * enough to exhaust a stack, and `__proto__` keys. Returns the first problem as a 400.
 */
function scanInput(value: unknown, path: (string | number)[], paramPrefix: string): ApiError | undefined {
  const param = () => truncate(paramPrefix + paramPath(path), MAX_PARAM_CHARS) || null;
  if (typeof value === 'string') {
    return UNSTORABLE.test(value)
      ? invalidRequest(`Invalid '${param()}': string contains a NUL character or an unpaired surrogate.`, param(), 'invalid_value')
      : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (path.length >= MAX_DEPTH) {
    return invalidRequest(`Invalid '${param()}': nested more than ${MAX_DEPTH} levels deep.`, param(), 'invalid_value');
  }
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  for (const [key, item] of entries) {
    if (typeof key === 'string') {
      if (key === '__proto__' || UNSTORABLE.test(key)) {
        return invalidRequest(`Invalid '${param() ?? 'body'}': unsupported key '${quote(key.replace(/\u0000/g, '\\u0000'))}'.`, param(), 'invalid_value');
      }
    }
    path.push(key);
    const problem = scanInput(item, path, paramPrefix);
    path.pop();
    if (problem) return problem;
  }
  return undefined;
}

export function parseOrThrow<Schema extends ZodTypeAny>(schema: Schema, input: unknown, paramPrefix = ''): z.output<Schema> {
  const problem = scanInput(input, [], paramPrefix);
  if (problem) throw problem;
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue === undefined) throw invalidRequest('Invalid request body.');
  throw issueToError(issue, input, paramPrefix);
}
