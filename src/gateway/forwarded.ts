import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * Headers through which a client could tell the upstream who it is, where it connected or which
 * URL it asked for. Only a trusted proxy in front of the gateway may set them; from anyone else
 * they are dropped and the gateway writes its own.
 */
const CLIENT_CLAIMS: readonly string[] = [
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  // Some frameworks route on these instead of the request line (a second path the scope never saw).
  'x-original-url',
  'x-rewrite-url',
];

/** Which peers may speak for a client: `10.0.0.0/8`, `127.0.0.1`, `::1`, `fd00::/8`. */
export function createTrustedProxies(entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return list;
}

/** `10.0.0.0/8`, `127.0.0.1` or `::1`; the reason when not. */
export function invalidProxyEntry(entry: string): string | undefined {
  const [address = '', prefix, extra] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return `"${entry}" is not an IP address or CIDR range`;
  if (prefix !== undefined) {
    const bits = Number(prefix);
    if (!/^\d{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128))
      return `"${entry}" has a prefix length outside 0–${family === 4 ? 32 : 128}`;
  }
  return undefined;
}

/** What a connection's peer is, worked out once per socket (keep-alive reuses it). */
interface Peer {
  address: string;
  proto: string;
  trusted: boolean;
  /** The last Forwarded element built on this connection, and the Host it was built for. */
  host?: string | undefined;
  element?: string;
}
const peers = new WeakMap<object, Peer>();

function peerOf(req: IncomingMessage, trusted: BlockList | undefined): Peer {
  const socket = req.socket;
  let peer = peers.get(socket);
  if (peer === undefined) {
    const address = unmapped(socket.remoteAddress ?? '');
    peer = {
      address,
      proto: 'encrypted' in socket ? 'https' : 'http',
      trusted:
        trusted !== undefined &&
        address !== '' &&
        trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4'),
    };
    peers.set(socket, peer);
  }
  return peer;
}

/**
 * Rewrites `headers` (already filtered of hop-by-hop fields) with the forwarding headers the
 * upstream should see: from a trusted peer the chain it sent plus this hop; from anyone else only
 * this hop, so a client cannot pose as another address, host or scheme.
 */
export function setForwardingHeaders(
  req: IncomingMessage,
  headers: Record<string, string | string[]>,
  trusted: BlockList | undefined,
): void {
  const peer = peerOf(req, trusted);
  const host = req.headers.host;
  const prior = peer.trusted
    ? { xff: req.headers['x-forwarded-for'], forwarded: req.headers.forwarded }
    : { xff: undefined, forwarded: undefined };
  if (!peer.trusted) {
    for (const name in headers)
      if (name.startsWith('x-forwarded-') || CLIENT_CLAIMS.includes(name)) delete headers[name];
  }
  headers['x-forwarded-for'] = prior.xff ? `${prior.xff}, ${peer.address}` : peer.address;
  headers['x-forwarded-proto'] ??= peer.proto;
  if (host !== undefined) headers['x-forwarded-host'] ??= host;
  if (peer.element === undefined || peer.host !== host) {
    peer.element = forwardedElement(peer.address, peer.proto, host);
    peer.host = host;
  }
  const hop = peer.element;
  headers.forwarded = prior.forwarded ? `${prior.forwarded}, ${hop}` : hop;
}

/** RFC 7239 §4: `for=192.0.2.1;proto=http;host="h:8787"`, IPv6 as `for="[2001:db8::1]"`. */
export function forwardedElement(peer: string, proto: string, host: string | undefined): string {
  const node = isIP(peer) === 6 ? `"[${peer}]"` : peer === '' ? 'unknown' : peer;
  return `for=${node};proto=${proto}${host === undefined ? '' : `;host=${quoteIfNeeded(host)}`}`;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const quoteIfNeeded = (value: string): string =>
  TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/** `::ffff:127.0.0.1` (a dual-stack socket's view of an IPv4 peer) → `127.0.0.1`. */
const unmapped = (address: string): string =>
  /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
