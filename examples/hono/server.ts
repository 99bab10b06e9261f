import { pathToFileURL } from 'node:url';
import { serve } from '@hono/node-server';
import { createApp } from './app.js';

/** Serves the payments API on Node at 127.0.0.1:PORT (0 picks a free port). */
export function start(port = Number(process.env.PORT ?? 3000)) {
  const { app } = createApp();
  return new Promise<{ url: string; close(): Promise<void> }>((resolve) => {
    const server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, (info) => {
      const close = () => new Promise<void>((done) => server.close(() => done()));
      resolve({ url: `http://127.0.0.1:${info.port}`, close });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url } = await start();
  console.log(`payments API on ${url}`);
}
