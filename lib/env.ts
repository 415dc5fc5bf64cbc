/**
 * Every environment variable the lab itself reads, in one table. Code reads them only through
 * `readEnv`, so this table (and the README's list, which a test checks against it) is complete.
 *
 * Notebook parameters are the other environment layer: `params({ k: 3000 })` reads RSN_K, and
 * so on (lib/notebook/params.ts); their names are derived, not listed here.
 */

export const ENV_VARS = {
  backend: { name: 'RSN_BACKEND', what: 'force a TF.js backend (tensorflow-gpu, webgpu, tensorflow, wasm, cpu)' },
  deviceMemoryGB: { name: 'RSN_DEVICE_MEMORY_GB', what: "the device memory budget in GB, instead of the detected one (the memory planner's input)" },
  maxBindingBytes: { name: 'RSN_MAX_BINDING_BYTES', what: 'the largest tensor one kernel may bind, in bytes (lower it to exercise blocked weights on any backend)' },
  results: { name: 'RSN_RESULTS', what: 'where notebooks file results (default results/)' },
  cache: { name: 'RSN_CACHE', what: "where the notebooks' stage cache lives (default .cache/pipeline)" },
  notebook: { name: 'RSN_NOTEBOOK', what: 'the notebook name results are filed under (set by the headless runner)' },
  run: { name: 'RSN_RUN', what: "the run folder id the notebooks must file into (set by the headless runner; a notebook whose setting gives another id stops with an error)" },
  model: { name: 'RSN_MODEL', what: "the model directory (also the notebooks' `model` parameter)" },
  chromium: { name: 'RSN_CHROMIUM', what: 'the Chromium/Chrome executable for rendering figures (default: chromium, chromium-browser or google-chrome on PATH)' },
  matMul: { name: 'RSN_MATMUL', what: "the wasm backend's matrix product: openblas (the native addon lib/wasm-kernels/sgemm.c, built on first use), wasm (TF.js's own) or auto (openblas when it builds and loads)" },
  workers: { name: 'RSN_WORKERS', what: "worker threads of lib/exec's pools: a model call's rows on the CPU backends, the AP engine's chunks (default: the available cores, fewer when host memory cannot hold them; 1 = one thread; at most 4 per core)" },
  jupyterPython: { name: 'RSN_JUPYTER_PYTHON', what: 'the python3 that has Jupyter (default /usr/bin/python3)' },
  benchPython: { name: 'RSN_PYTHON', what: "the python3 with PyTorch that `npm run bench` runs its peer forward in (default: python3 on PATH); the result file names it, and why when it has no torch" },
} as const;

export type EnvVar = keyof typeof ENV_VARS;

/** The variable's value, or undefined when it is unset or empty ("use the default"). */
export function readEnv(v: EnvVar, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[ENV_VARS[v].name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

export function envVarName(v: EnvVar): string {
  return ENV_VARS[v].name;
}
