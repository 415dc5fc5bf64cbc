/**
 * The docs' measured numbers, rendered from the result files the measuring programs write. A
 * page marks each generated table:
 *
 *   <!-- table: bench-forward docs/data/bench-forward.json -->
 *   …generated, never edited by hand…
 *   <!-- end table -->
 *
 * and this script rewrites what lies between from the named files (`npm run bench -- --out F`,
 * `npm run reproduce -- --timing-out F`). `--check` changes nothing and exits 1 naming every
 * table that differs from its files (test/readme.test.ts runs the same check).
 *
 *   npx tsx scripts/docs-tables.ts [--check]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { writeFileAtomic } from '../lib/data/io.ts';
import { MEASUREMENT_SCHEMA, type MeasurementContext } from '../lib/measurement.ts';
import { projectRoot } from '../lib/notebook/paths.ts';
import type { LlamaConfig } from '../lib/model/config.ts';
import { parsePaperNumbers } from '../lib/method/paper-numbers.ts';
import { formatGB, maxBatchThatFits, predictMemory } from '../lib/model/memory-plan.ts';

const REGION = /(<!-- table: ([a-z0-9-]+) ([^>]+?) -->\n)([\s\S]*?)(<!-- end table -->)/g;

interface Measured {
  forwardTokensPerS: number;
  forwardGflopPerS: number;
  pooledFfnRecordingPromptsPerS: number;
  answersPromptsPerS: number;
  generateNewTokens: number;
  generateTokensPerS: number;
  generateNoCacheTokensPerS?: number;
}

interface BenchFile {
  schema: string;
  quick: boolean;
  context: MeasurementContext;
  backend: string;
  reps: number;
  workers: {
    workers: number;
    results: (Measured & { workers: number })[];
    pytorch?: { available?: boolean; forwardTokensPerS?: number; torch?: string; threads?: number; reason?: string; python?: string };
    forwardVsPytorch?: number;
  };
  perBackend: Record<string, (Partial<Measured> & { available: boolean; reason?: string; adapter?: string })>;
}

interface TimingFile {
  schema: string;
  context: MeasurementContext;
  options: string[];
  seconds: number;
  notebooks: { name: string; state: 'ran' | 'reused' | 'failed'; seconds: number }[];
  computedStages: number;
  stageSeconds: number;
}

function readMeasurement<T extends { schema: string; context: MeasurementContext }>(file: string): T {
  let data: T;
  try {
    data = JSON.parse(readFileSync(join(projectRoot, file), 'utf8')) as T;
  } catch (e) {
    throw new Error(`${file}: cannot be read as JSON (${(e as Error).message})`);
  }
  if (data.schema !== MEASUREMENT_SCHEMA || !data.context) throw new Error(`${file}: expected a result file with schema "${MEASUREMENT_SCHEMA}" and its context`);
  return data;
}

const n0 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const n1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(1));
const minutes = (s: number) => (s < 60 ? `${s.toFixed(0)} s` : `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`);

/** One line saying where, when and under what load the numbers were taken. */
function contextLine(file: string, c: MeasurementContext, extra = ''): string {
  const pkgs = Object.entries(c.versions.packages).map(([p, v]) => `${p.replace(/^@tensorflow\//, '')} ${v}`).join(', ');
  return `*${file}: ${c.date.slice(0, 10)}, ${c.machine.cpu}, ${c.machine.cores} cores, ${c.machine.memoryGiB} GiB; load ${c.load.before} → ${c.load.after}; Node ${c.versions.node}, ${pkgs}, commit ${c.versions.commit}${extra}.*`;
}

function benchForward(files: string[]): string {
  const file = files[0]!;
  const b = readMeasurement<BenchFile>(file);
  const [one, many] = b.workers.results;
  if (!one || !many) throw new Error(`${file}: expected workers.results for 1 and N workers`);
  const rows: [string, (m: Measured) => string][] = [
    ['forward (tokens/s)', (m) => `${n0(m.forwardTokensPerS)} (${n1(m.forwardGflopPerS)} GFLOP/s)`],
    ['pooled FFN recording, every gate/up/down token mean (prompts/s)', (m) => n0(m.pooledFfnRecordingPromptsPerS)],
    ['greedy answers, 2 new tokens: the experiments\' length (prompts/s)', (m) => n0(m.answersPromptsPerS)],
    [`greedy generation, ${one.generateNewTokens} new tokens, KV cache (tokens/s)`, (m) => n0(m.generateTokensPerS)],
    [`greedy generation, ${one.generateNewTokens} new tokens, no cache (tokens/s)`, (m) => n0(m.generateNoCacheTokensPerS)],
  ];
  const L = [`| workload | ${b.backend}, 1 worker | ${many.workers} workers |`, '|---|---|---|'];
  for (const [what, cell] of rows) L.push(`| ${what} | ${cell(one)} | ${cell(many)} |`);
  const p = b.workers.pytorch;
  const peer = p?.available && p.forwardTokensPerS
    ? `PyTorch ${p.torch ?? ''} on the same machine (${p.python ?? 'python3'}, ${p.threads ?? '?'} threads): ${n0(p.forwardTokensPerS)} forward tokens/s; the lab's ${many.workers} workers are ${(b.workers.forwardVsPytorch ?? 0).toFixed(2)}× that.`
    : `PyTorch peer: not measured (${p?.reason ?? 'no result'}).`;
  L.push('', peer, '', contextLine(file, b.context, b.quick ? `; --quick, best of ${b.reps}` : `; best of ${b.reps}`));
  return L.join('\n');
}

function benchBackends(files: string[]): string {
  const file = files[0]!;
  const b = readMeasurement<BenchFile>(file);
  const L = ['| backend | forward (tokens/s) | pooled recording (prompts/s) | answers (prompts/s) | note |', '|---|---|---|---|---|'];
  for (const [name, r] of Object.entries(b.perBackend)) {
    if (r.available) L.push(`| ${name} | ${n0(r.forwardTokensPerS)} | ${n0(r.pooledFfnRecordingPromptsPerS)} | ${n0(r.answersPromptsPerS)} | ${r.adapter ?? ''} |`);
    else L.push(`| ${name} | – | – | – | not available: ${(r.reason ?? '').split('\n')[0]!.replace(/\|/g, '\\|').slice(0, 120)} |`);
  }
  L.push('', contextLine(file, b.context));
  return L.join('\n');
}

function reproduceTimings(files: string[]): string {
  const L = ['| run | notebooks run / reused | stages computed (stage time) | wall time | date, load |', '|---|---|---|---|---|'];
  const contexts: string[] = [];
  for (const file of files) {
    const t = readMeasurement<TimingFile>(file);
    const ran = t.notebooks.filter((x) => x.state === 'ran').length;
    const reused = t.notebooks.filter((x) => x.state === 'reused').length;
    const failed = t.notebooks.filter((x) => x.state === 'failed').length;
    const label = `\`npm run reproduce${t.options.length ? ` -- ${t.options.join(' ')}` : ''}\` (${file.replace(/^.*\//, '')})`;
    L.push(`| ${label} | ${ran} / ${reused}${failed ? ` (${failed} failed)` : ''} | ${t.computedStages} (${minutes(t.stageSeconds)}) | ${minutes(t.seconds)} | ${t.context.date.slice(0, 10)}, ${t.context.load.before} → ${t.context.load.after} |`);
    contexts.push(contextLine(file, t.context));
  }
  L.push('', ...contexts.flatMap((c, i) => (i ? ['', c] : [c])));
  return L.join('\n');
}

/** The memory planner's predictions (lib/model/memory-plan.ts) for published configs: computed, not measured. */
function memoryPlan(files: string[]): string {
  const file = files[0]!;
  const configs = parsePaperNumbers(JSON.parse(readFileSync(join(projectRoot, file), 'utf8'))).table1;
  const work = { batchSize: 1, promptLength: 24, newTokens: 2 };
  const gb = (c: LlamaConfig, batch: number, plan: 'resident' | 'streamed') => formatGB(predictMemory(c, { ...work, batchSize: batch }, plan).peakBytes).replace(/ GB$/, '');
  const largest = (c: LlamaConfig, bytes: number) => {
    const resident = maxBatchThatFits(c, work, 'resident', bytes);
    const streamed = maxBatchThatFits(c, work, 'streamed', bytes);
    return resident > 0 ? `resident ${n0(resident)}${streamed > resident ? ` (streamed ${n0(streamed)})` : ''}` : `streamed ${n0(streamed)}`;
  };
  const L = ['| model | batch 64: resident / streamed (GB) | batch 256: resident / streamed (GB) | largest batch on 24 GB | on 80 GB |', '|---|---|---|---|---|'];
  for (const [name, { config: c }] of Object.entries(configs)) {
    L.push(`| ${name} | ${gb(c, 64, 'resident')} / ${gb(c, 64, 'streamed')} | ${gb(c, 256, 'resident')} / ${gb(c, 256, 'streamed')} | ${largest(c, 24e9)} | ${largest(c, 80e9)} |`);
  }
  L.push('', `*Predicted by \`lib/model/memory-plan.ts\` for Table 1's configs (${file}): float32 tensors, prompts of ${work.promptLength} tokens, ${work.newTokens} new tokens.*`);
  return L.join('\n');
}

interface DryRun {
  model: string;
  batch: number;
  promptLength: number;
  checkpointBytes?: number;
  convertSeconds: number;
  convertPeakRss?: string;
  loadSeconds?: number;
  streamedLayerLoads?: { layers?: number; readSeconds?: number; uploadSeconds?: number } | null;
  pooledRecording: { seconds: number; measuredPeak: string; predictedPeak: string; ratio: number };
  maskedGeneration: { seconds: number; measuredPeak: string; predictedPeak: string; ratio: number };
  processPeakRss: string;
}

/** The 7B-shaped dry run of a full bench (bench-forward.json's dryRun7b). */
function dryRun(files: string[]): string {
  const file = files[0]!;
  const b = readMeasurement<BenchFile & { dryRun7b: DryRun | string }>(file);
  if (typeof b.dryRun7b === 'string') throw new Error(`${file}: no 7B-shaped dry run in this bench (${b.dryRun7b}); run npm run bench without --quick`);
  const d = b.dryRun7b;
  const L = ['| step | measured |', '|---|---|'];
  L.push(`| checkpoint | ${d.model} |`);
  L.push(`| \`rsn convert --dtype float16\` | ${n1(d.convertSeconds)} s${d.convertPeakRss ? `, peak RSS ${d.convertPeakRss}` : ''} |`);
  if (d.loadSeconds !== undefined) L.push(`| load, streamed plan | ${n1(d.loadSeconds)} s |`);
  L.push(`| streamed pooled recording, ${d.batch} prompts × ${d.promptLength} tokens | ${n1(d.pooledRecording.seconds)} s; tensor peak ${d.pooledRecording.measuredPeak}, predicted ${d.pooledRecording.predictedPeak} (× ${d.pooledRecording.ratio.toFixed(2)}) |`);
  L.push(`| masked 2-token generation | ${n1(d.maskedGeneration.seconds)} s; tensor peak ${d.maskedGeneration.measuredPeak}, predicted ${d.maskedGeneration.predictedPeak} (× ${d.maskedGeneration.ratio.toFixed(2)}) |`);
  L.push(`| process peak RSS | ${d.processPeakRss} |`);
  L.push('', contextLine(file, b.context, `; backend ${b.backend}`));
  return L.join('\n');
}

interface CostEstimateFile {
  schema: string;
  context: MeasurementContext;
  data: string;
  assumed: { knownFraction: number };
  models: { model: string; stages: { notebooks: string; stage: string; cost: { promptRuns: number; tokenForwards: number; flops: number } | null; note?: string }[]; total: { flops: number; promptRuns: number; tokenForwards: number } }[];
}

/** Every stage of the reproduction counted for each model (scripts/cost-estimate.ts). */
function costEstimate(files: string[]): string {
  const file = files[0]!;
  const e = readMeasurement<CostEstimateFile>(file);
  const models = e.models;
  const pflop = (x: number) => (x / 1e15).toFixed(2);
  const head = `| notebooks | stage | prompt runs | token forwards | ${models.map((m) => `${m.model} PFLOP (share)`).join(' | ')} |`;
  const L = [head, `|---|---|---|---|${models.map(() => '---|').join('')}`];
  models[0]!.stages.forEach((st, i) => {
    if (!st.cost) {
      L.push(`| ${st.notebooks} | ${st.stage} | not counted: ${st.note ?? ''} | | ${models.map(() => '').join(' | ')} |`);
      return;
    }
    const cells = models.map((m) => {
      const c = m.stages[i]!.cost!;
      return `${pflop(c.flops)} (${((100 * c.flops) / m.total.flops).toFixed(1)} %)`;
    });
    L.push(`| ${st.notebooks} | ${st.stage} | ${n0(st.cost.promptRuns)} | ${n0(st.cost.tokenForwards)} | ${cells.join(' | ')} |`);
  });
  const t = models[0]!.total;
  L.push(`| | **all counted** | **${n0(t.promptRuns)}** | **${n0(t.tokenForwards)}** | ${models.map((m) => `**${pflop(m.total.flops)}**`).join(' | ')} |`);
  L.push('', `*${file}: counted by \`scripts/cost-estimate.ts\` on ${e.data}, assuming the model knows ${Math.round(100 * e.assumed.knownFraction)} % of every relation's detection prompts; ${e.context.date.slice(0, 10)}, commit ${e.context.versions.commit}.*`);
  return L.join('\n');
}

const RENDERERS: Record<string, (files: string[]) => string> = {
  'cost-estimate': costEstimate,
  'memory-plan': memoryPlan,
  'dry-run-7b': dryRun,
  'bench-forward': benchForward,
  'bench-backends': benchBackends,
  'reproduce-timings': reproduceTimings,
};

export interface DocsTable {
  page: string;
  table: string;
  files: string[];
  /** What the page holds now and what the files give. */
  current: string;
  rendered: string;
}

/** Every generated table of every page of docs/ (and the README), with what its files give. */
export function docsTables(root = projectRoot): { page: string; text: string; tables: DocsTable[] }[] {
  const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  return pages.map((page) => {
    const text = readFileSync(join(root, page), 'utf8');
    const tables: DocsTable[] = [];
    for (const m of text.matchAll(REGION)) {
      const [table, spec] = [m[2]!, m[3]!];
      const render = RENDERERS[table];
      if (!render) throw new Error(`${page}: unknown generated table "${table}" (known: ${Object.keys(RENDERERS).join(', ')})`);
      const files = spec.trim().split(/\s+/);
      tables.push({ page, table, files, current: m[4]!, rendered: `${render(files)}\n` });
    }
    const marked = text.match(/<!-- table:/g)?.length ?? 0;
    if (marked !== tables.length) throw new Error(`${page}: ${marked} table markers but ${tables.length} whole regions; each "<!-- table: NAME FILE… -->" line needs its "<!-- end table -->"`);
    return { page, text, tables };
  });
}

function main(): number {
  const { values } = parseScriptCommandLine(process.argv.slice(2), { check: { type: 'boolean', default: false } });
  let stale = 0;
  for (const { page, text, tables } of docsTables()) {
    const changed = tables.filter((t) => t.current !== t.rendered);
    for (const t of changed) console.log(`${page}: table ${t.table} differs from ${t.files.join(', ')}`);
    stale += changed.length;
    if (!values.check && changed.length) {
      let i = 0;
      writeFileAtomic(join(projectRoot, page), text.replace(REGION, (_all, open: string, _t, _s, _body, close: string) => `${open}${tables[i++]!.rendered}${close}`));
    }
  }
  if (values.check) return stale ? 1 : 0;
  console.log(stale ? `rewrote ${stale} table(s)` : 'every table equals its files');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exit(main());
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  }
}
