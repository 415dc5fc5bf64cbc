/**
 * The Kubernetes objects of a sharded ranking, built from a few parameters: a work volume
 * shared by every pod, two Indexed Jobs (known-facts filter, activations: shard i/n with
 * i = JOB_COMPLETION_INDEX; a failed pod is replaced by one with the same index, which resumes
 * that shard's own directory) and two Jobs that merge after them (known facts; activations +
 * ranking). Kubernetes has no dependencies between Jobs, so run.sh applies them in order and
 * waits for each to complete.
 *
 * The types come from kubernetes-models (a dev dependency, imported for types only), so a
 * misspelt field fails the type check; the test validates the objects against its schemas.
 */
import type { IJob } from 'kubernetes-models/batch/v1';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';

export interface K8sParams {
  /** The lab's image (deploy/Dockerfile). */
  image: string;
  shards: number;
  /** A converted model directory inside the pods (the image holds the organism's). */
  model: string;
  /** Relation data directory inside the pods. */
  data: string;
  /** Relations to rank (default: every relation of the data). */
  relations?: string[];
  /** GPUs per shard pod (nvidia.com/gpu); 0 for CPU only. */
  gpusPerShard: number;
  /** Size and access mode of the shared work volume: pods on several nodes need ReadWriteMany. */
  workVolumeSize: string;
  workAccessMode: 'ReadWriteMany' | 'ReadWriteOnce';
  /** Extra arguments for `rsn known` / `rsn collect`, e.g. ["--batch-size", "256"]. */
  knownArgs?: string[];
  collectArgs?: string[];
  /** Retries of one shard index before the Job gives up on it. */
  retriesPerShard: number;
}

export const DEFAULT_PARAMS: K8sParams = {
  image: 'rsn-lab:latest',
  shards: 3,
  model: '/opt/rsn/models/organism',
  data: '/opt/rsn/lab/data/organism/relations',
  relations: ['company_ceo', 'person_father', 'star_constellation'],
  gpusPerShard: 0,
  workVolumeSize: '10Gi',
  workAccessMode: 'ReadWriteMany',
  retriesPerShard: 3,
};

const WORK = '/work';
const LAB = '/opt/rsn/lab';
const LABELS = { 'app.kubernetes.io/name': 'rsn-lab' };

/** A POSIX shell word: the pods' commands run under /bin/sh -c so that $JOB_COMPLETION_INDEX expands. */
function q(word: string): string {
  return /^[\w./:,=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function container(name: string, script: string, gpus: number, image: string): IContainer {
  return {
    name,
    image,
    workingDir: LAB,
    command: ['/bin/sh', '-c', script],
    volumeMounts: [{ name: 'work', mountPath: WORK }],
    resources: gpus > 0 ? { requests: { cpu: '2', memory: '8Gi' }, limits: { 'nvidia.com/gpu': String(gpus) } } : { requests: { cpu: '1', memory: '2Gi' } },
  };
}

function job(name: string, c: IContainer, p: K8sParams, indexed: boolean): IJob {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, labels: { ...LABELS, 'rsn-lab/stage': name } },
    spec: indexed
      ? { completionMode: 'Indexed', completions: p.shards, parallelism: p.shards, backoffLimitPerIndex: p.retriesPerShard, template: podTemplate(name, c) }
      : { backoffLimit: 2, template: podTemplate(name, c) },
  };
}

function podTemplate(name: string, c: IContainer): NonNullable<IJob['spec']>['template'] {
  return {
    metadata: { labels: { ...LABELS, 'rsn-lab/stage': name } },
    spec: {
      // An Indexed Job retries an index with a new pod (same index) only under restartPolicy Never.
      restartPolicy: 'Never',
      containers: [c],
      volumes: [{ name: 'work', persistentVolumeClaim: { claimName: 'rsn-work' } }],
    },
  };
}

function shardDirs(prefix: string, n: number): string {
  return Array.from({ length: n }, (_, i) => `${WORK}/${prefix}-${i}`).join(' ');
}

const RSN = 'exec node bin/rsn.js';

function workVolume(p: Pick<K8sParams, 'workAccessMode' | 'workVolumeSize'>): IPersistentVolumeClaim {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'rsn-work', labels: LABELS },
    spec: { accessModes: [p.workAccessMode], resources: { requests: { storage: p.workVolumeSize } } },
  };
}

function checkShards(p: Pick<K8sParams, 'shards'>): void {
  if (!Number.isInteger(p.shards) || p.shards < 1) throw new RangeError(`shards must be a positive integer, got ${p.shards}`);
}

export function k8sManifests(p: K8sParams = DEFAULT_PARAMS): { name: string; object: IJob | IPersistentVolumeClaim }[] {
  checkShards(p);
  const rsn = RSN;
  const rel = p.relations?.length ? ` --relations ${q(p.relations.join(','))}` : '';
  const shard = `--shard "$JOB_COMPLETION_INDEX/${p.shards}"`;
  const extra = (a?: string[]) => (a?.length ? ' ' + a.map(q).join(' ') : '');
  const pvc = workVolume(p);
  const known = `${rsn} known --model ${q(p.model)} --data ${q(p.data)}${rel} ${shard} --out "${WORK}/known-shard-$JOB_COMPLETION_INDEX" --quiet${extra(p.knownArgs)}`;
  const collect = `${rsn} collect --model ${q(p.model)} --data ${q(p.data)} --known ${WORK}/known ${shard} --out "${WORK}/activations-shard-$JOB_COMPLETION_INDEX" --quiet${extra(p.collectArgs)}`;
  const mergeKnown = `${rsn} merge ${shardDirs('known-shard', p.shards)} --out ${WORK}/known`;
  const mergeRank = `node bin/rsn.js merge ${shardDirs('activations-shard', p.shards)} --out ${WORK}/activations && ${rsn} rank --store ${WORK}/activations --out ${WORK}/ranking`;
  return [
    { name: 'work-volume', object: pvc },
    { name: 'known-shards', object: job('rsn-known', container('known', known, p.gpusPerShard, p.image), p, true) },
    { name: 'merge-known', object: job('rsn-merge-known', container('merge-known', mergeKnown, 0, p.image), p, false) },
    { name: 'collect-shards', object: job('rsn-collect', container('collect', collect, p.gpusPerShard, p.image), p, true) },
    { name: 'merge-rank', object: job('rsn-rank', container('merge-rank', mergeRank, 0, p.image), p, false) },
  ];
}

/**
 * An experiment's jobs (a file from pipeline.writeJobs, at `jobs` on the work volume or in the
 * image): an Indexed Job of `rsn evaluate` shards and the Job that merges them into
 * /work/job-results (pipeline.importResults reads it).
 */
export function k8sJobsManifests(p: K8sParams & { jobs: string }): { name: string; object: IJob | IPersistentVolumeClaim }[] {
  checkShards(p);
  const evaluate = `${RSN} evaluate --model ${q(p.model)} --jobs ${q(p.jobs)} --shard "$JOB_COMPLETION_INDEX/${p.shards}" --out "${WORK}/jobs-shard-$JOB_COMPLETION_INDEX" --quiet`;
  const merge = `${RSN} merge ${shardDirs('jobs-shard', p.shards)} --out ${WORK}/job-results`;
  return [
    { name: 'work-volume', object: workVolume(p) },
    { name: 'evaluate-shards', object: job('rsn-evaluate', container('evaluate', evaluate, p.gpusPerShard, p.image), p, true) },
    { name: 'merge-jobs', object: job('rsn-merge-jobs', container('merge-jobs', merge, 0, p.image), p, false) },
  ];
}
