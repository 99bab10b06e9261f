/**
 * The upstream API of `npm run bench -- gateway`, in its own (pinned) child process:
 * `node --import tsx bench/lib/upstream.ts '{}'`. A plain `node:http` server on 127.0.0.1 that reads
 * the whole request body and answers every request with the same small JSON 201 — 400 if the body
 * it read is not the `Content-Length` it was announced with (a proxy that mangles bodies shows up
 * as non-2xx). It counts the requests it answered; the runner reads the count with each CPU probe,
 * so the table can show how many requests reached the upstream (a replay must not).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { childSide } from './child-side.js';

const ANSWER = Buffer.from('{"id":"ord_4f9a2c51","amount":4200,"currency":"eur","status":"created"}');
const HEADERS = { 'content-type': 'application/json', 'content-length': String(ANSWER.byteLength) };

let served = 0;
const { send, cleanups, fail } = childSide(() => served);

const server = createServer((req, res) => {
  let bytes = 0;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.byteLength;
  });
  req.once('end', () => {
    served++;
    const announced = req.headers['content-length'];
    if (announced !== undefined && Number(announced) !== bytes) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`read ${bytes} bytes, announced ${announced}`);
      return;
    }
    res.writeHead(201, HEADERS);
    res.end(ANSWER);
  });
});
// Longer than the proxies' keep-alive (30 s), so idle pooled connections are never cut mid-run.
server.keepAliveTimeout = 65_000;
cleanups.push(
  () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
);

server.once('error', fail);
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  send({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
