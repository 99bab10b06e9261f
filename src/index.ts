export { createIdempotency, type Decision, type Idempotency } from './core/engine.js';
export {
  CapacityError,
  IdempotencyConfigError,
  IdempotencyError,
  InFlightError,
  isIdempotencyError,
  KeyReusedError,
  OutcomeUncertainError,
  PROBLEMS,
  ProblemCode,
  StoreMisconfiguredError,
  StoreUnavailableError,
} from './core/errors.js';
export type { IdempotencyEvent } from './core/events.js';
export type { CommitResult, ExecuteDecision, HandlerContext } from './core/execution.js';
export type { VersionedSecret } from './core/fingerprint.js';
export { parseIdempotencyKey } from './core/key.js';
export { OPERATION_METHOD, type OperationCall, type OperationFn } from './core/operation.js';
export {
  DEFAULTS,
  type Disposition,
  defaultClassify,
  type IdempotencyOptions,
  type PerRequest,
} from './core/options.js';
export { problemResponse, problemType } from './core/problem.js';
export type { EngineRequest, HeaderInput } from './core/request.js';
export { DEFAULT_REPLAY_HEADERS, type EngineResponse } from './core/response.js';
export { downstreamKeyFor } from './core/scope.js';
export {
  type MemoryStore,
  type MemoryStoreOptions,
  type MemoryStoreStats,
  memoryStore,
} from './stores/memory.js';
export {
  type ClaimRequest,
  type ClaimResult,
  type Clock,
  type CompleteRequest,
  type HeartbeatRequest,
  type IdempotencyStore,
  isTransactionalStore,
  type MarkUncertainRequest,
  RecordState,
  type ReleaseRequest,
  type StoredRecord,
  type StoredResponse,
  type StoreTransaction,
  type TransactionalStore,
} from './stores/types.js';
