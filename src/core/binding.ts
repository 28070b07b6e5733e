// SPDX-License-Identifier: GPL-2.0-only
// A mobile station's binding as the MLR tells it to CNs, decoded once at the RPC boundary: its /30
// cell as a number, the parent CN (whose pool the cell came from) and the current CN with their
// backbone addresses, the tunnel agreed for that pair when they differ, the expiry and the state.
// Also the one rule that says which CNs take part in a binding (`involves`), used by the MLR's
// registry and by every CN.
import type { IPv4, Mac } from './ip.js';
import { int, ipv4, literal, mac, nullable, object, optional, refine, str, tunnelType, type Codec } from './schema.js';
import type { TunnelType } from './tunnel.js';

export type BindingState = 'offered' | 'bound';

/** A CN as other parts see it: its name and backbone address. */
export interface CnRef {
  name: string;
  addr: IPv4;
}

export interface BindingView {
  mac: Mac;
  /** Network address N of the /30 cell (host N+1, gateway N+2). */
  cell: IPv4;
  parent: CnRef;
  current: CnRef | null;
  /** Present when parent and current differ: the pair's tunnel. */
  tunnel?: { type: TunnelType; key: number };
  /** Epoch milliseconds after which the MLR drops the binding. */
  expires: number;
  state: BindingState;
}

export const MAX_TUNNEL_KEY = 0xffffff;

export const cnRefCodec: Codec<CnRef> = object({ name: str(64), addr: ipv4 });

export const bindingCodec: Codec<BindingView> = refine(
  object({
    mac,
    cell: ipv4,
    parent: cnRefCodec,
    current: nullable(cnRefCodec),
    tunnel: optional(object({ type: tunnelType, key: int(1, MAX_TUNNEL_KEY) })),
    expires: int(0, Number.MAX_SAFE_INTEGER),
    state: literal('offered', 'bound'),
  }),
  (b) => ((b.cell & 3) !== 0 ? 'cell is not the network address of a /30' : undefined),
);

/** A CN named directly (the MLR's registry) or by reference (what CNs are told). */
type Participant = string | CnRef | null;

function nameOf(p: Participant): string | null {
  return p === null || typeof p === 'string' ? p : p.name;
}

/**
 * Does CN `cn` take part in this binding, and so reflect it in its kernel? Only bound bindings
 * count; the parent routes the station's address into a tunnel when it is away, the current CN
 * serves the station's gateway.
 */
export function involves(b: { state: BindingState; parent: Participant; current: Participant }, cn: string): boolean {
  return b.state === 'bound' && (nameOf(b.parent) === cn || nameOf(b.current) === cn);
}

/** Is the station served in `cn`'s cell (bound there)? */
export function servedBy(b: { state: BindingState; current: Participant }, cn: string): boolean {
  return b.state === 'bound' && nameOf(b.current) === cn;
}
