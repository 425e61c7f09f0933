/**
 * The README's quick start, followed as written: the server started as it says (with the model
 * options it gives pointed at a fake model), its curl session run by bash, its SDK example run by
 * node, and the start-up line it quotes for a server with no model compared with what is printed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening } from './helpers/cli.js';
import { startFakeModel, type FakeModel } from './helpers/fake-model.js';
import { tempDir } from './helpers/storage.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const QUICK_START_URL = 'http://127.0.0.1:4000';
const ANSWER = 'x = 1, since 3x = 3.';

/** The first fenced block of `language` after `heading`. */
function block(heading: string, language: string): string {
  const at = README.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `the README has a section '${heading}'`);
  const match = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(README.slice(at));
  assert.ok(match, `a \`\`\`${language} block under '${heading}'`);
  return match[1]!;
}

let fake: FakeModel;
const cleanup: string[] = [];
before(async () => {
  fake = await startFakeModel();
  fake.defaultTurn = { text: ANSWER };
});
after(async () => {
  await cleanUpCliProcesses();
  await fake?.close();
  for (const path of cleanup) rmSync(path, { recursive: true, force: true });
});

/** `node dist/src/cli.js serve` as the quick start runs it (its own fresh data dir, port 0 for 4000), with `env`. */
async function quickStart(env: Record<string, string>) {
  const cwd = tempDir('readme');
  cleanup.push(cwd);
  const cli = new CliProcess(['serve', '--port', '0'], { cwd, env: assistdEnv(env) });
  const { url } = listening(await cli.waitFor(LISTENING, 'stdout', 60_000));
  return { cli, url };
}

// One test at a time: each reads the requests the fake received while it ran.
describe('the README quick start, as written', () => {
  test('with no model configured, start-up prints the line the README quotes', async () => {
    const expected = /```\n(assistd: models: none configured.*)\n```/.exec(README)?.[1];
    assert.ok(expected, 'the quick start quotes the no-model line');
    const { cli } = await quickStart({});
    await cli.waitFor(/^assistd: models: /m);
    await cli.stop();
    assert.ok(cli.stdout.split('\n').includes(expected), cli.describe());
  });

  test('"First answer, with curl": the session runs in bash against OPENAI_API_KEY + OPENAI_BASE_URL; streamed and polled runs both answer', async () => {
    const { cli, url } = await quickStart({ OPENAI_API_KEY: 'sk-upstream-test', OPENAI_BASE_URL: fake.url });
    const seen = fake.requests.length;
    try {
      const script = block('### First answer, with curl', 'sh');
      assert.ok(script.includes(QUICK_START_URL));
      const { stdout } = await run('bash', ['-c', script.replaceAll(QUICK_START_URL, url)], { timeout: 60_000 });
      // The streamed run: the Assistants event stream, to its end.
      assert.match(stdout, /event: thread\.run\.created\n/);
      assert.match(stdout, /event: thread\.message\.delta\n/);
      assert.match(stdout, /event: thread\.run\.completed\n/);
      assert.match(stdout, /event: done\ndata: \[DONE\]/);
      // The polled run: the last line is the thread's messages, question then answer.
      const messages = JSON.parse(stdout.trim().split('\n').at(-1)!);
      assert.deepEqual(
        messages.data.map((message: { role: string; content: { text: { value: string } }[] }) => [message.role, message.content[0]!.text.value]),
        [
          ['user', 'Solve 2x - 4 = 10'],
          ['assistant', ANSWER],
        ],
      );
      const upstream = fake.requests.slice(seen);
      assert.equal(upstream.length, 2, 'two runs, one model call each');
      for (const request of upstream) {
        assert.equal(request.body.model, 'gpt-4o-mini');
        assert.equal(request.headers.authorization, 'Bearer sk-upstream-test');
      }
    } finally {
      await cli.stop();
    }
  });

  test('"First answer, with the official SDK": the example prints the streamed answer; OPENAI_BASE_URL alone (a keyless local server) is enough', async () => {
    const { cli, url } = await quickStart({ OPENAI_BASE_URL: fake.url });
    const seen = fake.requests.length;
    // Written beside the project's node_modules, so that `import OpenAI from 'openai'` resolves.
    const file = join(ROOT, 'dist', `readme-example-${process.pid}.mjs`);
    cleanup.push(file);
    try {
      const example = block('### First answer, with the official SDK', 'ts');
      assert.ok(example.includes(`${QUICK_START_URL}/v1`));
      writeFileSync(file, example.replaceAll(QUICK_START_URL, url));
      const { stdout } = await run(process.execPath, [file], { timeout: 60_000 });
      assert.equal(stdout, ANSWER);
      const upstream = fake.requests.slice(seen);
      assert.equal(upstream.length, 1);
      assert.equal(upstream[0]!.headers.authorization, undefined, 'no key is sent to a keyless server');
    } finally {
      await cli.stop();
    }
  });
});
