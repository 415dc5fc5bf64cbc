/**
 * The first cell of every notebook: all tunable parameters in one object, each overridable from
 * the environment so the headless runner (and CI) can set them.
 *
 *   const P = params({ model: 'data/organism', relations: [] as string[], k: 3000, quick: false });
 *
 * Parameter `batchSize` is read from `RSN_BATCH_SIZE`, `k` from `RSN_K`, and so on (RSN_ + the
 * name in UPPER_SNAKE case). The default's type decides how the text is parsed:
 * number → a finite number; boolean → 1/0, true/false, yes/no, on/off; string → as is;
 * array → a comma-separated list of numbers if the default's first element is a number, of
 * strings otherwise (an empty default is a list of strings). An empty variable means "default".
 * Numbers are plain decimals ("0x10" and "1e2" are refused), and the shared numeric parameters
 * (k, kPercent, seeds, batch size, limits: PARAM_RULES) are range-checked here, once, for the
 * defaults as well as the environment, with an error naming the parameter and the allowed range.
 */
import { ENV_VARS } from '../env.ts';
import { ConfigError } from '../errors.ts';
import { parseDecimalNumber } from '../numbers.ts';

export type ParamValue = string | number | boolean | readonly string[] | readonly number[];
export type ParamDefaults = Record<string, ParamValue>;

/** The parsed parameters: literal types widened, arrays mutable copies. */
export type Params<T extends ParamDefaults> = {
  -readonly [K in keyof T]: T[K] extends string
    ? string
    : T[K] extends number
      ? number
      : T[K] extends boolean
        ? boolean
        : T[K] extends readonly number[]
          ? number[]
          : string[];
};

export interface ParamSource {
  name: string;
  env: string;
  value: ParamValue;
  /** 'default' or the environment variable that set it. */
  from: string;
}

export const ENV_PREFIX = 'RSN_';

/** Variables of the lab itself (lib/env.ts), never reported as "set but unused". */
const INFRA_ENV = new Set<string>(Object.values(ENV_VARS).map((v) => v.name));

/** `batchSize` → `RSN_BATCH_SIZE`. */
export function envName(param: string): string {
  return ENV_PREFIX + param.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9]+/g, '_').toUpperCase();
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** Allowed values of the numeric parameters the notebooks share, checked for defaults and environment values alike. */
export interface ParamRule {
  integer: boolean;
  min?: number;
  max?: number;
  /** What the allowed range means, for the error message. */
  meaning?: string;
}

export const PARAM_RULES: Readonly<Record<string, ParamRule>> = {
  k: { integer: true, min: 1, meaning: 'neurons per relation' },
  kPercent: { integer: false, min: 0, max: 100, meaning: '% of the FFN pool; 0 = use k' },
  kMaxPercent: { integer: false, min: 0.001, max: 100, meaning: 'cap on k in % of the FFN pool' },
  ks: { integer: true, min: 0, meaning: 'ks of the sweep; 0 = the original model' },
  seed: { integer: true, min: 0, max: 2 ** 31 - 1, meaning: 'split and sampling seed' },
  randomSeeds: { integer: true, min: 1, max: 1000, meaning: 'random-neuron baselines' },
  batchSize: { integer: true, min: 1, max: 65536, meaning: 'prompts per forward pass' },
  detLimit: { integer: true, min: 1, meaning: 'P^det prompts per relation' },
  maxSentences: { integer: true, min: 1, meaning: 'sentences per relation' },
  examples: { integer: true, min: 0, meaning: 'examples per relation' },
};

function ruleRange(r: ParamRule): string {
  const kind = r.integer ? 'an integer' : 'a number';
  const range = r.min !== undefined && r.max !== undefined ? ` from ${r.min} to ${r.max}` : r.min !== undefined ? ` ≥ ${r.min}` : r.max !== undefined ? ` ≤ ${r.max}` : '';
  return `${kind}${range}${r.meaning ? ` (${r.meaning})` : ''}`;
}

/** Throws a ConfigError naming the parameter (and its variable) unless `value` obeys the parameter's rule. */
export function checkParam(name: string, value: ParamValue, from = name): void {
  const rule = PARAM_RULES[name];
  if (!rule) return;
  const values = Array.isArray(value) ? value : [value];
  for (const v of values) {
    if (typeof v !== 'number') continue;
    const ok = Number.isFinite(v) && (!rule.integer || Number.isInteger(v)) && (rule.min === undefined || v >= rule.min) && (rule.max === undefined || v <= rule.max);
    if (!ok) throw new ConfigError(`parameter ${name} = ${v}${from !== name ? ` (from ${from})` : ''}: expected ${ruleRange(rule)}`, undefined, name);
  }
}

function parseNumber(text: string, env: string): number {
  return parseDecimalNumber(text.trim(), env);
}

/** Parse one environment value by the type of its default. */
export function parseParam(text: string, def: ParamValue, env: string): ParamValue {
  if (typeof def === 'number') return parseNumber(text, env);
  if (typeof def === 'boolean') {
    const t = text.trim().toLowerCase();
    if (TRUE.has(t)) return true;
    if (FALSE.has(t)) return false;
    throw new ConfigError(`${env}=${JSON.stringify(text)}: expected a boolean (1/0, true/false, yes/no, on/off)`, undefined, env);
  }
  if (typeof def === 'string') return text;
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return typeof def[0] === 'number' ? items.map((s) => parseNumber(s, env)) : items;
}

export interface ParamsOptions {
  env?: NodeJS.ProcessEnv;
  /** Print nothing (default: one line per parameter, marking the ones set from the environment). */
  quiet?: boolean;
  log?: (line: string) => void;
}

let lastSources: ParamSource[] = [];

/** A value a notebook derived from its parameters and actually used (k after capping, …). */
export interface EffectiveParam {
  value: ParamValue;
  /** How it was derived from the parameters. */
  how: string;
}

let effective: Record<string, EffectiveParam> = {};

/** The parameters of the last params() call, with where each value came from (for verdict records). */
export function currentParams(): ParamSource[] {
  return lastSources.map((s) => ({ ...s }));
}

/** Record the value a notebook actually used for `name`, so verdicts and the report show it next to the requested one. */
export function setEffective(name: string, value: ParamValue, how: string): void {
  effective = { ...effective, [name]: { value, how } };
}

/** The effective values recorded since the last params() call. */
export function currentEffective(): Record<string, EffectiveParam> {
  return { ...effective };
}

export function params<T extends ParamDefaults>(defaults: T, opts: ParamsOptions = {}): Params<T> {
  const env = opts.env ?? process.env;
  const out: Record<string, ParamValue> = {};
  const sources: ParamSource[] = [];
  for (const [name, def] of Object.entries(defaults)) {
    const key = envName(name);
    const text = env[key];
    let value: ParamValue = Array.isArray(def) ? [...(def as readonly (string | number)[])] as ParamValue : def;
    let from = 'default';
    if (text !== undefined && text !== '') {
      value = parseParam(text, def, key);
      from = key;
    }
    checkParam(name, value, from === 'default' ? name : key);
    out[name] = value;
    sources.push({ name, env: key, value, from });
  }
  lastSources = sources;
  effective = {};
  if (!opts.quiet) {
    const log = opts.log ?? ((l: string) => console.log(l));
    const width = Math.max(...sources.map((s) => s.name.length), 4);
    for (const s of sources) {
      const shown = Array.isArray(s.value) ? (s.value.length ? s.value.join(',') : '(all)') : JSON.stringify(s.value);
      log(`${s.name.padEnd(width)} = ${shown}${s.from === 'default' ? '' : `   ← ${s.from}`}`);
    }
    const used = new Set(sources.map((s) => s.env));
    const unused = Object.keys(env).filter((k) => k.startsWith(ENV_PREFIX) && !used.has(k) && !INFRA_ENV.has(k) && env[k] !== '');
    if (unused.length) log(`(not parameters of this notebook: ${unused.sort().join(', ')})`);
  }
  return out as Params<T>;
}
