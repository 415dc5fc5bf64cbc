/**
 * One entry point for merging the outputs of a sharded stage: known-facts shards, activation
 * shards, ranking parts or an experiment's jobs shards, told apart by the file each kind writes. All directories must be of
 * one kind. Ranking parts are exact in any engine (AP is computed in float64 JavaScript), so
 * only known facts and activations carry the engine their forward passes ran on.
 */
import { existsSync, statSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { isActivationShardDir, mergeActivationShards } from './activation-shards.ts';
import { isKnownShardDir, mergeKnownShards } from './known-shards.ts';
import { isRankingPartDir, mergeRankingParts } from './ranking-shards.ts';
import { isJobsShardDir, mergeJobShards } from './job-shards.ts';
import type { MergeOptions } from '../shard-spec.ts';

export type ShardKind = 'known' | 'activations' | 'ranking' | 'jobs';

export function shardKind(dir: string): ShardKind {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(`${dir}: no such directory (a shard that never ran, or a typo)`, dir, 'shards');
  if (isKnownShardDir(dir)) return 'known';
  if (isActivationShardDir(dir)) return 'activations';
  if (isRankingPartDir(dir)) return 'ranking';
  if (isJobsShardDir(dir)) return 'jobs';
  throw new ConfigError(`${dir}: not a shard: expected known-shard.json (rsn known --shard), identification.json with an activation store (rsn collect), ranking-part.json (rsn rank --neurons) or jobs-shard.json (rsn evaluate --shard); the shard may not have started or finished`, dir, 'shards');
}

/** Merge shard directories of one kind into `outDir`; returns the kind and whether `outDir` already held the result. */
export async function mergeShards(dirs: readonly string[], outDir: string, log: (line: string) => void = () => {}, opts: MergeOptions = {}): Promise<{ kind: ShardKind; reused: boolean }> {
  if (dirs.length === 0) throw new ConfigError('nothing to merge: give the shard directories', undefined, 'shards');
  const kinds = dirs.map(shardKind);
  const kind = kinds[0]!;
  const other = kinds.findIndex((k) => k !== kind);
  if (other >= 0) throw new ConfigError(`${dirs[other]} holds ${kinds[other]} but ${dirs[0]} holds ${kind}: merge one stage's shards at a time`, dirs[other], 'shards');
  const merge = { known: mergeKnownShards, activations: mergeActivationShards, ranking: mergeRankingParts, jobs: mergeJobShards }[kind];
  return { kind, reused: (await merge(dirs, outDir, log, opts)).reused };
}
