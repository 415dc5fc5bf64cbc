/**
 * The first cell of every notebook: all tunable parameters in one object, each overridable from
 * the environment so the headless runner (and CI) can set them. Every parameter the notebooks
 * share is defined once, with its default and meaning, in PARAMETERS; a notebook passes only the
 * values it sets (its own knobs, or a changed k) and gets every registered parameter back:
 *
 *   const P = params({ randomSeeds: 10, k: 36 });   // P.model, P.k, P.relations, … all present
 *
 * A name that is not registered is a notebook's own parameter (its type is its value's type).
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
import { setRunDir } from './run-dir.ts';

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
  /** 'default', 'cell' (the notebook's call set it) or the environment variable that set it. */
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

/** A registered parameter: its default, what it means (printed in every notebook), its allowed values. */
export interface ParamSpec {
  default: ParamValue;
  doc: string;
  rule?: ParamRule;
}

/**
 * Every parameter the notebooks share. The defaults are the paper's (or, where the paper is
 * silent, the design's), and the same in every notebook, so that all notebooks of one run
 * describe one setting (lib/notebook/run.ts names the run folder by them).
 */
export const PARAMETERS = {
  model: { default: 'data/organism', doc: 'model directory: the bundled organism (Hugging Face layout), a Hugging Face Llama checkpoint, or a converted one (`rsn convert`)' },
  data: { default: '', doc: 'relation data; "" = the model\'s own relations/ if it has one (the organism\'s world), else data/relations' },
  relations: { default: [] as string[], doc: 'relations to use; empty = all' },
  k: { default: 3000, doc: 'neurons zeroed per relation: the paper\'s top-3000 (0.36 % of LLaMA-2-7B\'s 835,584 FFN neurons), capped by kMaxPercent', rule: { integer: true, min: 1, meaning: 'neurons per relation' } },
  kMaxPercent: { default: 3, doc: 'cap on k in % of the model\'s FFN pool; binds only on small models (the organism: 3 % of 2,432 = 72); 100 = cap at the pool size', rule: { integer: false, min: 0.001, max: 100, meaning: 'cap on k in % of the FFN pool' } },
  kPercent: { default: 0, doc: '> 0: k = this % of the FFN pool instead of k (0.36 = the paper\'s fraction)', rule: { integer: false, min: 0, max: 100, meaning: '% of the FFN pool; 0 = use k' } },
  seed: { default: 0, doc: 'split and negative-sampling seed', rule: { integer: true, min: 0, max: 2 ** 31 - 1, meaning: 'split and sampling seed' } },
  randomSeeds: { default: 10, doc: 'random-neuron baselines (paper: 10 seeds)', rule: { integer: true, min: 1, max: 1000, meaning: 'random-neuron baselines' } },
  detLimit: { default: 400, doc: 'at most this many P^det prompts per relation in the deactivation runs', rule: { integer: true, min: 1, meaning: 'P^det prompts per relation' } },
  ks: { default: [0, 10, 50, 200, 500, 1000, 3000, 10000, 20000, 50000] as number[], doc: 'ks of the sweep (the paper\'s Fig. 5); 0 = the original model; capped at the pool size', rule: { integer: true, min: 0, meaning: 'ks of the sweep; 0 = the original model' } },
  world: { default: '', doc: 'world.json with translated templates, sentences and fact frequencies; "" = <model>/world.json' },
  languages: { default: ['de', 'es', 'fr', 'zh', 'ja'] as string[], doc: 'languages besides English (Fig. 7)' },
  maxSentences: { default: 50, doc: 'neutral sentences per relation for perplexity (Table 2)', rule: { integer: true, min: 1, meaning: 'sentences per relation' } },
  examples: { default: 2, doc: 'flipped answers shown per relation (Table 4)', rule: { integer: true, min: 0, meaning: 'examples per relation' } },
  pools: { default: ['ffn', 'all', 'attn', 'up', 'gate', 'down'] as string[], doc: 'candidate neuron pools (App. G); ffn = the paper\'s main setup' },
  frequency: { default: 'cooccurrence', doc: 'fact frequency measure (App. E): cooccurrence (subject and object in one training line) or subject' },
  relationFile: { default: 'data/examples/landmark_country_copy.json', doc: 'notebook 15: your relation (rsn-relation/1 or LRE format), path from the project root' },
  dropOverlapping: { default: true, doc: 'notebook 15: leave out base relations that share prompts with yours (a prompt would be a positive of one and a negative of the other)' },
  evalTriples: { default: 50, doc: "notebook 15: facts of your relation held out as P^eva (the paper's 50)", rule: { integer: true, min: 1, meaning: 'held-out facts' } },
  neuron: { default: '', doc: 'notebook 15: neuron to explore, "layer:site:unit" (e.g. "1:mlp.up:217") or "layer:unit"; "" = the top neuron of your relation' },
  clusterRun: { default: '', doc: 'work folder of a sharded run (deploy/slurm, deploy/k8s, or rsn known/collect/merge/rank): its known facts, ranking and activations are used, checked against model, data and settings, instead of computing them here; "" = compute here' },
  executor: { default: 'local', doc: 'where jobs run: local (this process) or slurm (job arrays on the cluster of SLURM_CONF; the filter, ranking and every experiment\'s jobs); results are the same' },
  executorWork: { default: '', doc: 'executor slurm: a folder every node sees, for the jobs, shards, merges and logs; "" = .cache/work in the lab checkout' },
  executorShards: { default: 4, doc: 'executor slurm: tasks per job array', rule: { integer: true, min: 1, max: 10000, meaning: 'tasks per job array' } },
  executorPartition: { default: '', doc: 'executor slurm: the partition; "" = the cluster\'s default' },
  executorGpus: { default: 0, doc: 'executor slurm: GPUs per task (--gres=gpu:N); 0 = none', rule: { integer: true, min: 0, max: 64, meaning: 'GPUs per task' } },
  executorSbatchArgs: { default: '', doc: 'executor slurm: more sbatch options, e.g. "--time=4:00:00 --mem=40G --account=lab"' },
  batchSize: { default: 64, doc: 'prompts per forward pass (does not change results)', rule: { integer: true, min: 1, max: 65536, meaning: 'prompts per forward pass' } },
  backend: { default: '', doc: 'TF.js backend; "" = automatic (does not change results beyond float rounding)' },
  quick: { default: false, doc: 'CI mode: 3 random seeds, 50 P^det prompts per relation, fewer sentences' },
} satisfies Record<string, ParamSpec>;

export type RegisteredParams = { -readonly [K in keyof typeof PARAMETERS]: (typeof PARAMETERS)[K]['default'] };

/** Allowed values of the numeric parameters, checked for defaults and environment values alike. */
export const PARAM_RULES: Readonly<Record<string, ParamRule>> = Object.fromEntries(
  Object.entries(PARAMETERS as Record<string, ParamSpec>).flatMap(([name, spec]) => (spec.rule ? [[name, spec.rule]] : [])),
);

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

/** The parameters a notebook gets: every registered one, with the notebook's own values and types where it set them. */
export type NotebookParams<T extends ParamDefaults> = Params<Omit<RegisteredParams, keyof T> & T>;

function sameKind(a: ParamValue, b: ParamValue): boolean {
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && (a.length === 0 || b.length === 0 || typeof a[0] === typeof b[0]);
  return typeof a === typeof b;
}

function describeKind(v: ParamValue): string {
  if (Array.isArray(v)) return v.length && typeof v[0] === 'number' ? 'a list of numbers' : 'a list of strings';
  return `a ${typeof v}`;
}

/**
 * All registered parameters (PARAMETERS) plus the notebook's own, with `values` replacing the
 * defaults and RSN_* environment variables replacing both. Prints one line per parameter with
 * its meaning, marking the ones this cell or the environment set, unless `quiet`.
 */
export function params<T extends ParamDefaults = Record<never, never>>(values: T = {} as T, opts: ParamsOptions = {}): NotebookParams<T> {
  const env = opts.env ?? process.env;
  const registered = PARAMETERS as Record<string, ParamSpec>;
  const names = [...Object.keys(registered), ...Object.keys(values).filter((n) => !(n in registered))];
  const out: Record<string, ParamValue> = {};
  const sources: ParamSource[] = [];
  for (const name of names) {
    const spec = registered[name];
    const given = Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;
    if (given !== undefined && spec && !sameKind(given, spec.default)) {
      throw new ConfigError(`parameter ${name} = ${JSON.stringify(given)}: expected ${describeKind(spec.default)} (default ${JSON.stringify(spec.default)})`, undefined, name);
    }
    const def = given ?? spec!.default;
    const key = envName(name);
    const text = env[key];
    let value: ParamValue = Array.isArray(def) ? ([...(def as readonly (string | number)[])] as ParamValue) : def;
    let from = given !== undefined && JSON.stringify(given) !== JSON.stringify(spec?.default) ? 'cell' : 'default';
    if (text !== undefined && text !== '') {
      value = parseParam(text, spec ? spec.default : def, key);
      from = key;
    }
    checkParam(name, value, from.startsWith(ENV_PREFIX) ? key : name);
    out[name] = value;
    sources.push({ name, env: key, value, from });
  }
  lastSources = sources;
  effective = {};
  // The setting may have changed: until setup() runs for it, outputs belong to no run folder.
  setRunDir(null);
  if (!opts.quiet) {
    const log = opts.log ?? ((l: string) => console.log(l));
    const width = Math.max(...sources.map((s) => s.name.length), 4);
    const shown = (v: ParamValue) => (Array.isArray(v) ? (v.length ? v.join(',') : '(all)') : JSON.stringify(v));
    const valueWidth = Math.min(24, Math.max(...sources.map((s) => shown(s.value).length)));
    for (const s of sources) {
      const mark = s.from === 'default' ? '' : s.from === 'cell' ? '  ← this cell' : `  ← ${s.from}`;
      const doc = registered[s.name]?.doc ?? "this notebook's own parameter";
      log(`${s.name.padEnd(width)} = ${shown(s.value).padEnd(valueWidth)}  // ${doc}${mark}`);
    }
    const used = new Set(sources.map((s) => s.env));
    const unused = Object.keys(env).filter((k) => k.startsWith(ENV_PREFIX) && !used.has(k) && !INFRA_ENV.has(k) && env[k] !== '');
    if (unused.length) log(`(not parameters of this notebook: ${unused.sort().join(', ')})`);
  }
  return out as NotebookParams<T>;
}
