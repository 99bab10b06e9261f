import { defineAdapterContract } from '../support/adapter-contract.js';
import { startFastifyReference } from '../support/fastify-reference.js';

defineAdapterContract('fastify plugin', ({ app, options }) => startFastifyReference(app, options));
