/**
 * Prints the numeric engine a notebook kernel with this environment would compute with
 * (backendKey: backend, matMul engine and CPU kernel, or GPU adapter), as one JSON string. Run as
 * its own process so that the caller never initialises a GPU the kernels will need.
 */
import { backendKey, initBackend } from '../lib/backend.ts';

try {
  console.log(JSON.stringify(backendKey(await initBackend({ log: null }))));
  process.exit(0);
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
}
