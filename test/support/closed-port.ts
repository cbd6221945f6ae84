import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * An http URL on 127.0.0.1 where nothing listens: a port taken from the system and released at once, so a
 * connection is refused as it is by a server that is down (or, to the page, by a machine that is offline).
 */
export async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
