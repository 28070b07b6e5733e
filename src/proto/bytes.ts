// SPDX-License-Identifier: GPL-2.0-only
// Big-endian integer reads and writes on byte arrays, shared by the wire codecs in proto/
// (packet, dhcp, blob, ubus). Reads never throw: a byte past the end of the array reads as 0, so
// callers check lengths first. Writes store the low 16/32 bits of v. Pure functions, no I/O.

/** Unsigned 16-bit big-endian value at b[o..o+2). */
export function u16(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

/** Unsigned 32-bit big-endian value at b[o..o+4). */
export function u32(b: Uint8Array, o: number): number {
  return (((b[o] ?? 0) << 24) | ((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0)) >>> 0;
}

/** Unsigned 64-bit big-endian value at b[o..o+8). */
export function u64(b: Uint8Array, o: number): bigint {
  return (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4));
}

/** Writes the low 16 bits of v big-endian at b[o..o+2). */
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

/** Writes the low 32 bits of v big-endian at b[o..o+4). */
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
