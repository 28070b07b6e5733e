// SPDX-License-Identifier: GPL-2.0-only
// tmip-packet: an AF_PACKET socket for Node.js, the CN's capture and injection on its mobile-facing
// interface (src/platform/packet-linkio.ts is its only user). It owns one raw packet socket per
// handle: the classic BPF program given from JS, the receive buffer size, promiscuous membership,
// the bind to one interface, the poll on the event loop, frame copies into fresh Buffers, send, and
// the counters (frames delivered, dropped by the kernel with the receive buffer full, longer than
// the snap length).
//
// Why our own: no maintained npm module gives AF_PACKET with a snap length and a receive buffer we
// choose, a cBPF program, a drop counter, on Node 20 and musl. The `cap` addon it replaces went
// through libpcap with a fixed 65,535-byte snap length, whose TPACKET ring held 16 frames on an
// interface with offloads on. Here the kernel queues each accepted frame on the socket (its skb
// charged to SO_RCVBUF), so the buffer holds as many frames as their size allows. Plain C, N-API
// only (ABI-stable: one build serves every Node version from 20 on), no libpcap.
//
// JS interface (errors are exceptions from the constructor; the methods throw only when called on some
// other object, and return their failures):
//   new PacketSocket(ifname, program, rcvbuf, snaplen, onFrames)
//     program   Buffer of struct sock_filter entries (8 bytes each, host byte order), 1..4096 of them
//     rcvbuf    receive buffer in bytes asked for: SO_RCVBUFFORCE (CAP_NET_ADMIN; not capped by
//               net.core.rmem_max), else SO_RCVBUF (capped); the kernel doubles it for its overhead
//     snaplen   longest frame delivered (an 802.1Q tag put back included); a longer one is counted
//               in `truncated` and dropped
//     onFrames  called with an array of Buffers (a fresh copy each), at most 64 frames a call
//   .send(frame)  -> undefined, or the errno text
//   .stats()      -> { received, packets, drops, truncated, rcvbuf, errors, stopped }   (totals since
//                    open; errors: socket errors, e.g. the interface went down, after which it polls
//                    again; after the interface is deleted nothing more arrives, see on_readable;
//                    stopped: true once the socket is no longer polled, after MAX_ERRORS errors in
//                    a row or a poll that could not be restarted: open a new one)
//   .close()      idempotent; also done when the object is garbage-collected
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PROGRAM 4096
#define MAX_BATCH 64
#define MAX_SNAPLEN 65535
#define MAX_ERRORS 1000

typedef struct {
  napi_env env;
  int fd;                  // -1 once closed
  uv_poll_t poll;          // poll.data points back here
  int poll_active;         // poll initialised and not yet uv_close()d
  int poll_closing;        // uv_close() called, its callback not yet run
  int finalized;           // the JS object is gone: free when the poll handle is closed too
  napi_ref receiver;
  napi_async_context actx;
  size_t snaplen;
  unsigned char *buf;      // snaplen bytes
  uint64_t received, packets, drops, truncated, errors;
  unsigned errors_in_row;  // socket errors since the last frame read (MAX_ERRORS stops the poll)
  int stopped;             // no longer polled (MAX_ERRORS, or uv_poll_start failed): stats() says so
  int rcvbuf;
} psock;

// ---- helpers ----

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value make_string(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

static void set_number(napi_env env, napi_value obj, const char *key, double n) {
  napi_value v;
  napi_create_double(env, n, &v);
  napi_set_named_property(env, obj, key, v);
}

// PACKET_STATISTICS resets the kernel's counts on every read: add them to ours.
static void read_kernel_stats(psock *s) {
  if (s->fd < 0) return;
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (getsockopt(s->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
    s->packets += st.tp_packets; // frames the filter accepted, dropped ones included
    s->drops += st.tp_drops;     // dropped: the receive buffer was full
  }
}

static void on_poll_closed(uv_handle_t *h) {
  psock *s = (psock *)h->data;
  s->poll_closing = 0;
  if (s->finalized) {
    free(s->buf);
    free(s);
  }
}

// Stop polling and close the socket; safe to call twice. JS references are released by the caller.
static void close_socket(psock *s) {
  if (s->poll_active) {
    uv_poll_stop(&s->poll);
    s->poll_active = 0;
    s->poll_closing = 1;
    uv_close((uv_handle_t *)&s->poll, on_poll_closed);
  }
  if (s->fd >= 0) {
    read_kernel_stats(s);
    close(s->fd);
    s->fd = -1;
  }
}

static void release_js(psock *s, napi_env env) {
  if (s->receiver) {
    napi_delete_reference(env, s->receiver);
    s->receiver = NULL;
  }
  if (s->actx) {
    napi_async_destroy(env, s->actx);
    s->actx = NULL;
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  psock *s = (psock *)data;
  close_socket(s);
  release_js(s, env);
  s->finalized = 1;
  if (!s->poll_closing) {
    free(s->buf);
    free(s);
  }
}

// ---- receive ----

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  psock *s = (psock *)h->data;
  if (s->fd < 0) return;
  if (status < 0) {
    // An error on the socket (POLLERR), on which libuv has stopped the poll: a packet socket gets
    // one when its interface goes down (ENETDOWN; the kernel hooks the socket up again when the
    // same interface comes back up). Reading SO_ERROR clears it: poll again. An interface deleted
    // (and perhaps created again under the same name, a new ifindex) gives the same one error, but
    // the socket stays unbound from then on: it receives nothing more and sends fail (ENXIO).
    // Bounded: after MAX_ERRORS in a row with no frame read in between, the capture stops.
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
    s->errors++;
    if (++s->errors_in_row > MAX_ERRORS || uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) s->stopped = 1;
    return;
  }
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value frames;
  napi_create_array(env, &frames);
  uint32_t n = 0;
  for (int i = 0; i < MAX_BATCH; i++) {
    struct iovec iov = {.iov_base = s->buf, .iov_len = s->snaplen};
    union {
      struct cmsghdr align;
      char space[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
    // MSG_TRUNC: the length of the frame as queued, even when longer than the buffer
    ssize_t r = recvmsg(s->fd, &msg, MSG_DONTWAIT | MSG_TRUNC);
    if (r < 0) {
      if (errno == EINTR) continue;
      break; // EAGAIN: nothing more now; anything else: try again on the next readable event
    }
    // the frame's length on the wire (before the filter's return value trimmed it), and its 802.1Q
    // tag: the kernel takes a received frame's tag out of the data; put it back as libpcap does
    size_t wire = (size_t)r;
    int tagged = 0;
    unsigned char tag[4];
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA && c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata))) {
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(c), sizeof aux);
        if (aux.tp_len > wire) wire = aux.tp_len;
        if (aux.tp_status & TP_STATUS_VLAN_VALID) {
          uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
          tag[0] = (unsigned char)(tpid >> 8);
          tag[1] = (unsigned char)tpid;
          tag[2] = (unsigned char)(aux.tp_vlan_tci >> 8);
          tag[3] = (unsigned char)aux.tp_vlan_tci;
          tagged = 1;
        }
      }
    }
    s->errors_in_row = 0;
    size_t len = (size_t)r + (tagged ? 4 : 0);
    if ((size_t)r > s->snaplen || wire > (size_t)r || (msg.msg_flags & MSG_TRUNC) || len > s->snaplen || (tagged && r < 12)) {
      s->truncated++;
      continue;
    }
    napi_value b;
    unsigned char *out;
    if (napi_create_buffer(env, len, (void **)&out, &b) != napi_ok) break;
    if (tagged) {
      memcpy(out, s->buf, 12);
      memcpy(out + 12, tag, 4);
      memcpy(out + 16, s->buf + 12, (size_t)r - 12);
    } else {
      memcpy(out, s->buf, (size_t)r);
    }
    napi_set_element(env, frames, n++, b);
  }
  if (n > 0 && s->receiver) {
    s->received += n;
    napi_value fn, recv, result;
    napi_get_reference_value(env, s->receiver, &fn);
    napi_get_global(env, &recv); // napi_make_callback wants an object as `this`
    napi_make_callback(env, s->actx, recv, fn, 1, &frames, &result);
  }
  // an exception here (the receiver threw, or an allocation failed) is an uncaught one, as it
  // would be from any other event-loop callback
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

// ---- JS methods ----

static psock *unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  psock *s = NULL;
  if (napi_unwrap(env, self, (void **)&s) != napi_ok || !s) {
    throw_msg(env, "not a PacketSocket");
    return NULL;
  }
  return s;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  psock *s = unwrap_this(env, info, &argc, argv);
  if (!s) return NULL;
  if (s->fd < 0) return make_string(env, "socket is closed");
  bool is_buffer = false;
  if (argc < 1 || napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer) return make_string(env, "frame is not a Buffer");
  void *data;
  size_t len;
  napi_get_buffer_info(env, argv[0], &data, &len);
  ssize_t r;
  do r = send(s->fd, data, len, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0) return make_string(env, strerror(errno));
  if ((size_t)r != len) return make_string(env, "short send");
  return NULL; // undefined
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  psock *s = unwrap_this(env, info, &argc, NULL);
  if (!s) return NULL;
  read_kernel_stats(s);
  napi_value o;
  napi_create_object(env, &o);
  set_number(env, o, "received", (double)s->received);
  set_number(env, o, "packets", (double)s->packets);
  set_number(env, o, "drops", (double)s->drops);
  set_number(env, o, "truncated", (double)s->truncated);
  set_number(env, o, "rcvbuf", (double)s->rcvbuf);
  set_number(env, o, "errors", (double)s->errors);
  napi_value stopped;
  napi_get_boolean(env, s->stopped != 0, &stopped);
  napi_set_named_property(env, o, "stopped", stopped);
  return o;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  psock *s = unwrap_this(env, info, &argc, NULL);
  if (!s) return NULL;
  close_socket(s);
  release_js(s, env);
  return NULL;
}

// new PacketSocket(ifname, program, rcvbuf, snaplen, onFrames)
static napi_value js_construct(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], self;
  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) return NULL;
  // Called as a plain function, `this` is the global object (or whatever .call() gave): wrapping it
  // would tie an open socket to an object never collected, and the methods could not reach it.
  napi_value new_target = NULL;
  if (napi_get_new_target(env, info, &new_target) != napi_ok || new_target == NULL)
    return throw_msg(env, "PacketSocket must be called with new");
  if (argc < 5) return throw_msg(env, "PacketSocket(ifname, program, rcvbuf, snaplen, onFrames): missing arguments");

  char ifname[IFNAMSIZ + 1];
  size_t iflen;
  if (napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &iflen) != napi_ok) return throw_msg(env, "ifname is not a string");
  if (iflen == 0 || iflen >= IFNAMSIZ) return throw_msg(env, "invalid interface name");

  bool is_buffer = false;
  napi_is_buffer(env, argv[1], &is_buffer);
  if (!is_buffer) return throw_msg(env, "program is not a Buffer");
  void *prog_data;
  size_t prog_len;
  napi_get_buffer_info(env, argv[1], &prog_data, &prog_len);
  if (prog_len == 0 || prog_len % sizeof(struct sock_filter) != 0 || prog_len / sizeof(struct sock_filter) > MAX_PROGRAM)
    return throw_msg(env, "program must be 1..4096 instructions of 8 bytes");

  int64_t rcvbuf, snaplen;
  if (napi_get_value_int64(env, argv[2], &rcvbuf) != napi_ok || rcvbuf < 4096 || rcvbuf > (1 << 30))
    return throw_msg(env, "rcvbuf must be 4096..2^30 bytes");
  if (napi_get_value_int64(env, argv[3], &snaplen) != napi_ok || snaplen < 64 || snaplen > MAX_SNAPLEN)
    return throw_msg(env, "snaplen must be 64..65535 bytes");
  napi_valuetype t;
  napi_typeof(env, argv[4], &t);
  if (t != napi_function) return throw_msg(env, "onFrames is not a function");

  unsigned int ifindex = if_nametoindex(ifname);
  if (ifindex == 0) return throw_errno(env, ifname, errno);

  // protocol 0: nothing is queued until bind() below names ETH_P_ALL, after the filter is in place
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_PACKET)", errno);
  const char *what = NULL;
  int e = 0;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, iflen);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    what = "SIOCGIFHWADDR";
    goto fail;
  }
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    close(fd);
    return throw_msg(env, "not an Ethernet interface");
  }
  struct sock_fprog fprog = {.len = (unsigned short)(prog_len / sizeof(struct sock_filter)), .filter = (struct sock_filter *)prog_data};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) < 0) {
    what = "SO_ATTACH_FILTER";
    goto fail;
  }
  int size = (int)rcvbuf;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size) < 0) {
    what = "SO_RCVBUF";
    goto fail;
  }
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) {
    what = "PACKET_AUXDATA";
    goto fail;
  }
  struct packet_mreq mr = {.mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_PROMISC};
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
    what = "PACKET_ADD_MEMBERSHIP";
    goto fail;
  }
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)ifindex};
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    what = "bind";
    goto fail;
  }
  int actual = 0;
  socklen_t alen = sizeof actual;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &actual, &alen);

  psock *s = calloc(1, sizeof *s);
  unsigned char *buf = malloc((size_t)snaplen);
  if (!s || !buf) {
    free(s);
    free(buf);
    close(fd);
    return throw_msg(env, "out of memory");
  }
  s->env = env;
  s->fd = fd;
  s->snaplen = (size_t)snaplen;
  s->buf = buf;
  s->rcvbuf = actual;
  s->poll.data = s;

  uv_loop_t *loop;
  napi_value resource_name;
  napi_create_string_utf8(env, "tmip-packet", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &s->poll, fd) != 0) {
    free(buf);
    free(s);
    close(fd);
    return throw_msg(env, "cannot poll the socket");
  }
  s->poll_active = 1;
  if (napi_async_init(env, self, resource_name, &s->actx) != napi_ok || napi_create_reference(env, argv[4], 1, &s->receiver) != napi_ok ||
      napi_wrap(env, self, s, finalize, NULL, NULL) != napi_ok) {
    close_socket(s);
    release_js(s, env);
    s->finalized = 1; // freed by on_poll_closed
    return throw_msg(env, "cannot set up the PacketSocket object");
  }
  if (uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0) {
    close_socket(s); // the object stays wrapped: close() and finalize see the socket closed
    return throw_msg(env, "cannot poll the socket");
  }
  return self;

fail:
  e = errno;
  close(fd);
  char msg[128];
  snprintf(msg, sizeof msg, "%s on %s", what, ifname);
  return throw_errno(env, msg, e);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "PacketSocket", NAPI_AUTO_LENGTH, js_construct, NULL, 3, methods, &cls) != napi_ok) return NULL;
  napi_set_named_property(env, exports, "PacketSocket", cls);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
