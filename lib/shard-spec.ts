/**
 * Which part of a stage one process runs: shard i of n (0-based, as Slurm's
 * SLURM_ARRAY_TASK_ID with --array=0-(n-1) and Kubernetes' JOB_COMPLETION_INDEX count). Shards
 * split a stage's forward-pass batches, never a batch: padding in a batch moves results in the
 * last float bits, so only whole batches of the single-process run give the same bytes.
 */
import { ConfigError } from './errors.ts';

export interface ShardSpec {
  index: number;
  count: number;
}

/** The whole stage in one process. */
export const WHOLE: ShardSpec = { index: 0, count: 1 };

/** "i/n" → {index: i, count: n}; `name` is what the error calls the input (e.g. "--shard"). */
export function parseShard(text: string, name = '--shard'): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new ConfigError(`${name} = ${JSON.stringify(text)}: expected i/n with 0 ≤ i < n, e.g. 0/3`, undefined, name);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(count) && count >= 1 && index < count)) {
    throw new ConfigError(`${name} = ${JSON.stringify(text)}: expected i/n with 0 ≤ i < n (shards are numbered from 0), e.g. 0/3`, undefined, name);
  }
  return { index, count };
}

export function shardName(s: ShardSpec): string {
  return `shard ${s.index}/${s.count}`;
}

/** The items [start, end) of `total` that shard i of n gets: contiguous, as even as possible, covering 0…total once. */
export function shardSlice(total: number, s: ShardSpec): [number, number] {
  return [Math.floor((s.index * total) / s.count), Math.floor(((s.index + 1) * total) / s.count)];
}

/**
 * Shard i's range of `items` processed in batches of `batchSize`: whole batches only, so the
 * shard runs exactly the batches the single-process run would. Refuses more shards than
 * batches, since a shard with no batch would have nothing to do.
 */
export function shardBatchRange(items: number, batchSize: number, s: ShardSpec, what: string): [number, number] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  if (s.count === 1) return [0, items];
  const batches = Math.ceil(items / batchSize);
  if (s.count > batches) {
    throw new ConfigError(`${shardName(s)}: the ${items} ${what} make only ${batches} batch(es) of ${batchSize}, so at most ${batches} shard(s) can share them; use fewer shards or a smaller --batch-size`, undefined, 'shard');
  }
  const [b0, b1] = shardSlice(batches, s);
  return [b0 * batchSize, Math.min(items, b1 * batchSize)];
}

/**
 * Check that the shards of one stage are all there, once each: every index of 0…n−1, one
 * count. `label(i)` names where shard i came from (its directory) for the message.
 */
export function checkShardSet(shards: readonly ShardSpec[], label: (i: number) => string): void {
  if (shards.length === 0) throw new ConfigError('no shards to merge', undefined, 'shards');
  const count = shards[0]!.count;
  const seen = new Map<number, number>();
  shards.forEach((s, i) => {
    if (s.count !== count) throw new ConfigError(`${label(i)} is ${shardName(s)} but ${label(0)} is ${shardName(shards[0]!)}: the shards come from runs with different shard counts`, undefined, 'shards');
    const other = seen.get(s.index);
    if (other !== undefined) throw new ConfigError(`${label(other)} and ${label(i)} are both ${shardName(s)} (overlapping shards); give each shard once`, undefined, 'shards');
    seen.set(s.index, i);
  });
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length) throw new ConfigError(`${missing.map((i) => shardName({ index: i, count })).join(', ')} missing: the ${shards.length} shard(s) given leave a gap; run the missing shard(s) and merge again`, undefined, 'shards');
}

/** How merges treat shards computed by different numeric engines (backendKey). */
export interface MergeOptions {
  /** Merge shards of different engines anyway; the merged provenance then names them all ("mixed: …"). */
  allowMixedEngines?: boolean;
}

/**
 * The numeric engine of a merge: the shards' common one; with shards of different engines
 * (another CPU kernel, another matMul, another GPU: results that differ in the last bits) refused,
 * naming two of them, unless `allowMixedEngines`, and then "mixed: a, b".
 */
export function mergedEngine(engines: readonly string[], label: (i: number) => string, opts: MergeOptions = {}): string {
  const distinct = [...new Set(engines)];
  if (distinct.length <= 1) return distinct[0] ?? 'unknown';
  const other = engines.findIndex((e) => e !== engines[0]);
  if (!opts.allowMixedEngines) {
    throw new ConfigError(`${label(other)} was computed with the engine ${engines[other]}, ${label(0)} with ${engines[0]}: their results differ in the last bits; merge them anyway with --allow-mixed-engines (the merged provenance then says so)`, undefined, 'shards');
  }
  return `mixed: ${distinct.join(', ')}`;
}
