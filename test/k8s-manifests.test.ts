/**
 * deploy/k8s/: the manifests validate against the Kubernetes API schemas (kubernetes-models,
 * which bundles them, so this runs offline), say what a sharded run needs (Indexed Jobs whose
 * shard is JOB_COMPLETION_INDEX, retried per index, the merge after them), and the checked-in
 * files are what render.ts writes. No cluster runs them here: this checks the objects, not a
 * scheduler.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job, type IJob } from 'kubernetes-models/batch/v1';
import { PersistentVolumeClaim } from 'kubernetes-models/v1';
import { DEFAULT_PARAMS, k8sJobsManifests, k8sManifests, type K8sParams } from '../deploy/k8s/manifests.ts';
import { renderManifests } from '../deploy/k8s/render.ts';

const dir = new URL('../deploy/k8s/manifests/', import.meta.url).pathname;
const GPU: K8sParams = { ...DEFAULT_PARAMS, shards: 8, gpusPerShard: 1, model: '/models/llama-2-7b', data: '/opt/rsn/lab/data/relations', relations: undefined, collectArgs: ['--dtype', 'float16', '--batch-size', '256'] };

function validate(object: unknown): void {
  const o = object as { kind?: string };
  if (o.kind === 'Job') new Job(object as IJob).validate();
  else if (o.kind === 'PersistentVolumeClaim') new PersistentVolumeClaim(object as ConstructorParameters<typeof PersistentVolumeClaim>[0]).validate();
  else assert.fail(`unexpected kind ${o.kind}`);
}

test('the checked-in manifests are what render.ts writes for the defaults', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const rendered = renderManifests();
  assert.deepEqual(files, rendered.map((m) => m.file));
  for (const m of rendered) assert.equal(readFileSync(join(dir, m.file), 'utf8'), m.text, `${m.file} is stale: run npx tsx deploy/k8s/render.ts --out deploy/k8s/manifests`);
});

test('every manifest validates against the Kubernetes schema (defaults and an 8-GPU 7B setting)', () => {
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json'))) validate(JSON.parse(readFileSync(join(dir, f), 'utf8')));
  for (const m of k8sManifests(GPU)) validate(m.object);
  // The validator is not a rubber stamp: a wrong type and a wrong enum value are refused.
  const known = k8sManifests()[1]!.object as IJob;
  assert.throws(() => new Job({ ...known, spec: { ...known.spec!, completions: '3' as unknown as number } }).validate(), /completions must be integer/);
  assert.throws(() => new Job({ ...known, spec: { ...known.spec!, completionMode: 'indexed' as 'Indexed' } }).validate(), /completionMode must be equal to one of the allowed values/);
});

test('shards are Indexed Jobs on JOB_COMPLETION_INDEX, retried per index; the merges list every shard', () => {
  for (const params of [DEFAULT_PARAMS, GPU]) {
    const jobs = Object.fromEntries(k8sManifests(params).map((m) => [m.name, m.object as IJob]));
    for (const [name, stage, out] of [['known-shards', 'known', 'known-shard'], ['collect-shards', 'collect', 'activations-shard']] as const) {
      const spec = jobs[name]!.spec!;
      assert.equal(spec.completionMode, 'Indexed');
      assert.equal(spec.completions, params.shards);
      assert.equal(spec.parallelism, params.shards);
      assert.equal(spec.backoffLimitPerIndex, params.retriesPerShard, 'a failed shard is retried with its own index');
      assert.equal(spec.template.spec!.restartPolicy, 'Never', 'backoffLimitPerIndex needs restartPolicy Never');
      const c = spec.template.spec!.containers[0]!;
      const script = c.command!.join(' ');
      assert.match(script, new RegExp(`bin/rsn\\.js ${stage} .*--shard "\\$JOB_COMPLETION_INDEX/${params.shards}" --out "/work/${out}-\\$JOB_COMPLETION_INDEX"`));
      assert.equal(c.resources?.limits?.['nvidia.com/gpu'], params.gpusPerShard ? String(params.gpusPerShard) : undefined);
      assert.equal(spec.template.spec!.volumes![0]!.persistentVolumeClaim!.claimName, 'rsn-work');
    }
    const merge = jobs['merge-known']!.spec!.template.spec!.containers[0]!.command!.join(' ');
    const rank = jobs['merge-rank']!.spec!.template.spec!.containers[0]!.command!.join(' ');
    for (let i = 0; i < params.shards; i++) {
      assert.ok(merge.includes(`/work/known-shard-${i} `), `merge-known lists shard ${i}`);
      assert.ok(rank.includes(`/work/activations-shard-${i} `), `merge-rank lists shard ${i}`);
    }
    assert.match(rank, /rsn\.js rank --store \/work\/activations --out \/work\/ranking/);
  }
  assert.match(JSON.stringify(k8sManifests(GPU)[3]!.object), /--dtype float16 --batch-size 256/);
});

test("an experiment's jobs: an Indexed Job of rsn evaluate shards and the merge of every shard, valid against the schema", () => {
  for (const params of [{ ...DEFAULT_PARAMS, jobs: '/work/intra.jobs.json' }, { ...GPU, jobs: '/work/sweep.jobs.json' }]) {
    const objects = k8sJobsManifests(params);
    assert.deepEqual(objects.map((m) => m.name), ['work-volume', 'evaluate-shards', 'merge-jobs']);
    for (const m of objects) validate(m.object);
    const spec = (objects[1]!.object as IJob).spec!;
    assert.equal(spec.completionMode, 'Indexed');
    assert.equal(spec.completions, params.shards);
    assert.equal(spec.backoffLimitPerIndex, params.retriesPerShard);
    const c = spec.template.spec!.containers[0]!;
    assert.match(c.command!.join(' '), new RegExp(`bin/rsn\\.js evaluate --model ${params.model} --jobs ${params.jobs} --shard "\\$JOB_COMPLETION_INDEX/${params.shards}" --out "/work/jobs-shard-\\$JOB_COMPLETION_INDEX" --quiet`));
    assert.equal(c.resources?.limits?.['nvidia.com/gpu'], params.gpusPerShard ? String(params.gpusPerShard) : undefined);
    const merge = (objects[2]!.object as IJob).spec!.template.spec!.containers[0]!.command!.join(' ');
    for (let i = 0; i < params.shards; i++) assert.ok(merge.includes(`/work/jobs-shard-${i} `), `the merge lists shard ${i}`);
    assert.match(merge, /rsn\.js merge .* --out \/work\/job-results$/);
  }
  assert.deepEqual(renderManifests({ ...DEFAULT_PARAMS, jobs: '/work/x.jobs.json' }).map((m) => m.file), ['00-work-volume.json', '01-evaluate-shards.json', '02-merge-jobs.json']);
});
