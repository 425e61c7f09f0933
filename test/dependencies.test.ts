/**
 * What the installed tree promises: every runtime dependency declares a Node range that includes every
 * Node version the project promises (package.json `engines`), so `npm ci` on a supported Node prints no
 * EBADENGINE warning for anything the server runs; and every direct dependency is pinned exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import semver from 'semver';

const root = fileURLToPath(new URL('../../', import.meta.url));
const manifest = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(`${root}package-lock.json`, 'utf8')) as {
  packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } | string[] }>;
};

test('every runtime dependency accepts every Node version package.json promises', () => {
  const promised = manifest.engines.node;
  assert.ok(semver.validRange(promised), `engines.node is a range: ${promised}`);
  const excluding: string[] = [];
  let checked = 0;
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev) continue;
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
    if (range === undefined) continue;
    checked++;
    if (!semver.subset(promised, range)) excluding.push(`${path.replace(/^.*node_modules\//, '')}@${entry.version} wants node ${range}`);
  }
  assert.ok(checked > 5, `the lockfile records engines (${checked} runtime packages with one)`);
  assert.deepEqual(excluding, [], `runtime dependencies that exclude part of node ${promised}`);
});

test('the promise covers the Node versions the suite runs on (20 and 24)', () => {
  for (const version of ['20.20.2', '24.22.3']) {
    assert.ok(semver.satisfies(version, manifest.engines.node), `${version} satisfies ${manifest.engines.node}`);
  }
});

test('direct dependencies are pinned to exact versions', () => {
  for (const [name, spec] of Object.entries({ ...manifest.dependencies, ...manifest.devDependencies })) {
    const version = spec.startsWith('npm:') ? spec.slice(spec.lastIndexOf('@') + 1) : spec;
    assert.ok(semver.valid(version), `${name}: '${spec}' is an exact version`);
  }
});
