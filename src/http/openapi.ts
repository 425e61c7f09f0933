import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const SPEC_PATH = fileURLToPath(new URL('../../../spec/assistants-openapi.yaml', import.meta.url));

/**
 * The OpenAPI document of what this server serves: the Assistants v2 spec with its paths narrowed
 * to the routes registered here. Parsed on first request, not at start-up.
 */
export function openApiDocument(routes: ReadonlySet<string>): () => unknown {
  let document: Record<string, unknown> | undefined;
  return () => {
    if (document) return document;
    const spec = parseYaml(readFileSync(SPEC_PATH, 'utf8')) as Record<string, unknown>;
    const paths: Record<string, Record<string, unknown>> = {};
    for (const [path, operations] of Object.entries((spec.paths ?? {}) as Record<string, Record<string, unknown>>)) {
      const kept = Object.fromEntries(
        Object.entries(operations).filter(([method]) => routes.has(`${method.toUpperCase()} ${path}`)),
      );
      if (Object.keys(kept).length > 0) paths[path] = kept;
    }
    document = { ...spec, servers: [{ url: '/v1' }], paths };
    return document;
  };
}
