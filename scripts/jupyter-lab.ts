/**
 * `npm run lab`: Jupyter Notebook on the project, with the tslab kernel from the project-local
 * prefix (.cache/jupyter) and the lib's types current. Extra arguments go to Jupyter, e.g.
 *
 *   npx tsx scripts/jupyter-lab.ts --no-browser --port 8899 --ip 0.0.0.0
 */
import { spawn } from 'node:child_process';
import { jupyterEnv, jupyterPython } from '../lib/notebook/jupyter.ts';
import { projectRoot } from '../lib/notebook/paths.ts';
import { setup } from './jupyter-setup.ts';

if (!(await setup())) process.exit(1);
const args = ['-m', 'notebook', `--notebook-dir=${projectRoot}`, '--NotebookApp.default_url=/tree/notebooks'];
// Jupyter refuses to start as root unless told it may (containers, CI boxes).
if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('--allow-root');
args.push(...process.argv.slice(2));
console.log(`starting Jupyter Notebook in ${projectRoot} (kernel "TypeScript" = tslab); open notebooks/ and run the cells top to bottom`);
const child = spawn(jupyterPython(), args, { stdio: 'inherit', env: jupyterEnv(), cwd: projectRoot });
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
