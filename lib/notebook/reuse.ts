/**
 * Reusing an executed notebook. A notebook's results are a function of its inputs: its own bytes,
 * the lab's code and package versions, the parameters the environment gives it, the files its
 * parameters name (model, data, world, own relation, cluster run) and the numeric engine. When a
 * notebook ran to the end, the run folder records the digest of those inputs and of every file
 * it wrote (`notebooks/<name>.inputs.json`); a later run with the same digest, whose recorded
 * files are all still there and unchanged, is not executed again. Anything else runs it: a
 * changed input, a missing or edited output, a record that cannot be read.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../data/io.ts';
import { sha256OfFile } from '../model/file-digests.ts';
import { dataDirFor } from './model.ts';
import { params } from './params.ts';
import { fromRoot, projectRoot } from './paths.ts';
import { PLACEMENT_PARAMS } from './run.ts';

const RECORD_SCHEMA = 'rsn-notebook-inputs/1';
/** Files written by every notebook of a run: not any one notebook's outputs. */
const SHARED_FILES = new Set(['cost.json', 'setting.json']);
/** Above this size a file is known by its size, modification time and inode, not its bytes (weights shards). */
const HASHED_BYTES = 64 << 20;

/** The digest of each input of a run, shared by its notebooks; a notebook adds its own bytes. */
export type RunInputs = Record<string, string>;

function fileStamp(path: string): string {
  const st = statSync(path);
  return st.size > HASHED_BYTES ? `stat:${st.size}:${st.mtimeMs}:${st.ino}` : sha256OfFile(path);
}

/** sha256 over a file's bytes, or over a folder's files (names and bytes, recursively, sorted). */
export function treeDigest(path: string): string {
  if (!statSync(path).isDirectory()) return fileStamp(path);
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) lines.push(`${relative(path, p)}\n${fileStamp(p)}`);
    }
  };
  walk(path);
  return sha256Hex(lines.join('\n'));
}

/**
 * The inputs every notebook of a run shares. `env` is the notebooks' environment (RSN_* variables
 * and all); `engine` is the numeric engine a kernel would choose (backendKey), which the caller
 * asks a separate process for, so that this process never claims a GPU the kernels need.
 */
export function runInputs(env: Record<string, string | undefined>, engine: string): RunInputs {
  const P = params({}, { env, quiet: true }) as unknown as Record<string, unknown>;
  const rsnEnv = Object.entries(env).filter(([k, v]) => k.startsWith('RSN_') && v !== undefined).sort(([a], [b]) => a.localeCompare(b));
  const inputs: RunInputs = {
    // The lab's code: the lib, the converter a notebook's model goes through, the CLI a cluster's tasks run.
    code: sha256Hex(['lib', 'weights-converter', 'cli'].map((d) => `${d}\n${treeDigest(join(projectRoot, d))}`).join('\n')),
    // The notebooks' own TypeScript (the loader they import), not their texts or README.
    notebookCode: sha256Hex(readdirSync(join(projectRoot, 'notebooks')).filter((f) => f.endsWith('.ts')).sort()
      .map((f) => `${f}\n${sha256OfFile(join(projectRoot, 'notebooks', f))}`).join('\n')),
    packages: treeDigest(join(projectRoot, 'package-lock.json')),
    node: process.version,
    engine,
    env: sha256Hex(JSON.stringify(rsnEnv)),
    dataDir: treeDigest(dataDirFor(String(P['data']), String(P['model']))),
  };
  // Every parameter that names a file or folder (model, world, relationFile, clusterRun, …).
  for (const [name, value] of Object.entries(P)) {
    if (PLACEMENT_PARAMS.has(name) || typeof value !== 'string' || !value) continue;
    const path = fromRoot(value);
    if (existsSync(path)) inputs[`param:${name}`] = treeDigest(path);
  }
  return inputs;
}

/** One notebook's inputs: its run's and its own bytes. */
export function notebookInputs(run: RunInputs, notebook: string): RunInputs {
  return { ...run, notebook: sha256OfFile(notebook) };
}

interface InputsRecord {
  schema: typeof RECORD_SCHEMA;
  notebook: string;
  /** The digest of each input (runInputs, plus the notebook's own bytes). */
  inputs: RunInputs;
  /** Run time of the execution that wrote the outputs, in seconds. */
  seconds: number;
  /** Every file the notebook wrote, relative to the run folder, with its sha256. */
  outputs: Record<string, string>;
}

function isRecord(x: unknown): x is Record<string, string> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function recordPath(runDir: string, name: string): string {
  return join(runDir, 'notebooks', `${name}.inputs.json`);
}

/** Size and modification time of every file in the run folder, to find what a notebook writes. */
export function runFolderState(runDir: string): Map<string, string> {
  const state = new Map<string, string>();
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) state.set(relative(runDir, p), `${st.size}:${st.mtimeMs}:${st.ino}`);
    }
  };
  walk(runDir);
  return state;
}

/**
 * Records a notebook that ran to the end: its digest and the files it wrote (those new or changed
 * since `before`), so an unchanged re-run can reuse them.
 */
export function recordNotebook(runDir: string, name: string, inputs: RunInputs, before: Map<string, string>, seconds: number): void {
  const outputs: Record<string, string> = {};
  for (const [rel, stamp] of runFolderState(runDir)) {
    if (SHARED_FILES.has(rel) || rel === relative(runDir, recordPath(runDir, name)) || before.get(rel) === stamp) continue;
    outputs[rel] = sha256OfFile(join(runDir, rel));
  }
  const record: InputsRecord = { schema: RECORD_SCHEMA, notebook: name, inputs, seconds, outputs };
  writeFileAtomic(recordPath(runDir, name), `${JSON.stringify(record, null, 1)}\n`);
}

/** Drops a notebook's record (before it runs again), so a run that fails half-way is never reused. */
export function forgetNotebook(runDir: string, name: string): void {
  rmSync(recordPath(runDir, name), { force: true });
}

export type Reuse = { reusable: true; seconds: number; outputs: number } | { reusable: false; why: string };

/** Whether the run folder holds this notebook's results for exactly these inputs; if not, why (which inputs changed). */
export function reusableNotebook(runDir: string, name: string, inputs: RunInputs): Reuse {
  const p = recordPath(runDir, name);
  if (!existsSync(p)) return { reusable: false, why: 'not run in this setting yet' };
  let r: InputsRecord;
  try {
    r = JSON.parse(readFileSync(p, 'utf8')) as InputsRecord;
  } catch {
    return { reusable: false, why: `${p} cannot be read` };
  }
  if (r?.schema !== RECORD_SCHEMA || r.notebook !== name || !isRecord(r.outputs) || !isRecord(r.inputs)) return { reusable: false, why: `${p} is not a record of this lab` };
  const keys = [...new Set([...Object.keys(inputs), ...Object.keys(r.inputs)])].sort();
  const changed = keys.filter((k) => inputs[k] !== r.inputs[k]);
  if (changed.length) return { reusable: false, why: `changed since its last run: ${changed.join(', ')}` };
  for (const [rel, sha] of Object.entries(r.outputs)) {
    const f = join(runDir, rel);
    if (!existsSync(f)) return { reusable: false, why: `${rel} is missing` };
    if (sha256OfFile(f) !== sha) return { reusable: false, why: `${rel} was changed` };
  }
  return { reusable: true, seconds: typeof r.seconds === 'number' ? r.seconds : 0, outputs: Object.keys(r.outputs).length };
}
