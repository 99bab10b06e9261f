import { defineAdapterContract } from '../support/adapter-contract.js';
import { expressReference } from '../support/express-reference.js';

// The HTTP contract through idemkit/express on all four stores, on Express 4 and 5: with nothing
// in front of the middleware (it reads the body and puts it back for the route), and with
// express.json({ verify: keepRawBody }) in front (it takes the bytes the parser kept).
defineAdapterContract('express 4 adapter', expressReference({ major: 4, parser: false }));
defineAdapterContract('express 5 adapter', expressReference({ major: 5, parser: false }));

/*
 * With body-parser in front, an oversized upload never reaches the middleware: body-parser
 * answers its own 413, but only after reading the upload to its end (it drains the request
 * before it calls next(err)), so T49's "answered before the upload ended" is body-parser's to
 * keep, not idemkit's. What does hold there (413, no store call, no execution, bounded memory) is
 * tested in test/integration/express-adapter.test.ts.
 */
const parserInFront = {
  notApplicable: {
    'T49 ': 'body-parser in front drains an oversized upload before its own 413',
  },
};
defineAdapterContract(
  'express 4 adapter + express.json first',
  expressReference({ major: 4, parser: true }),
  parserInFront,
);
defineAdapterContract(
  'express 5 adapter + express.json first',
  expressReference({ major: 5, parser: true }),
  parserInFront,
);
