import { IdempotencyError } from '../core/errors.js';

/**
 * A gateway or CLI setting is wrong: a flag, an `IDEMKIT_*` variable, the config file or a store
 * URL. The message names where the value came from and how to fix it; the CLI prints it and
 * exits with code 2, so scripts can tell "fix your configuration" from "it failed at runtime".
 */
export class ConfigError extends IdempotencyError {
  override readonly name = 'ConfigError';

  constructor(message: string, options?: ErrorOptions) {
    super('invalid-options', message, options);
  }
}
