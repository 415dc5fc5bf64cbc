/**
 * Start a worker thread on a sibling module of the caller. Under tsx (the caller is a .ts file)
 * the worker must load TypeScript, but tsx installs its loader on the main thread only, so the
 * worker first registers tsx itself, then imports the module. From compiled JavaScript the
 * sibling .js module is started directly.
 */
import { Worker } from 'node:worker_threads';

/** `callerUrl` is the caller's import.meta.url; `moduleBase` the sibling's name without extension. */
export function startModuleWorker(callerUrl: string, moduleBase: string, workerData: unknown, what: string): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${moduleBase}.js`, callerUrl), { workerData });
  const workerUrl = new URL(`./${moduleBase}.ts`, callerUrl).href;
  let tsxApi: string;
  try {
    tsxApi = import.meta.resolve('tsx/esm/api');
  } catch (e) {
    throw new Error(`${what} need the tsx package to load ${moduleBase}.ts; install it or run without worker threads`, { cause: e });
  }
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
