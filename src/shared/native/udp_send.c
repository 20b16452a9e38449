/*
 * sendTo(fd, bytes, ip, port): one sendto(2) on a UDP socket the master
 * owns, from any thread. File descriptors are process-wide, so a SIP worker
 * sends its datagrams itself, from the listening socket (the source address
 * peers and NATs expect), without a hop through the master.
 * Returns the bytes sent, or -errno (EAGAIN when the socket buffer is full:
 * the caller then falls back to the master's queue).
 *
 * unixSend(path, bytes): one datagram on an AF_UNIX socket (syslog's
 * /dev/log), which Node's dgram cannot open. One socket per thread, opened
 * on first use. Returns the bytes sent, or -errno.
 *
 * udpOpen(ip, port, bufBytes): a bound, non-blocking UDP socket with
 * SO_REUSEPORT (Node 20's dgram cannot set it): the sockets on one address
 * form a group, and the kernel hands each datagram to one of them, chosen by
 * a hash of its source address and port. Returns the fd, or -errno.
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
 */
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static napi_value result(napi_env env, int64_t v) {
  napi_value out;
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

static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return result(env, -EINVAL);
  int32_t fd = -1, port = 0;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_int32(env, argv[3], &port);

  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = NULL;
  napi_value arraybuffer;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array)
    return result(env, -EINVAL);

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
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *data = NULL;
  napi_value arraybuffer;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array)
    return result(env, -EINVAL);
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
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return result(env, -EINVAL);
  int32_t port = 0, buf = 0;
  napi_get_value_int32(env, argv[1], &port);
  napi_get_value_int32(env, argv[2], &buf);
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
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    err = -errno;
    close(fd);
    return result(env, err);
  }
  if (buf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
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

static napi_value rcv_queued(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return result(env, -EINVAL);
  napi_get_value_int32(env, argv[0], &fd);
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof mem;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0) return result(env, -errno);
  return result(env, mem[SK_MEMINFO_RMEM_ALLOC]);
}

static napi_value thread_cpu_ns(napi_env env, napi_callback_info info) {
  (void)info;
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return result(env, -errno);
  return result(env, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendTo", NAPI_AUTO_LENGTH, send_to, NULL, &fn);
  napi_set_named_property(env, exports, "sendTo", fn);
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
  napi_create_function(env, "threadCpuNs", NAPI_AUTO_LENGTH, thread_cpu_ns, NULL, &fn);
  napi_set_named_property(env, exports, "threadCpuNs", fn);
  return exports;
}
