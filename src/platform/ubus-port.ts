// SPDX-License-Identifier: GPL-2.0-only
// UbusPort: the part of a ubus client the CN uses (lookup, call, publish, subscribe, events). The
// live implementation is platform/ubus-client.ts; tests use the same client against a fake ubusd.
/** Returns the reply data, or a promise of it. */
export type UbusHandler = (data: Record<string, unknown>) => unknown;

export interface UbusMethod {
  /** Argument name -> blobmsg type name ('string', 'int32', 'bool', 'table', 'array'). */
  args: Record<string, string>;
  handler: UbusHandler;
}

export interface UbusPort {
  lookup(pattern: string): Promise<{ path: string }[]>;
  call(path: string, method: string, data: Record<string, unknown>, timeoutMs?: number): Promise<unknown>;
  addObject(path: string, methods: Record<string, UbusMethod>): Promise<unknown>;
  subscribe(path: string, onNotify: (type: string, data: unknown) => void, onGone?: () => void): Promise<unknown>;
  onEvent(pattern: string, handler: (type: string, data: unknown) => void): Promise<unknown>;
  close(): void;
}
