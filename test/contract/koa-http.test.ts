import { defineAdapterContract } from '../support/adapter-contract.js';
import { startKoaReference } from '../support/koa-reference.js';

// The HTTP contract through idemkit/koa on a real Koa 3 server, on all four stores.
defineAdapterContract('koa adapter', startKoaReference);
