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
  return encodeFrames([payload]);
}

/** `payloads` as consecutive frames in one buffer (the frames of one turn, sent in one write). */
export function encodeFrames(payloads: readonly Uint8Array[]): Buffer {
  let bytes = 0;
  for (const p of payloads) {
    if (p.length > MLRP_MAX_PAYLOAD) throw new RangeError(`MLRP payload of ${p.length} bytes exceeds ${MLRP_MAX_PAYLOAD}`);
    bytes += MLRP_HEADER_BYTES + p.length;
  }
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const p of payloads) {
    out.writeUInt16BE(MLRP_MAGIC, at);
    out.writeUInt8(MLRP_VERSION, at + 2);
    out.writeUInt8(MLRP_KIND_JSON, at + 3);
    out.writeUInt32BE(p.length, at + 4);
    out.set(p, at + MLRP_HEADER_BYTES);
    at += MLRP_HEADER_BYTES + p.length;
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/**
 * Accumulates stream chunks and yields whole frame payloads. After an error it stays failed.
 * Payloads are views, not copies: of the chunk pushed when nothing was held (the common case, a chunk
 * of whole frames, costs no copy), so the caller must not change a chunk once pushed. Only an
 * incomplete frame at the end is copied, to be held until the rest arrives.
 */
export class FrameDecoder {
  private buffered: Buffer = EMPTY;
  private failure: string | undefined;

  constructor(private readonly maxPayload = MLRP_MAX_PAYLOAD) {}

  push(chunk: Uint8Array): Result<Buffer[]> {
    if (this.failure) return err(this.failure);
    let buf: Buffer;
    if (this.buffered.length > 0) buf = Buffer.concat([this.buffered, chunk]);
    else buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const frames: Buffer[] = [];
    let at = 0;
    while (buf.length - at >= MLRP_HEADER_BYTES) {
      const magic = buf.readUInt16BE(at);
      const version = buf[at + 2]!;
      const kind = buf[at + 3]!;
      const length = buf.readUInt32BE(at + 4);
      if (magic !== MLRP_MAGIC) return this.fail(`bad MLRP magic 0x${magic.toString(16)}`);
      if (version !== MLRP_VERSION) return this.fail(`unsupported MLRP version ${version} (this end speaks ${MLRP_VERSION})`);
      if (kind !== MLRP_KIND_JSON) return this.fail(`unknown MLRP frame kind ${kind}`);
      if (length > this.maxPayload) return this.fail(`MLRP frame of ${length} bytes exceeds the ${this.maxPayload}-byte limit`);
      if (buf.length - at < MLRP_HEADER_BYTES + length) break;
      frames.push(buf.subarray(at + MLRP_HEADER_BYTES, at + MLRP_HEADER_BYTES + length));
      at += MLRP_HEADER_BYTES + length;
    }
    this.buffered = at === buf.length ? EMPTY : Buffer.from(buf.subarray(at));
    return ok(frames);
  }

  /** Bytes held while waiting for the rest of a frame. */
  get pending(): number {
    return this.buffered.length;
  }

  private fail(message: string): Result<Buffer[]> {
    this.failure = message;
    this.buffered = EMPTY;
    return err(message);
  }
}
