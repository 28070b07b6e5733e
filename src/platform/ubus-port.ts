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
  /**
   * One subscription for good: it follows its object. `onGone` runs once each time it stops
   * delivering (the object went away, or ubusd did); `onBack` when it delivers again (the object
   * came back, or ubusd did). Subscribing again to the same path would be a second subscription.
   */
  subscribe(path: string, onNotify: (type: string, data: unknown) => void, onGone?: () => void, onBack?: () => void): Promise<unknown>;
  onEvent(pattern: string, handler: (type: string, data: unknown) => void): Promise<unknown>;
  close(): void;
}
