// SPDX-License-Identifier: GPL-2.0-only
// MLRP framing: how one control-plane message travels over a byte stream (TCP). Each frame is an
// 8-byte header — magic "TM", version, kind, payload length (u32, big endian) — then the payload
// (UTF-8 JSON of one Envelope). The decoder is total: a truncated frame waits for more bytes, a bad
// magic/version/kind or an oversized length is an error after which the stream must be closed.
// MQTT carries the same payload bytes without this header (the broker frames messages itself).
import { err, ok, type Result } from '../core/result.js';

export const MLRP_MAGIC = 0x544d; // "TM"
export const MLRP_VERSION = 1;
export const MLRP_KIND_JSON = 1;
export const MLRP_HEADER_BYTES = 8;
export const MLRP_MAX_PAYLOAD = 256 * 1024;

export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > MLRP_MAX_PAYLOAD) throw new RangeError(`MLRP payload of ${payload.length} bytes exceeds ${MLRP_MAX_PAYLOAD}`);
  const frame = Buffer.allocUnsafe(MLRP_HEADER_BYTES + payload.length);
  frame.writeUInt16BE(MLRP_MAGIC, 0);
  frame.writeUInt8(MLRP_VERSION, 2);
  frame.writeUInt8(MLRP_KIND_JSON, 3);
  frame.writeUInt32BE(payload.length, 4);
  frame.set(payload, MLRP_HEADER_BYTES);
  return frame;
}

/** Accumulates stream chunks and yields whole frame payloads. After an error it stays failed. */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  private failure: string | undefined;

  constructor(private readonly maxPayload = MLRP_MAX_PAYLOAD) {}

  push(chunk: Uint8Array): Result<Buffer[]> {
    if (this.failure) return err(this.failure);
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const frames: Buffer[] = [];
    while (this.buffered.length >= MLRP_HEADER_BYTES) {
      const magic = this.buffered.readUInt16BE(0);
      const version = this.buffered.readUInt8(2);
      const kind = this.buffered.readUInt8(3);
      const length = this.buffered.readUInt32BE(4);
      if (magic !== MLRP_MAGIC) return this.fail(`bad MLRP magic 0x${magic.toString(16)}`);
      if (version !== MLRP_VERSION) return this.fail(`unsupported MLRP version ${version} (this end speaks ${MLRP_VERSION})`);
      if (kind !== MLRP_KIND_JSON) return this.fail(`unknown MLRP frame kind ${kind}`);
      if (length > this.maxPayload) return this.fail(`MLRP frame of ${length} bytes exceeds the ${this.maxPayload}-byte limit`);
      if (this.buffered.length < MLRP_HEADER_BYTES + length) break;
      frames.push(Buffer.from(this.buffered.subarray(MLRP_HEADER_BYTES, MLRP_HEADER_BYTES + length)));
      this.buffered = this.buffered.subarray(MLRP_HEADER_BYTES + length);
    }
    return ok(frames);
  }

  /** Bytes held while waiting for the rest of a frame. */
  get pending(): number {
    return this.buffered.length;
  }

  private fail(message: string): Result<Buffer[]> {
    this.failure = message;
    this.buffered = Buffer.alloc(0);
    return err(message);
  }
}
