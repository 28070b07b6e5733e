// SPDX-License-Identifier: GPL-2.0-only
// FakeUbus: an in-memory UbusPort for unit tests of the CN's ubus use: objects other "processes"
// publish (with method handlers), subscriptions, events, and what the CN itself published.
import type { UbusMethod, UbusPort } from './ubus-port.js';

type Notify = (type: string, data: unknown) => void;

export class FakeUbus implements UbusPort {
  readonly objects = new Map<string, Record<string, (data: Record<string, unknown>) => unknown>>();
  readonly published = new Map<string, Record<string, UbusMethod>>();
  /** Subscriptions follow their object, as the live port's do: kept across unpublish/publish. */
  private readonly subscribers = new Map<string, { notify: Notify; gone?: () => void; back?: () => void }[]>();
  private readonly events: { pattern: string; handler: Notify }[] = [];
  closed = false;

  async lookup(pattern: string): Promise<{ path: string }[]> {
    const all = [...this.objects.keys(), ...this.published.keys()];
    const match = pattern.endsWith('*') ? (p: string) => p.startsWith(pattern.slice(0, -1)) : (p: string) => p === pattern;
    return all.filter(match).map((path) => ({ path }));
  }

  async call(path: string, method: string, data: Record<string, unknown>): Promise<unknown> {
    const own = this.published.get(path)?.[method];
    if (own) return own.handler(data);
    const fn = this.objects.get(path)?.[method];
    if (!fn) throw new Error(`ubus: ${path}.${method}: Not found`);
    return fn(data);
  }

  async addObject(path: string, methods: Record<string, UbusMethod>): Promise<unknown> {
    if (this.published.has(path) || this.objects.has(path)) throw new Error(`ubus: add ${path}: Object exists`);
    this.published.set(path, methods);
    return { path };
  }

  async subscribe(path: string, onNotify: Notify, onGone?: () => void, onBack?: () => void): Promise<unknown> {
    if (!this.objects.has(path)) throw new Error(`ubus: subscribe ${path}: Not found`);
    const list = this.subscribers.get(path) ?? [];
    list.push({ notify: onNotify, ...(onGone ? { gone: onGone } : {}), ...(onBack ? { back: onBack } : {}) });
    this.subscribers.set(path, list);
    return {};
  }

  async onEvent(pattern: string, handler: Notify): Promise<unknown> {
    this.events.push({ pattern, handler });
    return {};
  }

  close(): void {
    this.closed = true;
  }

  // ---- driving the fake from a test ----

  /** Another process publishes an object (emits ubus.object.add). */
  publish(path: string, methods: Record<string, (data: Record<string, unknown>) => unknown> = {}): void {
    this.objects.set(path, methods);
    this.emit('ubus.object.add', { id: 1024 + this.objects.size, path });
    for (const s of this.subscribers.get(path) ?? []) s.back?.();
  }

  unpublish(path: string): void {
    this.objects.delete(path);
    for (const s of this.subscribers.get(path) ?? []) s.gone?.();
    this.emit('ubus.object.remove', { path });
  }

  /** The object's owner sends a notification to its subscribers; returns how many got it. */
  notify(path: string, type: string, data: unknown): number {
    if (!this.objects.has(path)) return 0;
    const list = this.subscribers.get(path) ?? [];
    for (const s of list) s.notify(type, data);
    return list.length;
  }

  emit(id: string, data: unknown): void {
    for (const e of this.events) {
      const hit = e.pattern.endsWith('*') ? id.startsWith(e.pattern.slice(0, -1)) : id === e.pattern;
      if (hit) e.handler(id, data);
    }
  }
}
