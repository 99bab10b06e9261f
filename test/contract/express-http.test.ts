import { defineAdapterContract } from '../support/adapter-contract.js';
import { expressReference } from '../support/express-reference.js';

// The HTTP contract through idemkit/express on all four stores, on Express 4 and 5 with nothing
// in front of the middleware (it reads the body and puts it back for the route).
defineAdapterContract('express 4 adapter', expressReference({ major: 4, parser: false }));
defineAdapterContract('express 5 adapter', expressReference({ major: 5, parser: false }));
