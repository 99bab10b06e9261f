export {
  type ContractHarness,
  defineHttpContract,
  type HttpContractOptions,
  SHORT_RETENTION_MS,
  type Started,
  type StoreHandle,
} from './http-contract.js';
export { type RawResponse, rawRequest, rawUpload } from './raw-http.js';
export { createReferenceApp, INTERNAL_ERROR_TEXT, type ReferenceApp } from './reference-app.js';
export { type ServedFetch, serveFetch } from './serve-fetch.js';
export {
  type ContractTestFunction,
  defineStoreContract,
  type StoreCapabilities,
  type StoreContractHarness,
  type StoreContractOptions,
} from './store-contract.js';
export { countingStore } from './store-spy.js';
