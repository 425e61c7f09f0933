/**
 * code_interpreter in runs, end to end through the official SDKs: the model (a scripted fake)
 * calls the code function, assistd runs the Python in the thread's sandboxed kernel, and the logs,
 * images and files come back in the step (streamed as deltas the SDKs accumulate), in the model's
 * next prompt, and in the message (image_file content, file_path annotations).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { toFile } from 'openai';
import { startFakeModel, type FakeModel, type FakeTurn, type RecordedRequest } from './helpers/fake-model.js';
import { withTimeout } from './helpers/harness.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { SANDBOX_DEFAULTS, BubblewrapDriver } from '../src/sandbox/sandbox.js';

type Json = any;

const sandboxProblem = await new BubblewrapDriver(SANDBOX_DEFAULTS).check();
if (sandboxProblem) process.stderr.write(`code-interpreter tests skipped: ${sandboxProblem}\n`);
const skip = sandboxProblem ? `no sandbox here: ${sandboxProblem}` : false;

let fake: FakeModel;
let server: TestServer;
const POLL = { pollIntervalMs: 20 };

/** Scripted turns by the tag in a request's first user message: each request takes the next. */
const scripts = new Map<string, ((request: RecordedRequest) => FakeTurn)[]>();
let tags = 0;
function script(...turns: (FakeTurn | ((request: RecordedRequest) => FakeTurn))[]) {
  const tag = `[[C${++tags}]]`;
  scripts.set(tag, turns.map((turn) => (typeof turn === 'function' ? turn : () => turn)));
  return tag;
}
function tagOf(request: RecordedRequest): string | undefined {
  for (const message of request.body?.messages ?? []) {
    const found = /\[\[C\d+\]\]/.exec(typeof message.content === 'string' ? message.content : JSON.stringify(message.content ?? ''));
    if (found) return found[0];
  }
  return undefined;
}
const run = (code: string): FakeTurn => ({ toolCalls: [{ name: 'code_interpreter', arguments: JSON.stringify({ code }) }] });
const lastToolOutput = (request: RecordedRequest) => request.body.messages.at(-1).content as string;
const chatRequests = () => fake.requests.filter((request) => request.path.endsWith('/chat/completions'));

before(async () => {
  fake = await startFakeModel();
  fake.onRequest((request) => {
    if (!request.path.endsWith('/chat/completions')) return undefined;
    const tag = tagOf(request);
    const turns = tag ? scripts.get(tag) : undefined;
    const next = turns?.shift();
    return next ? next(request) : undefined;
  });
  if (!sandboxProblem) server = await startTestServer({ modelUrl: fake.url, config: { assistd_settings: { code_interpreter_timeout_seconds: 5 } } });
});
after(async () => {
  await server?.close();
  await fake?.close();
});

async function assistant(extra: Json = {}) {
  return server.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }], ...extra });
}

async function steps(threadId: string, runId: string): Promise<Json[]> {
  return (await server.client.beta.threads.runs.steps.list(runId, { thread_id: threadId, order: 'asc' })).data;
}

describe('code_interpreter in runs', { skip }, () => {
  test('the Math Tutor: code runs, its logs are the step output and the model reads them; streamed deltas carry id/type once, then the input, then the outputs', async () => {
    const code = 'total = sum(range(101))\nprint(f"total={total}")';
    const tag = script(run(code), (request) => ({ text: `The sum is ${lastToolOutput(request).trim().split('=')[1]}.` }));
    const tutor = await assistant({ instructions: 'You are a personal math tutor. Write and run code to answer math questions.' });
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Add the numbers 0 to 100. ${tag}` }] });
    const deltas: Json[] = [];
    const created: Json[] = [];
    const stream = server.client.beta.threads.runs
      .stream(thread.id, { assistant_id: tutor.id })
      .on('toolCallCreated', (call) => created.push(structuredClone(call)))
      .on('toolCallDelta', (delta) => deltas.push(structuredClone(delta)));
    const finalRun: Json = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(finalRun.status, 'completed', JSON.stringify(finalRun.last_error));

    assert.equal(created.length, 1);
    assert.equal(created[0].type, 'code_interpreter');
    assert.match(created[0].id, /^call_/);
    assert.equal(deltas.map((delta) => delta.code_interpreter?.input ?? '').join(''), code, 'the input, streamed piece by piece');
    assert.ok(deltas.filter((delta) => delta.code_interpreter?.input).length >= 2, 'more than one input delta');
    assert.ok(deltas.every((delta) => delta.id === undefined), 'the id goes out once, with the first delta');
    const outputDelta = deltas.find((delta) => delta.code_interpreter?.outputs);
    assert.deepEqual(outputDelta.code_interpreter.outputs, [{ index: 0, type: 'logs', logs: 'total=5050\n' }]);

    const [toolStep, messageStep] = await steps(thread.id, finalRun.id);
    assert.equal(toolStep.type, 'tool_calls');
    assert.deepEqual(toolStep.step_details.tool_calls, [{ id: created[0].id, type: 'code_interpreter', code_interpreter: { input: code, outputs: [{ type: 'logs', logs: 'total=5050\n' }] } }]);
    assert.equal(messageStep.type, 'message_creation');
    const [answer] = (await server.client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data as Json[];
    assert.equal(answer.content[0].text.value, 'The sum is 5050.');

    const [first, second] = chatRequests().filter((request) => tagOf(request) === tag);
    assert.deepEqual(first!.body.tools.map((tool: Json) => tool.function.name), ['code_interpreter']);
    assert.match(first!.body.messages[0].content, /^You are a personal math tutor\..*\n\nYou can run Python with the code_interpreter tool\./s);
    assert.deepEqual(second!.body.messages.at(-2).tool_calls[0].function, { name: 'code_interpreter', arguments: JSON.stringify({ code }) });
    assert.equal(second!.body.messages.at(-1).content, 'total=5050\n');

    // The SDK's own accumulation of the step agrees with the stored step.
    const snapshots = stream.currentRunStepSnapshot();
    assert.ok(snapshots === undefined || snapshots.type === 'message_creation');
  });

  test('state persists across two runs on one thread (variables and imports), with numpy and pandas; openai 4.x too', async () => {
    const tag = script(
      run('import numpy as np\nimport pandas as pd\nframe = pd.DataFrame({"x": np.arange(1, 5)})\nsquares = (frame.x ** 2).tolist()\nsquares'),
      { text: 'Stored.' },
      run('print(sum(squares), np.mean(frame.x))'),
      { text: 'Done.' },
    );
    const tutor = await assistant();
    const thread = await server.clientV4.beta.threads.create({ messages: [{ role: 'user', content: `Squares please ${tag}` }] });
    const first: Json = await withTimeout(server.clientV4.beta.threads.runs.createAndPoll(thread.id, { assistant_id: tutor.id }, POLL), 'first run');
    assert.equal(first.status, 'completed');
    await server.clientV4.beta.threads.messages.create(thread.id, { role: 'user', content: 'Now sum them.' });
    const second: Json = await withTimeout(server.clientV4.beta.threads.runs.createAndPoll(thread.id, { assistant_id: tutor.id }, POLL), 'second run');
    assert.equal(second.status, 'completed');
    const [firstStep] = await steps(thread.id, first.id);
    assert.deepEqual(firstStep.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '[1, 4, 9, 16]\n' }]);
    const [secondStep] = await steps(thread.id, second.id);
    assert.deepEqual(secondStep.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '30 2.5\n' }]);
  });

  test('an uploaded CSV (the assistant\'s tool_resources) is read with pandas at /mnt/data/<filename>; a message attachment for code_interpreter appears there too', async () => {
    const csv = await server.client.files.create({ file: await toFile(Buffer.from('name,value\na,10\nb,32\n'), 'sales.csv'), purpose: 'assistants' });
    const notes = await server.client.files.create({ file: await toFile(Buffer.from('remember 7'), 'notes.txt'), purpose: 'assistants' });
    const tag = script(
      run('import pandas as pd\nimport os\ndf = pd.read_csv("/mnt/data/sales.csv")\nprint(df["value"].sum(), open("/mnt/data/notes.txt").read(), sorted(os.listdir("/mnt/data")))'),
      { text: 'The total is 42.' },
    );
    const analyst = await assistant({ tool_resources: { code_interpreter: { file_ids: [csv.id] } } });
    const thread = await server.client.beta.threads.create({
      messages: [{ role: 'user', content: `Total the sales ${tag}`, attachments: [{ file_id: notes.id, tools: [{ type: 'code_interpreter' }] }] }],
    });
    const result: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: analyst.id }, POLL), 'run');
    assert.equal(result.status, 'completed');
    const [step] = await steps(thread.id, result.id);
    assert.deepEqual(step.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: "42 remember 7 ['notes.txt', 'sales.csv']\n" }]);
    const request = chatRequests().find((item) => tagOf(item) === tag)!;
    assert.match(request.body.messages[0].content, /Files available: \/mnt\/data\/(sales\.csv, \/mnt\/data\/notes\.txt|notes\.txt, \/mnt\/data\/sales\.csv)\./);
  });

  test('a file the code writes becomes a File (assistants_output) the message links with a file_path annotation, downloadable with files.content', async () => {
    const tag = script(
      run('with open("/mnt/data/report.csv", "w") as f:\n    f.write("city,temp\\nOslo,3\\n")'),
      { chunks: ['Here is ', 'your file: [report.csv](sandbox:/mnt', '/data/report.csv).'] },
    );
    const tutor = await assistant();
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Make a CSV ${tag}` }] });
    const annotations: Json[] = [];
    const stream = server.client.beta.threads.runs.stream(thread.id, { assistant_id: tutor.id }).on('textDelta', (delta) => annotations.push(...(delta.annotations ?? [])));
    const finalRun: Json = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(finalRun.status, 'completed');
    const [message] = (await server.client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data as Json[];
    const text = message.content[0].text;
    assert.equal(text.value, 'Here is your file: [report.csv](sandbox:/mnt/data/report.csv).');
    assert.equal(text.annotations.length, 1);
    const [annotation] = text.annotations;
    assert.equal(annotation.type, 'file_path');
    assert.equal(annotation.text, 'sandbox:/mnt/data/report.csv');
    assert.equal(text.value.slice(annotation.start_index, annotation.end_index), 'sandbox:/mnt/data/report.csv');
    assert.deepEqual(annotations.map(({ index, ...rest }) => [index, rest]), [[0, annotation]], 'streamed once, with its index');
    assert.deepEqual(message.attachments, [{ file_id: annotation.file_path.file_id, tools: [{ type: 'code_interpreter' }] }]);
    const file = await server.client.files.retrieve(annotation.file_path.file_id);
    assert.equal(file.purpose, 'assistants_output');
    assert.equal(file.filename, 'report.csv');
    assert.equal(await (await server.client.files.content(file.id)).text(), 'city,temp\nOslo,3\n');
    const [step] = await steps(thread.id, finalRun.id);
    assert.deepEqual(step.step_details.tool_calls[0].code_interpreter.outputs, [], 'a with-statement prints nothing');
  });

  test('a matplotlib chart (plt.show) is an image output of the step and image_file content of the message: a valid PNG', async () => {
    const tag = script(run('import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title("squares")\nplt.show()'), { text: 'Here is the chart.' });
    const tutor = await assistant();
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Plot squares ${tag}` }] });
    const imageDone: Json[] = [];
    const stream = server.client.beta.threads.runs.stream(thread.id, { assistant_id: tutor.id }).on('imageFileDone', (image) => imageDone.push(image));
    const finalRun: Json = await withTimeout(stream.finalRun(), 'finalRun');
    assert.equal(finalRun.status, 'completed');
    const [step] = await steps(thread.id, finalRun.id);
    const outputs = step.step_details.tool_calls[0].code_interpreter.outputs;
    assert.equal(outputs.length, 1);
    assert.equal(outputs[0].type, 'image');
    const fileId = outputs[0].image.file_id;
    const [message] = (await server.client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data as Json[];
    assert.deepEqual(message.content[0], { type: 'image_file', image_file: { file_id: fileId } });
    assert.equal(message.content[1].text.value, 'Here is the chart.');
    assert.deepEqual(imageDone.map((image) => image.file_id), [fileId]);
    const png = Buffer.from(await (await server.client.files.content(fileId)).arrayBuffer());
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG signature');
    assert.ok(png.length > 5_000, `a real chart (${png.length} bytes)`);
    assert.equal((await server.client.files.retrieve(fileId)).purpose, 'assistants_output');

    // Deleting the thread removes its session directory (its /mnt/data) on this server.
    const sessionDir = server.codeInterpreter.pool!.sessionDir(thread.id);
    assert.ok(existsSync(sessionDir));
    await server.client.beta.threads.delete(thread.id);
    assert.equal(existsSync(sessionDir), false);
  });

  test('tool_choice {type: "code_interpreter"} forces the code function; an exception is an error in the logs the model reads, and the kernel lives on', async () => {
    const tag = script(run('1 / 0'), (request) => ({ text: lastToolOutput(request).includes('ZeroDivisionError') ? 'It failed.' : 'no error seen' }), run('21 * 2'), { text: 'ok' });
    const tutor = await assistant();
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Divide ${tag}` }] });
    const first: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: tutor.id, tool_choice: { type: 'code_interpreter' } }, POLL), 'run');
    assert.equal(first.status, 'completed');
    const request = chatRequests().find((item) => tagOf(item) === tag)!;
    assert.deepEqual(request.body.tool_choice, { type: 'function', function: { name: 'code_interpreter' } });
    const [step] = await steps(thread.id, first.id);
    assert.match(step.step_details.tool_calls[0].code_interpreter.outputs[0].logs, /Traceback \(most recent call last\):\n {2}File "<cell>", line 1, in <module>\nZeroDivisionError: division by zero/);
    const [answer] = (await server.client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data as Json[];
    assert.equal(answer.content[0].text.value, 'It failed.');
    const second: Json = await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: tutor.id }, POLL), 'second run');
    const [secondStep] = await steps(thread.id, second.id);
    assert.deepEqual(secondStep.step_details.tool_calls[0].code_interpreter.outputs, [{ type: 'logs', logs: '42\n' }]);
  });
});

describe('hostile code through the server', { skip }, () => {
  test('a fork bomb and a kernel killed mid-call end as error outputs of their calls; the runs complete, the server answers, and the next call on the thread runs', async () => {
    const tag = script(
      run('import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        break\nprint("bounded")'),
      { text: 'one' },
      run('import os, signal\nos.kill(os.getpid(), signal.SIGKILL)'),
      (request) => ({ text: lastToolOutput(request) }),
      run('print(6 * 7)'),
      { text: 'three' },
    );
    const tutor = await assistant();
    const thread = await server.client.beta.threads.create({ messages: [{ role: 'user', content: `Misbehave ${tag}` }] });
    const results: Json[] = [];
    for (let index = 0; index < 3; index++) {
      results.push(await withTimeout(server.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: tutor.id }, POLL), `run ${index}`));
    }
    assert.deepEqual(results.map((result) => result.status), ['completed', 'completed', 'completed']);
    const outputs = await Promise.all(results.map(async (result) => (await steps(thread.id, result.id))[0].step_details.tool_calls[0].code_interpreter.outputs));
    assert.match(outputs[0][0].logs, /bounded/);
    assert.match(outputs[1][0].logs, /the Python session ended \(killed by SIGKILL\)/);
    assert.deepEqual(outputs[2], [{ type: 'logs', logs: '42\n' }]);
    assert.ok(Array.isArray((await server.client.beta.assistants.list()).data), 'the server answers');
  });
});

describe('code_interpreter without a sandbox', () => {
  test('a server whose sandbox cannot start runs nothing: the call is a clear tool error the model reads, and the run completes', async () => {
    const broken = await startTestServer({ modelUrl: fake.url, config: { assistd_settings: { code_interpreter_python: '/nonexistent/python3' } } });
    try {
      assert.equal(broken.codeInterpreter.pool, null);
      assert.match(broken.codeInterpreter.description, /unavailable/);
      const tag = script(run('print("never")'), (request) => ({ text: lastToolOutput(request) }));
      const tutor = await broken.client.beta.assistants.create({ model: 'gpt-4o', tools: [{ type: 'code_interpreter' }] });
      const thread = await broken.client.beta.threads.create({ messages: [{ role: 'user', content: `Run it ${tag}` }] });
      const result: Json = await withTimeout(broken.client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: tutor.id }, POLL), 'run');
      assert.equal(result.status, 'completed');
      const [step] = (await broken.client.beta.threads.runs.steps.list(result.id, { thread_id: thread.id, order: 'asc' })).data as Json[];
      const logs = step.step_details.tool_calls[0].code_interpreter.outputs[0].logs;
      assert.match(logs, /^code_interpreter cannot run code on this server: \/nonexistent\/python3 does not exist/);
      const [answer] = (await broken.client.beta.threads.messages.list(thread.id, { order: 'desc', limit: 1 })).data as Json[];
      assert.equal(answer.content[0].text.value, logs);
    } finally {
      await broken.close();
    }
  });
});
