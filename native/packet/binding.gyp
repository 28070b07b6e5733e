# SPDX-License-Identifier: GPL-2.0-only
# node-gyp build of the tmip-packet addon (packet.c): one C file, N-API version 8 (Node 20 has 9).
{
  "targets": [
    {
      "target_name": "tmip_packet",
      "sources": ["packet.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    }
  ]
}
