/**
 * A separate process that computes a pipeline's ranking, so a test can kill it for real
 * (SIGKILL mid-collection) and resume in another process.
 *
 *   node --import tsx test/helpers/pipeline-child.ts <model-dir> <data-dir> <cache-dir> <batch-size> <rel,rel>
 */
import { Pipeline } from '../../lib/runs/pipeline.ts';

const [modelDir, dataDir, cacheDir, batch, relations] = process.argv.slice(2);
if (!modelDir || !dataDir || !cacheDir || !batch || !relations) {
  process.stderr.write('usage: pipeline-child.ts <model-dir> <data-dir> <cache-dir> <batch-size> <rel,rel>\n');
  process.exit(2);
}
const p = await Pipeline.open({ modelDir, dataDir, cacheDir, relations: relations.split(','), run: { batchSize: Number(batch), quiet: true }, log: (l) => process.stdout.write(l + '\n') });
await p.ranking();
p.dispose();
