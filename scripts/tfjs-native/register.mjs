// Lets the project load a tfjs-node / tfjs-node-gpu package that lives OUTSIDE node_modules
// (e.g. one built by build-against-tf-wheel.sh in a scratch directory), without touching
// node_modules:
//
//   TFJS_NODE_DIR=/path/to/@tensorflow/tfjs-node \
//     node --import ./scripts/tfjs-native/register.mjs --import tsx cli/rsn.ts ...
//
// TFJS_NODE_DIR maps `@tensorflow/tfjs-node`, TFJS_NODE_GPU_DIR maps `@tensorflow/tfjs-node-gpu`.
// The package's own require()s resolve from its real location, so its @tensorflow/tfjs and
// @tensorflow/tfjs-core must be the project's (symlinks to them), or the backend would register
// on a second tfjs-core copy. See docs/gpu-cuda.md.
import { register } from 'node:module';

if (process.env.TFJS_NODE_DIR || process.env.TFJS_NODE_GPU_DIR) {
  register('./resolve-hooks.mjs', import.meta.url, {
    data: { 'tfjs-node': process.env.TFJS_NODE_DIR ?? '', 'tfjs-node-gpu': process.env.TFJS_NODE_GPU_DIR ?? '' },
  });
}
