import { type Meter, metrics, type Tracer, trace } from '@opentelemetry/api';

export interface TelemetryOptions {
  /** @default the global tracer provider's `idemkit` tracer */
  tracer?: Tracer;
  /** @default the global meter provider's `idemkit` meter */
  meter?: Meter;
}

export interface Telemetry {
  tracer: Tracer;
  meter: Meter;
}

/**
 * Without an SDK registered, the API's global providers are no-ops: spans are not recorded and
 * nothing is exported, so instrumenting costs next to nothing until the application opts in.
 */
export function telemetryOf(options: TelemetryOptions): Telemetry {
  return {
    tracer: options.tracer ?? trace.getTracer('idemkit'),
    meter: options.meter ?? metrics.getMeter('idemkit'),
  };
}
