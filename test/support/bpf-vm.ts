// SPDX-License-Identifier: GPL-2.0-only
// A classic BPF interpreter for unit tests, so the programs of src/proto/bpf.ts can be run over
// built frames without root: only the instructions those programs emit, with the kernel's rules
// for them (a packet load past the end of the frame rejects it, returning 0; jumps are forward;
// the program must end in a return). Runs the 8-byte encoded form, so the encoding is tested too.
import { BPF_OP, decodeProgram } from '../../src/proto/bpf.js';
import { err, ok, type Result } from '../../src/core/result.js';

/** What the program returns for `frame` (0: rejected; else how many bytes to keep), or why it cannot run. */
export function runBpf(program: Uint8Array, frame: Uint8Array): Result<number> {
  const insns = decodeProgram(program);
  if (!insns.ok) return insns;
  const code = insns.value;
  let a = 0;
  let x = 0;
  const byte = (o: number) => (o >= 0 && o < frame.length ? frame[o]! : undefined);
  const load = (o: number, size: 1 | 2 | 4): number | undefined => {
    if (o < 0 || o + size > frame.length) return undefined;
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + frame[o + i]!;
    return v;
  };
  // each instruction runs at most once: jumps only go forward
  for (let pc = 0; pc < code.length; pc++) {
    const { code: c, jt, jf, k } = code[pc]!;
    let v: number | undefined;
    switch (c) {
      case BPF_OP.LD_W_ABS:
      case BPF_OP.LD_H_ABS:
      case BPF_OP.LD_B_ABS:
        v = load(k, c === BPF_OP.LD_W_ABS ? 4 : c === BPF_OP.LD_H_ABS ? 2 : 1);
        if (v === undefined) return ok(0);
        a = v;
        break;
      case BPF_OP.LD_H_IND:
        v = load(x + k, 2);
        if (v === undefined) return ok(0);
        a = v;
        break;
      case BPF_OP.LDX_B_MSH:
        v = byte(k);
        if (v === undefined) return ok(0);
        x = (v & 0xf) * 4;
        break;
      case BPF_OP.JEQ_K:
      case BPF_OP.JSET_K: {
        const taken = c === BPF_OP.JEQ_K ? a === k : (a & k) >>> 0 !== 0;
        const next = pc + (taken ? jt : jf);
        if (next + 1 >= code.length) return err(`jump from ${pc} past the end`);
        pc = next;
        break;
      }
      case BPF_OP.RET_K:
        return ok(k);
      default:
        return err(`instruction ${pc}: opcode 0x${c.toString(16)} is not interpreted`);
    }
  }
  return err('the program ends without a return');
}
