/**
 * Makes the notebooks runnable: Jupyter (Debian packages, installed when running as root with
 * apt-get, else the exact command is printed and the exit code is 1), the tslab kernel
 * registered in the project-local prefix .cache/jupyter, and the lib's declarations for tslab;
 * also Mesa's software Vulkan driver for the webgpu tests (scripts/vulkan-setup.ts) and the
 * OpenBLAS matMul for the wasm backend (scripts/native-setup.ts).
 * Idempotent; about a second when everything is in place.
 *
 *   npx tsx scripts/jupyter-setup.ts [--no-install]
 */
import { pathToFileURL } from 'node:url';
import { parseScriptCommandLine } from '../lib/cli-args.ts';
import { ensureJupyter, ensureKernel, jupyterDataDir, kernelSpecFile } from '../lib/notebook/jupyter.ts';
import { ensureNotebookTypes } from '../lib/notebook/types.ts';
import { ensureNativeMatMul } from './native-setup.ts';
import { ensureVulkan } from './vulkan-setup.ts';

export async function setup(opts: { install?: boolean; log?: (line: string) => void } = {}): Promise<boolean> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const j = ensureJupyter({ install: opts.install, log });
  if (!j.ok) {
    console.error(j.message);
    return false;
  }
  if (j.installed) log(j.message);
  // The notebooks run on any backend; the Vulkan driver is for the webgpu tests, so its absence is reported, not fatal.
  const v = ensureVulkan({ install: opts.install, log });
  if (!v.ok) console.error(`note: ${v.message}`);
  else if (v.installed) log(v.message);
  // Without OpenBLAS everything still runs, on TF.js's own (slower) matMul: reported, not fatal.
  const n = ensureNativeMatMul({ install: opts.install, log });
  if (!n.ok) console.error(`note: ${n.message}`);
  else log(n.message);
  ensureKernel({ python: j.python, log });
  await ensureNotebookTypes({ log });
  log(`jupyter: ${j.python} · kernel: ${kernelSpecFile} · JUPYTER_PATH=${jupyterDataDir}`);
  return true;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseScriptCommandLine(process.argv.slice(2), { 'no-install': { type: 'boolean', default: false } });
  const ok = await setup({ install: !values['no-install'] });
  process.exit(ok ? 0 : 1);
}
