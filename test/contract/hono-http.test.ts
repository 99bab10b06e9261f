import { defineAdapterContract } from '../support/adapter-contract.js';
import { startHonoReference } from '../support/hono-reference.js';

// The HTTP contract through idemkit/hono under @hono/node-server, on all four stores.
defineAdapterContract('hono adapter', startHonoReference);
