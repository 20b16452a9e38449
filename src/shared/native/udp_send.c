/*
 * sendTo(fd, bytes, ip, port): one sendto(2) on a UDP socket the master
 * owns, from any thread. File descriptors are process-wide, so a SIP worker
 * sends its datagrams itself, from the listening socket (the source address
 * peers and NATs expect), without a hop through the master.
 * Returns the bytes sent, or -errno (EAGAIN when the socket buffer is full:
 * the caller then falls back to the master's queue).
 *
 * sendMany(fds, bufs, ips, ports, n, results): datagrams i < n, bufs[i]
 * (Uint8Array) from socket fds[i] to ips[i]:ports[i], with one sendmmsg(2)
 * for each run of the same socket (up to SEND_BATCH at a time) rather than
 * a sendto(2) each. results[i] gets the bytes sent, or -errno (EAGAIN: the
 * socket buffer was full; the caller falls back to the master's queue).
 * Returns n, or -EINVAL when the arguments are not that.
 *
 * unixSend(path, bytes): one datagram on an AF_UNIX socket (syslog's
 * /dev/log), which Node's dgram cannot open. One socket per thread, opened
 * on first use. Returns the bytes sent, or -errno.
 *
 * udpOpen(ip, port, bufBytes, first): a bound, non-blocking UDP socket with
 * SO_REUSEPORT (Node 20's dgram cannot set it): the sockets on one address
 * form a group, and the kernel hands each datagram to one of them, chosen by
 * a hash of its source address and port. Returns the fd, or -errno.
 * The first socket of a group (first != 0) binds before it sets
 * SO_REUSEPORT: its bind fails with EADDRINUSE when any socket holds the
 * port, and port 0 gets a port no socket holds. Set before bind, the kernel
 * lets a socket of the same user join another process's group there, and
 * with port 0 may pick a port such a group holds (it skips only ports it
 * could not share); two servers would then split each other's datagrams.
 * dupFd(fd): another descriptor of the same socket, for a thread's dgram
 * socket to close when the thread ends. fd or -errno.
 * localPort(fd): the bound port (port 0 asked the kernel for one), or -errno.
 * closeFd(fd): 0 or -errno.
 *
 * rcvQueued(fd): bytes waiting in the socket's receive queue, as the kernel
 * counts them against SO_RCVBUF (each datagram with its buffer overhead),
 * from SO_MEMINFO; or -errno. FIONREAD on a UDP socket gives only the first
 * datagram's length, not the backlog.
 *
 * threadCpuNs(): CPU time the calling thread has used, in nanoseconds
 * (clock_gettime(CLOCK_THREAD_CPUTIME_ID)), or -errno. Node 20 has no
 * per-thread CPU clock (process.threadCpuUsage is Node 23.9+).
 *
 * rcvDrops(fd): datagrams the kernel has dropped at this socket since it
 * was opened (its receive buffer full), from SO_MEMINFO; or -errno.
 *
 * rcvBuf(fd): the socket's receive buffer size (SO_RCVBUF), or -errno.
 *
 * recvStart(fd, scratch, meta, onBatch): read the UDP socket fd on the
 * calling thread's event loop. When it is readable, up to RECV_BATCH
 * datagrams at a time are read with recvmmsg(2) into scratch (RECV_SLOT
 * bytes each) and described in meta (RECV_META int32 each: length, address
 * family 4 or 6, source port, IPv4 address in host order or the length of
 * the IPv6 address text written at RECV_TEXT_AT + i * RECV_TEXT in
 * scratch), and onBatch(n) is called once per batch; it must copy what it
 * keeps before it returns. Against Node's dgram this saves per datagram a
 * malloc'd buffer, a Buffer object, an rinfo object with a formatted
 * address and a callback into JavaScript. Returns a handle for recvStop, or
 * -errno. recvStop(handle): stop reading and close (the fd stays open).
 * A thread that ends without recvStop closes its readers on the way out.
 *
 * reuseportSteer(fd, program): attach a classic BPF program (struct
 * sock_filter[] as bytes, built by callid-steer.ts) to the SO_REUSEPORT
 * group fd belongs to (SO_ATTACH_REUSEPORT_CBPF): it returns the index of
 * the socket that gets each datagram, in the order the group's sockets were
 * bound. 0 or -errno.
 */
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <uv.h>

static napi_value result(napi_env env, int64_t v) {
  napi_value out;
  /* a small integer (a byte count, an errno) needs no heap number */
  if (v >= INT32_MIN && v <= INT32_MAX)
    napi_create_int32(env, (int32_t)v, &out);
  else
    napi_create_int64(env, v, &out);
  return out;
}

/* ip (latin1 string) and port into a sockaddr; 0 or -EINVAL */
static int to_sockaddr(napi_env env, napi_value vip, int32_t port, struct sockaddr_storage *ss, socklen_t *sl) {
  char ip[INET6_ADDRSTRLEN + 1];
  size_t iplen = 0;
  if (napi_get_value_string_latin1(env, vip, ip, sizeof ip, &iplen) != napi_ok) return -EINVAL;
  memset(ss, 0, sizeof *ss);
  if (memchr(ip, ':', iplen) != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return -EINVAL;
    *sl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return -EINVAL;
    *sl = sizeof *a;
  }
  return 0;
}

/* a typed array argument of type `want`: its data and element count; 0, or -EINVAL for anything else */
static int typed_array(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  napi_typedarray_type type;
  size_t offset = 0;
  napi_value arraybuffer;
  if (napi_get_typedarray_info(env, v, &type, length, data, &arraybuffer, &offset) != napi_ok || type != want)
    return -EINVAL;
  return 0;
}

/* the bytes of a Uint8Array argument; 0, or -EINVAL for anything else */
static int uint8_bytes(napi_env env, napi_value v, void **data, size_t *length) {
  return typed_array(env, v, napi_uint8_array, data, length);
}

static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return result(env, -EINVAL);
  int32_t fd = -1, port = 0;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_int32(env, argv[3], &port);

  size_t length = 0;
  void *data = NULL;
  if (uint8_bytes(env, argv[1], &data, &length) != 0) return result(env, -EINVAL);

  struct sockaddr_storage ss;
  socklen_t sl = 0;
  int err = to_sockaddr(env, argv[2], port, &ss, &sl);
  if (err != 0) return result(env, err);
  ssize_t n;
  do {
    n = sendto(fd, data, length, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
  } while (n < 0 && errno == EINTR);
  return result(env, n < 0 ? -errno : n);
}

#define SEND_BATCH 16

/* an Int32Array argument of at least `need` elements; 0 or -EINVAL */
static int int32_array(napi_env env, napi_value v, size_t need, int32_t **data) {
  size_t length = 0;
  if (typed_array(env, v, napi_int32_array, (void **)data, &length) != 0 || length < need) return -EINVAL;
  return 0;
}

static napi_value send_many(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) return result(env, -EINVAL);
  uint32_t n = 0;
  if (napi_get_value_uint32(env, argv[4], &n) != napi_ok) return result(env, -EINVAL);
  int32_t *fds = NULL, *ports = NULL, *res = NULL;
  if (int32_array(env, argv[0], n, &fds) != 0 || int32_array(env, argv[3], n, &ports) != 0 ||
      int32_array(env, argv[5], n, &res) != 0)
    return result(env, -EINVAL);
  struct mmsghdr msgs[SEND_BATCH];
  struct iovec iov[SEND_BATCH];
  struct sockaddr_storage to[SEND_BATCH];
  uint32_t which[SEND_BATCH];
  uint32_t i = 0;
  while (i < n) {
    /* a run of datagrams from one socket; one that cannot be described gets its error at once */
    int fd = fds[i];
    int k = 0;
    memset(msgs, 0, sizeof msgs);
    while (i < n && k < SEND_BATCH && fds[i] == fd) {
      napi_value buf, ip;
      void *data = NULL;
      size_t length = 0;
      socklen_t sl = 0;
      int err = -EINVAL;
      if (napi_get_element(env, argv[1], i, &buf) == napi_ok && napi_get_element(env, argv[2], i, &ip) == napi_ok) {
        err = uint8_bytes(env, buf, &data, &length);
        if (err == 0) err = to_sockaddr(env, ip, ports[i], &to[k], &sl);
      }
      if (err != 0) {
        res[i++] = err;
        continue;
      }
      iov[k].iov_base = data;
      iov[k].iov_len = length;
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_name = &to[k];
      msgs[k].msg_hdr.msg_namelen = sl;
      which[k++] = i++;
    }
    /* sendmmsg stops at the first datagram that fails: that one gets its errno, the rest go on */
    int done = 0;
    while (done < k) {
      int m = sendmmsg(fd, msgs + done, (unsigned int)(k - done), MSG_DONTWAIT);
      if (m < 0) {
        if (errno == EINTR) continue;
        res[which[done++]] = -errno;
        continue;
      }
      for (int j = 0; j < m; j++) res[which[done + j]] = (int32_t)msgs[done + j].msg_len;
      done += m;
    }
  }
  return result(env, n);
}

static _Thread_local int unix_fd = -1;

static napi_value unix_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return result(env, -EINVAL);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t plen = 0;
  if (napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &plen) != napi_ok || plen == 0 || plen >= sizeof sa.sun_path - 1)
    return result(env, -EINVAL);
  size_t length = 0;
  void *data = NULL;
  if (uint8_bytes(env, argv[1], &data, &length) != 0) return result(env, -EINVAL);
  if (unix_fd < 0) {
    unix_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (unix_fd < 0) return result(env, -errno);
  }
  ssize_t n;
  do {
    n = sendto(unix_fd, data, length, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa);
  } while (n < 0 && errno == EINTR);
  return result(env, n < 0 ? -errno : n);
}

static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return result(env, -EINVAL);
  int32_t port = 0, buf = 0, first = 0;
  napi_get_value_int32(env, argv[1], &port);
  napi_get_value_int32(env, argv[2], &buf);
  napi_get_value_int32(env, argv[3], &first);
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  int err = to_sockaddr(env, argv[0], port, &ss, &sl);
  if (err != 0) return result(env, err);
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return result(env, -errno);
  if (ss.ss_family == AF_INET6) {
    /* dual stack on [::], as Node's dgram binds it */
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (buf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  }
  int on = 1;
  if ((!first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) ||
      bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
      (first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)) {
    err = -errno;
    close(fd);
    return result(env, err);
  }
  return result(env, fd);
}

static napi_value dup_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return result(env, d < 0 ? -errno : d);
}

static napi_value local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return result(env, -errno);
  if (ss.ss_family == AF_INET6) return result(env, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  return result(env, ntohs(((struct sockaddr_in *)&ss)->sin_port));
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  return result(env, close(fd) != 0 ? -errno : 0);
}

/* one field of the socket's SO_MEMINFO, or -errno */
static napi_value meminfo_field(napi_env env, napi_callback_info info, int field) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof mem;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0) return result(env, -errno);
  return result(env, mem[field]);
}

static napi_value rcv_queued(napi_env env, napi_callback_info info) {
  return meminfo_field(env, info, SK_MEMINFO_RMEM_ALLOC);
}

static napi_value rcv_drops(napi_env env, napi_callback_info info) {
  return meminfo_field(env, info, SK_MEMINFO_DROPS);
}

static napi_value thread_cpu_ns(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return result(env, -errno);
  return result(env, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static napi_value rcv_buf(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len) != 0) return result(env, -errno);
  return result(env, v);
}

#define RECV_BATCH 8
#define RECV_SLOT 65536
#define RECV_META 8
#define RECV_TEXT 64
#define RECV_TEXT_AT (RECV_BATCH * RECV_SLOT)
/* batches read per wake-up at most, so that one busy socket does not hold the loop from the others */
#define RECV_ROUNDS 4

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_batch;
  napi_ref scratch_ref;
  napi_ref meta_ref;
  napi_async_context actx;
  napi_async_cleanup_hook_handle hook;
  uint8_t *scratch;
  int32_t *meta;
  int fd;
  /* stopped by recvStop (its references released) rather than by the thread's end */
  int stopped;
} udp_reader;

static void reader_closed(uv_handle_t *h) {
  udp_reader *r = (udp_reader *)h->data;
  napi_remove_async_cleanup_hook(r->hook);
  free(r);
}

/* the thread ends: close the poll handle before its loop closes */
static void reader_cleanup(napi_async_cleanup_hook_handle hook, void *arg) {
  (void)hook;
  udp_reader *r = (udp_reader *)arg;
  if (!uv_is_closing((uv_handle_t *)&r->poll)) uv_close((uv_handle_t *)&r->poll, reader_closed);
}

static void reader_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  udp_reader *r = (udp_reader *)h->data;
  if (status < 0 || r->stopped) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv;
  napi_get_reference_value(env, r->on_batch, &cb);
  /* napi_make_callback wants an object as `this` */
  napi_get_global(env, &recv);
  for (int round = 0; round < RECV_ROUNDS && !r->stopped; round++) {
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_storage from[RECV_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < RECV_BATCH; i++) {
      iov[i].iov_base = r->scratch + (size_t)i * RECV_SLOT;
      iov[i].iov_len = RECV_SLOT;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    int n = recvmmsg(r->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      /* an ICMP error from an earlier send (ECONNREFUSED …) is reported once: read on */
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EBADF || errno == ENOTSOCK) break;
      continue;
    }
    if (n == 0) break;
    for (int i = 0; i < n; i++) {
      int32_t *m = r->meta + i * RECV_META;
      m[0] = (int32_t)msgs[i].msg_len;
      if (from[i].ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&from[i];
        char *text = (char *)r->scratch + RECV_TEXT_AT + (size_t)i * RECV_TEXT;
        m[1] = 6;
        m[2] = ntohs(a->sin6_port);
        m[3] = inet_ntop(AF_INET6, &a->sin6_addr, text, RECV_TEXT) ? (int32_t)strlen(text) : 0;
      } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&from[i];
        m[1] = 4;
        m[2] = ntohs(a->sin_port);
        m[3] = (int32_t)ntohl(a->sin_addr.s_addr);
      }
    }
    napi_create_int32(env, n, &argv);
    if (napi_make_callback(env, r->actx, recv, cb, 1, &argv, NULL) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
      break;
    }
    if (n < RECV_BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

/* stop reading, release what it holds, close its handle (freed once closed) */
static void release_reader(napi_env env, udp_reader *r) {
  r->stopped = 1;
  uv_poll_stop(&r->poll);
  napi_delete_reference(env, r->on_batch);
  napi_delete_reference(env, r->scratch_ref);
  napi_delete_reference(env, r->meta_ref);
  napi_async_destroy(env, r->actx);
  if (!uv_is_closing((uv_handle_t *)&r->poll)) uv_close((uv_handle_t *)&r->poll, reader_closed);
}

static napi_value recv_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return result(env, -EINVAL);
  int32_t fd = -1;
  napi_get_value_int32(env, argv[0], &fd);
  size_t slen = 0;
  void *sdata = NULL;
  int32_t *mdata = NULL;
  if (uint8_bytes(env, argv[1], &sdata, &slen) != 0 || slen < (size_t)RECV_TEXT_AT + RECV_BATCH * RECV_TEXT)
    return result(env, -EINVAL);
  if (int32_array(env, argv[2], RECV_BATCH * RECV_META, &mdata) != 0) return result(env, -EINVAL);
  napi_valuetype vt;
  if (napi_typeof(env, argv[3], &vt) != napi_ok || vt != napi_function) return result(env, -EINVAL);
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) return result(env, -EINVAL);
  udp_reader *r = calloc(1, sizeof *r);
  if (r == NULL) return result(env, -ENOMEM);
  r->env = env;
  r->fd = fd;
  r->scratch = sdata;
  r->meta = mdata;
  int err = uv_poll_init_socket(loop, &r->poll, fd);
  if (err != 0) {
    free(r);
    return result(env, err);
  }
  r->poll.data = r;
  napi_create_reference(env, argv[3], 1, &r->on_batch);
  napi_create_reference(env, argv[1], 1, &r->scratch_ref);
  napi_create_reference(env, argv[2], 1, &r->meta_ref);
  napi_value name, resource;
  napi_create_string_utf8(env, "UDPRECV", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &r->actx);
  napi_add_async_cleanup_hook(env, reader_cleanup, r, &r->hook);
  napi_value handle;
  napi_create_external(env, r, NULL, NULL, &handle);
  err = uv_poll_start(&r->poll, UV_READABLE, reader_readable);
  if (err != 0) {
    release_reader(env, r);
    return result(env, err);
  }
  return handle;
}

static napi_value recv_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  udp_reader *r = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || r == NULL || r->stopped) return result(env, -EINVAL);
  release_reader(env, r);
  return result(env, 0);
}

static napi_value reuseport_steer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  size_t length = 0;
  void *data = NULL;
  if (uint8_bytes(env, argv[1], &data, &length) != 0 || length == 0 || length % sizeof(struct sock_filter) != 0 ||
      length / sizeof(struct sock_filter) > BPF_MAXINSNS)
    return result(env, -EINVAL);
  struct sock_fprog prog = {
      .len = (unsigned short)(length / sizeof(struct sock_filter)),
      .filter = (struct sock_filter *)data,
  };
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0) return result(env, -errno);
  return result(env, 0);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendTo", NAPI_AUTO_LENGTH, send_to, NULL, &fn);
  napi_set_named_property(env, exports, "sendTo", fn);
  napi_create_function(env, "sendMany", NAPI_AUTO_LENGTH, send_many, NULL, &fn);
  napi_set_named_property(env, exports, "sendMany", fn);
  napi_create_function(env, "unixSend", NAPI_AUTO_LENGTH, unix_send, NULL, &fn);
  napi_set_named_property(env, exports, "unixSend", fn);
  napi_create_function(env, "udpOpen", NAPI_AUTO_LENGTH, udp_open, NULL, &fn);
  napi_set_named_property(env, exports, "udpOpen", fn);
  napi_create_function(env, "dupFd", NAPI_AUTO_LENGTH, dup_fd, NULL, &fn);
  napi_set_named_property(env, exports, "dupFd", fn);
  napi_create_function(env, "localPort", NAPI_AUTO_LENGTH, local_port, NULL, &fn);
  napi_set_named_property(env, exports, "localPort", fn);
  napi_create_function(env, "closeFd", NAPI_AUTO_LENGTH, close_fd, NULL, &fn);
  napi_set_named_property(env, exports, "closeFd", fn);
  napi_create_function(env, "rcvQueued", NAPI_AUTO_LENGTH, rcv_queued, NULL, &fn);
  napi_set_named_property(env, exports, "rcvQueued", fn);
  napi_create_function(env, "rcvDrops", NAPI_AUTO_LENGTH, rcv_drops, NULL, &fn);
  napi_set_named_property(env, exports, "rcvDrops", fn);
  napi_create_function(env, "threadCpuNs", NAPI_AUTO_LENGTH, thread_cpu_ns, NULL, &fn);
  napi_set_named_property(env, exports, "threadCpuNs", fn);
  napi_create_function(env, "rcvBuf", NAPI_AUTO_LENGTH, rcv_buf, NULL, &fn);
  napi_set_named_property(env, exports, "rcvBuf", fn);
  napi_create_function(env, "recvStart", NAPI_AUTO_LENGTH, recv_start, NULL, &fn);
  napi_set_named_property(env, exports, "recvStart", fn);
  napi_create_function(env, "recvStop", NAPI_AUTO_LENGTH, recv_stop, NULL, &fn);
  napi_set_named_property(env, exports, "recvStop", fn);
  napi_create_function(env, "reuseportSteer", NAPI_AUTO_LENGTH, reuseport_steer, NULL, &fn);
  napi_set_named_property(env, exports, "reuseportSteer", fn);
  return exports;
}
