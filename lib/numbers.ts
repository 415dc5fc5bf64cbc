/**
 * Strict parsing of numbers typed by a user (CLI arguments, environment parameters): plain
 * decimal only. `Number()` would read "0x10" as 16, "1e2" as 100, "" as 0 and " 7 " as 7,
 * so a typo becomes a different experiment instead of an error.
 */
import { ConfigError } from './errors.ts';

const DECIMAL_INTEGER = /^[+-]?\d+$/;
const DECIMAL_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)$/;

export interface NumberRange {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
}

function describeRange(r: NumberRange, what: string): string {
  if (r.min !== undefined && r.max !== undefined) return `${what} from ${r.min} to ${r.max}`;
  if (r.min !== undefined) return `${what} ≥ ${r.min}`;
  if (r.max !== undefined) return `${what} ≤ ${r.max}`;
  return what;
}

/** Throws a ConfigError naming `name` unless `value` lies in `range`. */
export function checkRange(value: number, name: string, range: NumberRange, what = 'a number'): number {
  if ((range.min !== undefined && value < range.min) || (range.max !== undefined && value > range.max)) {
    throw new ConfigError(`${name} = ${value}: expected ${describeRange(range, what)}`, undefined, name);
  }
  return value;
}

/** A decimal integer such as "42" or "-3"; `name` is what the error message calls the input. */
export function parseDecimalInteger(text: string, name: string, range: NumberRange = {}): number {
  if (!DECIMAL_INTEGER.test(text)) throw new ConfigError(`${name} = ${JSON.stringify(text)}: expected ${describeRange(range, 'a decimal integer')}`, undefined, name);
  const v = Number(text);
  if (!Number.isSafeInteger(v)) throw new ConfigError(`${name} = ${text}: too large for an exact integer`, undefined, name);
  return checkRange(v, name, range, 'an integer');
}

/** A decimal number such as "3", "0.36" or ".5" (no exponent, hex, Infinity or NaN). */
export function parseDecimalNumber(text: string, name: string, range: NumberRange = {}): number {
  if (!DECIMAL_NUMBER.test(text)) throw new ConfigError(`${name} = ${JSON.stringify(text)}: expected ${describeRange(range, 'a decimal number')}`, undefined, name);
  return checkRange(Number(text), name, range);
}
