/**
 * One error class per failure family, so callers (CLI, notebooks, tests) can tell a bad
 * checkpoint from a bad hook name without parsing messages. Every message should say what was
 * expected, what was found, and where (file, tensor, field).
 */

/** A checkpoint or converted model directory is malformed (file, tensor, header, manifest). */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(message: string, readonly file?: string, readonly tensor?: string) {
    super(message);
  }
}

/** A config.json (or other JSON input) is missing a field or has a wrong value. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(message: string, readonly file?: string, readonly field?: string) {
    super(message);
  }
}

/** A tensor or input has the wrong shape. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

/** A hook point name or unit index that the model does not have. */
export class HookError extends Error {
  override name = 'HookError';
}

/** A TF.js backend could not be initialised or was requested but is unavailable. */
export class BackendError extends Error {
  override name = 'BackendError';
}

/** A run would not fit in (or ran out of) device memory. */
export class OutOfMemoryError extends Error {
  override name = 'OutOfMemoryError';
}

/** The GPU device reported an error (a binding over its limits, out of memory, a lost device) during a call. */
export class DeviceError extends Error {
  override name = 'DeviceError';
  constructor(message: string, readonly deviceMessages: readonly string[] = []) {
    super(message);
  }
}
