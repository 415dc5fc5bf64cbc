/**
 * Real Jupyter for the notebooks: find (or install) it, register the tslab kernel in a
 * project-local prefix, and execute notebooks headless through nbclient — the same machinery
 * `jupyter nbconvert --execute` uses — with the tslab kernel.
 *
 * Everything Jupyter writes for the project stays under .cache/jupyter/ (kernel spec in
 * share/jupyter/kernels/tslab, runtime files, generated types); the user's own Jupyter set-up is
 * neither read for the kernel nor modified.
 */
import { envVarName, readEnv } from '../env.ts';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { jupyterDir, projectRoot } from './paths.ts';

/** Debian's python3, which the Debian Jupyter packages belong to (a pyenv python3 may shadow it on PATH). */
export const DEFAULT_PYTHON = '/usr/bin/python3';
export const PYTHON_ENV = envVarName('jupyterPython');
export const APT_PACKAGES = ['jupyter-nbconvert', 'python3-nbclient', 'python3-ipykernel', 'jupyter-client', 'jupyter-notebook'] as const;
/** Python modules the runner and `npm run lab` import. */
export const PY_MODULES = ['nbclient', 'nbformat', 'nbconvert', 'jupyter_client', 'ipykernel', 'notebook'] as const;
export const KERNEL_NAME = 'tslab';

export const kernelPrefix = jupyterDir;
export const jupyterDataDir = join(kernelPrefix, 'share', 'jupyter');
export const kernelSpecFile = join(jupyterDataDir, 'kernels', KERNEL_NAME, 'kernel.json');
export const tslabBinary = join(projectRoot, 'node_modules', '.bin', 'tslab');

export function jupyterPython(env: NodeJS.ProcessEnv = process.env): string {
  return readEnv('jupyterPython', env) ?? DEFAULT_PYTHON;
}

export function aptInstallCommand(): string {
  return `apt-get install -y --no-install-recommends ${APT_PACKAGES.join(' ')}`;
}

/** Modules missing from `python` (all of them when python itself is missing). */
export function missingPythonModules(python = jupyterPython()): string[] {
  if (!existsSync(python)) return [...PY_MODULES];
  const code = `import importlib.util, json\nprint(json.dumps([m for m in ${JSON.stringify(PY_MODULES)} if importlib.util.find_spec(m) is None]))`;
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) return [...PY_MODULES];
  return JSON.parse(r.stdout.trim()) as string[];
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

export interface EnsureJupyterResult {
  ok: boolean;
  installed: boolean;
  python: string;
  /** What to tell the user when not ok. */
  message: string;
}

/**
 * Jupyter present → ok. Missing, as root with apt-get → install the Debian packages
 * (non-interactive; `apt-get update` first if the package lists are stale). Otherwise → not ok,
 * with the exact command to run.
 */
export function ensureJupyter(opts: { install?: boolean; log?: (line: string) => void } = {}): EnsureJupyterResult {
  const log = opts.log ?? ((l: string) => console.log(l));
  const python = jupyterPython();
  let missing = missingPythonModules(python);
  if (missing.length === 0) return { ok: true, installed: false, python, message: `Jupyter found (${python})` };
  const how = python === DEFAULT_PYTHON
    ? `Jupyter is missing (${python} lacks ${missing.join(', ')}). Install it with:\n  sudo ${aptInstallCommand()}\n(or set ${PYTHON_ENV} to a python3 that has ${PY_MODULES.join(', ')})`
    : existsSync(python)
      ? `${python} (from ${PYTHON_ENV}) lacks ${missing.join(', ')}: install them into it (pip install nbclient nbconvert ipykernel jupyter_client notebook)`
      : `${python} (from ${PYTHON_ENV}) does not exist`;
  if (opts.install === false || python !== DEFAULT_PYTHON || !isRoot() || !hasCommand('apt-get')) return { ok: false, installed: false, python, message: how };
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0;
  log(`Jupyter is missing; installing: ${aptInstallCommand()}`);
  if (!apt(['install', '-y', '--no-install-recommends', ...APT_PACKAGES])) {
    log('apt-get install failed; updating the package lists and retrying');
    if (!apt(['update']) || !apt(['install', '-y', '--no-install-recommends', ...APT_PACKAGES])) {
      return { ok: false, installed: false, python, message: `apt-get could not install Jupyter. Run by hand:\n  apt-get update && ${aptInstallCommand()}` };
    }
  }
  missing = missingPythonModules(python);
  if (missing.length) return { ok: false, installed: true, python, message: `installed the packages, but ${python} still lacks ${missing.join(', ')}` };
  return { ok: true, installed: true, python, message: `Jupyter installed (${python})` };
}

interface KernelSpec {
  argv: string[];
  display_name: string;
  language: string;
}

export function kernelSpecCurrent(): boolean {
  if (!existsSync(kernelSpecFile)) return false;
  try {
    const spec = JSON.parse(readFileSync(kernelSpecFile, 'utf8')) as KernelSpec;
    return spec.argv[0] === tslabBinary && existsSync(tslabBinary);
  } catch {
    return false;
  }
}

/** Register tslab (this project's node_modules copy) in .cache/jupyter; a no-op when it is. */
export function ensureKernel(opts: { python?: string; log?: (line: string) => void } = {}): { installed: boolean } {
  if (kernelSpecCurrent()) return { installed: false };
  if (!existsSync(tslabBinary)) throw new Error(`${tslabBinary} is missing: run npm ci first`);
  const python = opts.python ?? jupyterPython();
  mkdirSync(kernelPrefix, { recursive: true });
  const r = spawnSync(tslabBinary, ['install', `--python=${python}`, `--prefix=${kernelPrefix}`, `--binary=${tslabBinary}`], { encoding: 'utf8', env: jupyterEnv() });
  if (r.status !== 0 || !kernelSpecCurrent()) throw new Error(`tslab install failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  opts.log?.(`registered the tslab kernel in ${kernelSpecFile}`);
  return { installed: true };
}

/** Environment for Jupyter processes: the project-local kernel prefix first, node on PATH. */
export function jupyterEnv(extra: Record<string, string | undefined> = {}, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const runtime = join(kernelPrefix, 'runtime');
  mkdirSync(runtime, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...base,
    JUPYTER_PATH: [jupyterDataDir, base['JUPYTER_PATH']].filter(Boolean).join(':'),
    JUPYTER_RUNTIME_DIR: runtime,
    // The tslab launcher is `#!/usr/bin/env node`: make it the node running this.
    PATH: [dirname(process.execPath), base['PATH']].filter(Boolean).join(':'),
    // Debian's Python 3.11 debugger warning ("frozen modules") on every kernel start.
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

// ------------------------------------------------------------------------------ execution

/**
 * nbclient driver: executes SRC in its own folder, writes DST even on failure, prints JSON. While
 * it runs, it reports each cell's start and every stream output of the kernel on stderr as
 * "RSN-EVENT <json>" lines, so the caller can show progress live (the kernel's own stderr goes
 * into the executed notebook, not to any terminal).
 */
const EXEC_PY = String.raw`
import json, os, sys, time, traceback
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
src, dst, timeout, kernel, startup = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
nb = nbformat.read(src, as_version=4)
state = {"cell": None}
code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
def event(e):
    sys.stderr.write("RSN-EVENT " + json.dumps(e) + "\n")
    sys.stderr.flush()
def on_start(cell, cell_index):
    state["cell"] = cell_index
    if cell_index in code_cells:
        event({"kind": "cell", "cell": cell_index, "n": code_cells.index(cell_index) + 1, "of": len(code_cells), "source": cell.source.splitlines()[:1]})
class LiveClient(NotebookClient):
    def output(self, outs, msg, display_id, cell_index):
        if msg.get("msg_type") == "stream":
            event({"kind": "stream", "cell": cell_index, "name": msg["content"].get("name"), "text": msg["content"].get("text", "")})
        return super().output(outs, msg, display_id, cell_index)
client = LiveClient(nb, timeout=timeout, startup_timeout=startup, kernel_name=kernel, allow_errors=False,
                        resources={"metadata": {"path": os.path.dirname(os.path.abspath(src))}}, on_cell_start=on_start)
out = {"ok": True, "cells": len(nb.cells)}
t0 = time.time()
try:
    client.execute()
except (CellExecutionError, CellTimeoutError, DeadKernelError, Exception) as e:
    i = state["cell"]
    out = {"ok": False, "cells": len(nb.cells), "cell": i, "kind": type(e).__name__,
           "ename": getattr(e, "ename", type(e).__name__), "evalue": getattr(e, "evalue", str(e))}
    if i is not None:
        cell = nb.cells[i]
        out["source"] = cell.source.splitlines()[:1]
        texts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                texts.append("%s: %s" % (o.get("ename"), o.get("evalue")))
            elif o.get("output_type") == "stream" and o.get("name") == "stderr":
                texts.append(o.get("text", ""))
        out["outputs"] = "\n".join(t.strip() for t in texts if t.strip())
    if not isinstance(e, (CellExecutionError, CellTimeoutError, DeadKernelError)):
        out["traceback"] = traceback.format_exc()
out["seconds"] = time.time() - t0
os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
nbformat.write(nb, dst)
print("RSN-RESULT " + json.dumps(out))
`;

export interface NotebookRun {
  notebook: string;
  name: string;
  output: string;
  log: string;
  ok: boolean;
  seconds: number;
  /** Failing cell: index in the notebook (0-based, as in the .ipynb), its first line, the error. */
  cell?: number;
  source?: string;
  error?: string;
  /** Not executed: its recorded inputs and outputs were unchanged (lib/notebook/reuse.ts); `seconds` is the run that wrote them. */
  reused?: boolean;
}

/** What the kernel is doing, as it happens. */
export type NotebookEvent =
  | { kind: 'cell'; cell: number; /** 1-based among code cells */ n: number; of: number; source: string }
  | { kind: 'line'; cell: number; stream: 'stdout' | 'stderr'; text: string };

export interface RunNotebookOptions {
  /** Called live with each cell start and each line a cell prints. */
  onEvent?: (e: NotebookEvent) => void;
  /** Folder for the executed copy and its log (what the cells printed, then the driver's messages). */
  outDir: string;
  /** Extra environment for the kernel (RSN_K, RSN_RELATIONS, …). */
  env?: Record<string, string | undefined>;
  /** Seconds per cell (default 3600). */
  cellTimeout?: number;
  python?: string;
}

const EVENT_PREFIX = 'RSN-EVENT ';

/** One driver event → NotebookEvents (a stream chunk may hold several lines, or \r-redrawn ones). */
function forwardEvent(json: string, onEvent: (e: NotebookEvent) => void): void {
  let e: { kind?: string; cell?: number; n?: number; of?: number; source?: string[]; name?: string; text?: string };
  try {
    e = JSON.parse(json) as typeof e;
  } catch {
    return;
  }
  if (e.kind === 'cell') onEvent({ kind: 'cell', cell: e.cell ?? -1, n: e.n ?? 0, of: e.of ?? 0, source: e.source?.[0] ?? '' });
  else if (e.kind === 'stream') {
    for (const line of (e.text ?? '').split(/\r?\n|\r/)) if (line.trim()) onEvent({ kind: 'line', cell: e.cell ?? -1, stream: e.name === 'stderr' ? 'stderr' : 'stdout', text: line });
  }
}

/** Execute one notebook through Jupyter + tslab; never throws for notebook errors. */
export async function runNotebook(notebook: string, opts: RunNotebookOptions): Promise<NotebookRun> {
  const name = notebook.replace(/^.*[\\/]/, '').replace(/\.ipynb$/, '');
  mkdirSync(opts.outDir, { recursive: true });
  const output = join(opts.outDir, `${name}.ipynb`);
  const log = join(opts.outDir, `${name}.log`);
  const t0 = performance.now();
  const env = jupyterEnv({ RSN_NOTEBOOK: name, ...(opts.env ?? {}) });
  const args = ['-c', EXEC_PY, notebook, output, String(opts.cellTimeout ?? 3600), KERNEL_NAME, '120'];
  // The log keeps what the cells printed, in order and tagged by cell, then the driver's own messages.
  const printed: string[] = [];
  const onEvent = (e: NotebookEvent) => {
    printed.push(e.kind === 'cell' ? `--- cell ${e.cell} (${e.n}/${e.of}): ${e.source}` : e.stream === 'stderr' ? `[stderr] ${e.text}` : e.text);
    opts.onEvent?.(e);
  };
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(opts.python ?? jupyterPython(), args, { env, cwd: dirname(notebook), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let pending = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) {
        if (l.startsWith(EVENT_PREFIX)) forwardEvent(l.slice(EVENT_PREFIX.length), onEvent);
        else err += l + '\n';
      }
    });
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err + pending }));
  });
  writeFileSync(log, printed.join('\n') + (printed.length ? '\n' : '') + stderr);
  const seconds = (performance.now() - t0) / 1000;
  const line = stdout.split('\n').find((l) => l.startsWith('RSN-RESULT '));
  if (!line) {
    return { notebook, name, output, log, ok: false, seconds, error: `the Jupyter driver exited with ${code} before reporting:\n${stderr.trim().split('\n').slice(-15).join('\n')}` };
  }
  const r = JSON.parse(line.slice('RSN-RESULT '.length)) as {
    ok: boolean; cell?: number | null; ename?: string; evalue?: string; outputs?: string; source?: string[]; kind?: string; traceback?: string;
  };
  if (r.ok) return { notebook, name, output, log, ok: true, seconds };
  const detail = [r.outputs && r.outputs.trim() ? r.outputs.trim() : `${r.ename ?? r.kind}: ${(r.evalue ?? '').trim()}`, r.traceback ?? ''].filter(Boolean).join('\n');
  return { notebook, name, output, log, ok: false, seconds, cell: r.cell ?? undefined, source: r.source?.[0], error: detail };
}
