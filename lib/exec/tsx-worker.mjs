// Entry of a pool worker under tsx: tsx installs its loader on the main thread only, so the
// worker registers it, then loads the TypeScript module (worker-pool.ts names it) whose default
// export handles the pool's tasks.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const handler = await import(workerData.module);
export default handler.default;
