import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { answerCheckOptionsFor, isCorrectAnswer, normalizeResponse } from '../lib/data/answer-check.ts';

describe('isCorrectAnswer (paper §2.5 prefix check)', () => {
  test('is case-insensitive (App. J, Table 7: "Quarterback" for gold "quarterback")', () => {
    assert.equal(isCorrectAnswer('Quarterback', 'quarterback'), true);
    assert.equal(isCorrectAnswer('JAPAN', 'Japan'), true);
  });

  test('strips surrounding whitespace and leading punctuation', () => {
    assert.equal(isCorrectAnswer(' Japan', 'Japan'), true);
    assert.equal(isCorrectAnswer('\n\t Japan \n', 'Japan'), true);
    assert.equal(isCorrectAnswer(' "Japan', 'Japan'), true);
    assert.equal(isCorrectAnswer(': Jensen', 'Jensen Huang'), true);
    assert.equal(isCorrectAnswer('... piano', 'piano'), true);
    assert.equal(normalizeResponse('  -- «Berlin '), 'Berlin');
  });

  test('an empty (or punctuation-only) output is wrong', () => {
    assert.equal(isCorrectAnswer('', 'Japan'), false);
    assert.equal(isCorrectAnswer('   ', 'Japan'), false);
    assert.equal(isCorrectAnswer(' ?.', 'Japan'), false);
  });

  test('an output that is not a prefix of the object is wrong', () => {
    assert.equal(isCorrectAnswer('China', 'Japan'), false);
    assert.equal(isCorrectAnswer('Japanese', 'Japan'), false);
    assert.equal(isCorrectAnswer('Japan.', 'Japan'), false);
    assert.equal(isCorrectAnswer('Huang', 'Jensen Huang'), false);
  });

  test('a prefix of a multi-word object is right (2 tokens rarely cover the whole object)', () => {
    assert.equal(isCorrectAnswer(' Jensen H', 'Jensen Huang'), true);
    assert.equal(isCorrectAnswer('Jensen', 'Jensen Huang'), true);
    assert.equal(isCorrectAnswer('Jensen Huang', 'Jensen Huang'), true);
    assert.equal(isCorrectAnswer('Ursa M', 'Ursa Major'), true);
  });

  test('letters and digits of any script count as alphanumeric', () => {
    assert.equal(isCorrectAnswer(' 「東京', '東京都'), true);
    assert.equal(isCorrectAnswer('«Москва', 'Москва'), true);
    assert.equal(isCorrectAnswer(' 1984', '1984'), true);
    assert.equal(isCorrectAnswer(' Émile', 'émile Zola'), true);
    // A decomposed é (e + U+0301) from a tokenizer still matches a precomposed gold é.
    assert.equal(isCorrectAnswer('Re\u0301gis', 'Régis Lacote'), true);
  });

  test('whitespace-insensitive option for zh/ja (paper §10 item 8)', () => {
    assert.equal(isCorrectAnswer('東 京', '東京都'), false);
    assert.equal(isCorrectAnswer('東 京', '東京都', { ignoreWhitespace: true }), true);
    assert.equal(isCorrectAnswer(' ジョー・ バイデン', 'ジョー・バイデン', { ignoreWhitespace: true }), true);
    assert.equal(isCorrectAnswer('  ', '東京都', { ignoreWhitespace: true }), false);
    assert.deepEqual(answerCheckOptionsFor('zh'), { ignoreWhitespace: true });
    assert.deepEqual(answerCheckOptionsFor('ja'), { ignoreWhitespace: true });
    assert.deepEqual(answerCheckOptionsFor('zh-Hans'), { ignoreWhitespace: true });
    assert.deepEqual(answerCheckOptionsFor('de'), { ignoreWhitespace: false });
    assert.deepEqual(answerCheckOptionsFor('en'), { ignoreWhitespace: false });
  });
});
