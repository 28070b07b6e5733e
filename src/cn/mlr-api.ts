// SPDX-License-Identifier: GPL-2.0-only
// MlrApi: what CN logic needs from its MLR connection (requests with typed replies). The live
// implementation is MlrLink (reconnecting TCP); tests pass a stub or an in-process MLR.
import type { ReplyBody, RequestBody, RequestType } from '../core/messages.js';

export interface MlrApi {
  request<T extends RequestType>(type: T, body: RequestBody<T>, timeoutMs?: number): Promise<ReplyBody<T>>;
}
