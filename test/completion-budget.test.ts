/**
 * The max_completion_tokens counter the engine holds upstreams to: estimates per delta, exact
 * counts only past the limit, and cuts at token boundaries that decode to a prefix of the text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countTokens } from 'gpt-tokenizer';
import { CompletionBudget, completionTokens } from '../src/engine/completion-budget.js';

test('within the limit nothing is counted exactly; past it, the exact count decides', () => {
  const budget = new CompletionBudget(3);
  let exactCounts = 0;
  const exact = (text: string) => () => {
    exactCounts++;
    return countTokens(text);
  };
  assert.equal(budget.exceeds('one', exact('one')), false);
  assert.equal(budget.exceeds(' two', exact('one two')), false);
  assert.equal(budget.exceeds(' three', exact('one two three')), false);
  assert.equal(exactCounts, 0);
  assert.equal(budget.exceeds(' four', exact('one two three four')), true);
  assert.equal(exactCounts, 1);
});

test('fit keeps the longest token prefix within the limit', () => {
  assert.equal(new CompletionBudget(4).fit('', 'The quick brown fox jumps over the lazy dog.'), 'The quick brown fox');
  assert.equal(new CompletionBudget(4).fit('The quick', ' brown fox jumps'), ' brown fox');
  assert.equal(new CompletionBudget(2).fit('The quick', ' brown fox'), '');
});

test('fit never splits a character: multi-byte text is cut at a whole character', () => {
  const text = '日本語のテキストと絵文字😀😀😀があります';
  for (let limit = 1; limit <= countTokens(text); limit++) {
    const kept = new CompletionBudget(limit).fit('', text);
    assert.ok(text.startsWith(kept), `limit ${limit}: ${JSON.stringify(kept)}`);
    assert.ok(!kept.includes('\ufffd'), `limit ${limit}: no replacement character`);
    assert.ok(countTokens(kept) <= limit, `limit ${limit}: ${countTokens(kept)} tokens`);
  }
});

test('text no token cut reproduces (an unpaired surrogate) keeps none of the delta, after a bounded search', () => {
  const text = `${'word '.repeat(2_000)}\ud83d${'more '.repeat(2_000)}`;
  assert.equal(new CompletionBudget(3_000).fit('', text), '');
});

test('completionTokens counts text, tool names and arguments', () => {
  assert.equal(
    completionTokens('Hello there', [{ name: 'get_weather', arguments: '{"city":"Paris"}' }]),
    countTokens('Hello there') + countTokens('get_weather') + countTokens('{"city":"Paris"}'),
  );
});
