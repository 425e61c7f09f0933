import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const SPEC_PATH = fileURLToPath(new URL('../../../spec/assistants-openapi.yaml', import.meta.url));

type Json = Record<string, unknown>;

/** Every `#/components/<section>/<name>` that `value` refers to, as `<section>/<name>`. */
function refsIn(value: unknown, found: Set<string>): void {
  if (Array.isArray(value)) for (const item of value) refsIn(item, found);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '$ref' && typeof item === 'string' && item.startsWith('#/components/')) found.add(item.slice('#/components/'.length));
      else refsIn(item, found);
    }
  }
}

/** The components `paths` use, directly or through other components; security schemes always. */
function usedComponents(components: Record<string, Json>, paths: Json): Record<string, Json> {
  const used = new Set<string>();
  const pending = new Set<string>();
  refsIn(paths, pending);
  while (pending.size > 0) {
    const [next] = pending;
    pending.delete(next!);
    if (used.has(next!)) continue;
    used.add(next!);
    const [section, name] = next!.split('/') as [string, string];
    refsIn(components[section]?.[name], pending);
  }
  const kept: Record<string, Json> = {};
  for (const reference of [...used].sort()) {
    const [section, name] = reference.split('/') as [string, string];
    const definition = components[section]?.[name];
    if (definition !== undefined) (kept[section] ??= {})[name] = definition;
  }
  if (components.securitySchemes) kept.securitySchemes = components.securitySchemes;
  return kept;
}

/**
 * The OpenAPI document of what this server serves: the Assistants v2 spec narrowed to the routes
 * registered here, with only the tags and components those routes use, and a title that says so.
 * Parsed on first request, not at start-up.
 */
export function openApiDocument(routes: ReadonlySet<string>): () => unknown {
  let document: Json | undefined;
  return () => {
    if (document) return document;
    const spec = parseYaml(readFileSync(SPEC_PATH, 'utf8')) as Json;
    const paths: Record<string, Json> = {};
    let operations = 0;
    const tags = new Set<string>();
    for (const [path, methods] of Object.entries((spec.paths ?? {}) as Record<string, Json>)) {
      const kept = Object.fromEntries(Object.entries(methods).filter(([method]) => routes.has(`${method.toUpperCase()} ${path}`)));
      if (Object.keys(kept).length === 0) continue;
      paths[path] = kept;
      for (const operation of Object.values(kept) as { tags?: string[] }[]) {
        operations++;
        for (const tag of operation.tags ?? []) tags.add(tag);
      }
    }
    const info = spec.info as { version: string; license?: unknown };
    // The tags the served operations carry, described where the spec describes them.
    const described = new Map(((spec.tags ?? []) as { name: string }[]).map((tag) => [tag.name, tag]));
    const tagList = [...tags].map((name) => described.get(name) ?? { name });
    document = {
      openapi: spec.openapi,
      info: {
        title: `assistd: the OpenAI Assistants API v2 as served here (${tagList.map((tag) => tag.name).join(', ')})`,
        description:
          `The ${operations} operations on ${Object.keys(paths).length} paths of OpenAI's Assistants API v2 (OpenAPI spec ${info.version}) ` +
          'that this server serves, with the schemas they use. Operations of the spec not listed here answer 404. ' +
          'file_search runs here over the vector stores; code_interpreter runs Python in a sandbox, one session per thread.',
        version: info.version,
        license: info.license,
      },
      servers: [{ url: '/v1' }],
      security: spec.security,
      tags: tagList,
      paths,
      components: usedComponents((spec.components ?? {}) as Record<string, Json>, paths),
    };
    return document;
  };
}
