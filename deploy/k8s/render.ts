/**
 * Write the Kubernetes manifests of a sharded ranking as JSON files (kubectl reads JSON as it
 * reads YAML), one per object, numbered in the order run.sh applies them:
 *
 *   npx tsx deploy/k8s/render.ts --out DIR [--shards N] [--image NAME] [--model PATH] [--data PATH]
 *       [--relations a,b | --all-relations] [--gpus-per-shard G] [--work-size 100Gi]
 *       [--access-mode ReadWriteMany|ReadWriteOnce] [--known-args "…"] [--collect-args "…"]
 *       [--jobs PATH]
 *
 * With --jobs (an experiment's jobs file from pipeline.writeJobs, as the pods see it): an Indexed
 * Job of `rsn evaluate` shards and their merge into /work/job-results, instead of the ranking.
 * Without options it writes the defaults: the organism baked into the image, 3 shards, CPU
 * (deploy/k8s/manifests/ holds exactly that).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScriptCommandLine } from '../../lib/cli-args.ts';
import { parseDecimalInteger } from '../../lib/numbers.ts';
import { DEFAULT_PARAMS, k8sJobsManifests, k8sManifests, type K8sParams } from './manifests.ts';

/** The file name and JSON text of every manifest for `params`. */
export function renderManifests(params: K8sParams & { jobs?: string } = DEFAULT_PARAMS): { file: string; text: string }[] {
  const objects = params.jobs ? k8sJobsManifests({ ...params, jobs: params.jobs }) : k8sManifests(params);
  return objects.map((m, i) => ({ file: `${String(i).padStart(2, '0')}-${m.name}.json`, text: JSON.stringify(m.object, null, 2) + '\n' }));
}

function main(argv: string[]): void {
  const { values } = parseScriptCommandLine(argv, {
    out: { type: 'string' }, shards: { type: 'string' }, image: { type: 'string' }, model: { type: 'string' }, data: { type: 'string' },
    relations: { type: 'string' }, 'all-relations': { type: 'boolean', default: false }, 'gpus-per-shard': { type: 'string' },
    'work-size': { type: 'string' }, 'access-mode': { type: 'string' }, 'known-args': { type: 'string' }, 'collect-args': { type: 'string' },
    jobs: { type: 'string' },
  });
  if (!values.out) {
    process.stderr.write('error: missing --out DIR\n');
    process.exit(2);
  }
  const mode = values['access-mode'] ?? DEFAULT_PARAMS.workAccessMode;
  if (mode !== 'ReadWriteMany' && mode !== 'ReadWriteOnce') {
    process.stderr.write(`error: --access-mode must be ReadWriteMany or ReadWriteOnce, got ${JSON.stringify(mode)}\n`);
    process.exit(2);
  }
  const words = (s?: string) => (s ? s.split(/\s+/).filter(Boolean) : undefined);
  const params: K8sParams & { jobs?: string } = {
    ...DEFAULT_PARAMS,
    image: values.image ?? DEFAULT_PARAMS.image,
    shards: values.shards ? parseDecimalInteger(values.shards, '--shards', { min: 1 }) : DEFAULT_PARAMS.shards,
    model: values.model ?? DEFAULT_PARAMS.model,
    data: values.data ?? DEFAULT_PARAMS.data,
    relations: values['all-relations'] ? undefined : values.relations ? values.relations.split(',') : DEFAULT_PARAMS.relations,
    gpusPerShard: values['gpus-per-shard'] ? parseDecimalInteger(values['gpus-per-shard'], '--gpus-per-shard', { min: 0 }) : 0,
    workVolumeSize: values['work-size'] ?? DEFAULT_PARAMS.workVolumeSize,
    workAccessMode: mode,
    knownArgs: words(values['known-args']),
    collectArgs: words(values['collect-args']),
    jobs: values.jobs,
  };
  mkdirSync(values.out, { recursive: true });
  for (const m of renderManifests(params)) {
    writeFileSync(join(values.out, m.file), m.text);
    process.stdout.write(`${join(values.out, m.file)}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main(process.argv.slice(2));
