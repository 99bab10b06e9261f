import { defineAdapterContract } from '../support/adapter-contract.js';
import { nestReference } from '../support/nestjs-reference.js';

// The HTTP contract through idemkit/nestjs, on both Nest platforms, on all four stores.
defineAdapterContract('nestjs adapter on Express', nestReference('express'));
defineAdapterContract('nestjs adapter on Fastify', nestReference('fastify'));
