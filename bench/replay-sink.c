/*
 * The replay benchmark's receiver: an HTTP/1.1 server on 127.0.0.1 that reads every request
 * body to its last byte (Content-Length framing) before it answers `200` with an empty body,
 * and counts what it read, so the benchmark can prove that each timed replay delivered every
 * byte it claims to have sent.
 *
 * Why not nginx `return 200`: nginx answers that before reading the body (it discards the body
 * afterwards, lazily), so a sender could be acknowledged for bytes nobody read, and nginx's
 * `$request_length` does not count discarded bodies either.
 *
 *   replay-sink PORT_FILE STATS_FILE
 *
 * Binds an ephemeral port and writes its number to PORT_FILE. On SIGUSR1 it writes its
 * counters to STATS_FILE (`requests=N body_bytes=N bad=N connections=N`); on SIGTERM it writes
 * them and exits. One thread, epoll, non-blocking sockets; pipelined requests are answered in
 * order, as HTTP/1.1 requires.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define READ_CHUNK (1 << 20)

static const char ok_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
static const char bad_response[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

struct conn {
  int fd;
  char head[HEAD_MAX];
  size_t head_len;
  /* Body bytes still to read for the current request; -1 while reading its head. */
  long long body_left;
  long long body_len;
  char *out;
  size_t out_len, out_cap;
};

static unsigned long long requests, body_bytes, bad, connections;
static volatile sig_atomic_t want_dump, want_exit;
static const char *stats_path;

static void on_signal(int sig) {
  if (sig == SIGUSR1) want_dump = 1;
  else want_exit = 1;
}

static void dump_stats(void) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", stats_path);
  FILE *file = fopen(tmp, "w");
  if (!file) return;
  fprintf(file, "requests=%llu body_bytes=%llu bad=%llu connections=%llu\n", requests, body_bytes, bad, connections);
  fclose(file);
  rename(tmp, stats_path);
}

static void close_conn(int epoll, struct conn *c) {
  /* A connection that ends inside a body delivered a truncated request. */
  if (c->body_left > 0 || c->head_len > 0) bad++;
  epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->out);
  free(c);
}

/* Queues and sends as much of `data` as the socket takes; the rest waits for EPOLLOUT. */
static int queue_out(int epoll, struct conn *c, const char *data, size_t len) {
  if (c->out_len == 0) {
    ssize_t sent = send(c->fd, data, len, MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (sent > 0) {
      data += sent;
      len -= (size_t)sent;
    }
    if (len == 0) return 0;
  }
  if (c->out_len + len > c->out_cap) {
    size_t cap = (c->out_len + len) * 2;
    char *grown = realloc(c->out, cap);
    if (!grown) return -1;
    c->out = grown;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
  struct epoll_event event = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  return epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &event);
}

static int flush_out(int epoll, struct conn *c) {
  while (c->out_len > 0) {
    ssize_t sent = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
    if (sent < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    memmove(c->out, c->out + sent, c->out_len - (size_t)sent);
    c->out_len -= (size_t)sent;
  }
  struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
  return epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &event);
}

/* Parses a complete head in c->head[0..end); returns the Content-Length or -1 when refused. */
static long long parse_head(const char *head, size_t end) {
  long long length = -1;
  const char *line = memchr(head, '\n', end);
  if (!line || strncmp(head, "POST ", 5) != 0) return -1;
  while (line && (size_t)(line - head) < end) {
    line++;
    const char *next = memchr(line, '\n', end - (size_t)(line - head));
    if (!next) break;
    if (strncasecmp(line, "content-length:", 15) == 0) length = strtoll(line + 15, NULL, 10);
    if (strncasecmp(line, "transfer-encoding:", 18) == 0) return -1;
    line = next;
  }
  return length;
}

/* Consumes `len` bytes of the connection's stream. Returns -1 to close the connection. */
static int consume(int epoll, struct conn *c, const char *data, size_t len) {
  while (len > 0) {
    if (c->body_left >= 0) {
      size_t take = (size_t)c->body_left < len ? (size_t)c->body_left : len;
      c->body_left -= (long long)take;
      data += take;
      len -= take;
      if (c->body_left == 0) {
        requests++;
        body_bytes += (unsigned long long)c->body_len;
        c->body_left = -1;
        if (queue_out(epoll, c, ok_response, sizeof ok_response - 1) < 0) return -1;
      }
      continue;
    }
    /* Reading a head: append up to its end. */
    size_t room = HEAD_MAX - c->head_len;
    size_t take = len < room ? len : room;
    memcpy(c->head + c->head_len, data, take);
    size_t scan_from = c->head_len >= 3 ? c->head_len - 3 : 0;
    c->head_len += take;
    char *end = memmem(c->head + scan_from, c->head_len - scan_from, "\r\n\r\n", 4);
    if (!end) {
      if (c->head_len == HEAD_MAX) goto refuse;
      data += take;
      len -= take;
      continue;
    }
    size_t head_end = (size_t)(end - c->head) + 4;
    long long length = parse_head(c->head, head_end);
    if (length < 0) goto refuse;
    /* Bytes of this chunk past the head belong to the body (or the next request). */
    size_t used = head_end - (c->head_len - take);
    data += used;
    len -= used;
    c->head_len = 0;
    c->body_len = length;
    c->body_left = length;
    if (length == 0) {
      requests++;
      c->body_left = -1;
      if (queue_out(epoll, c, ok_response, sizeof ok_response - 1) < 0) return -1;
    }
  }
  return 0;
refuse:
  bad++;
  queue_out(epoll, c, bad_response, sizeof bad_response - 1);
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: replay-sink PORT_FILE STATS_FILE\n");
    return 2;
  }
  stats_path = argv[2];
  struct sigaction action = {.sa_handler = on_signal};
  sigaction(SIGUSR1, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t address_len = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 128) < 0 ||
      getsockname(listener, (struct sockaddr *)&address, &address_len) < 0) {
    perror("replay-sink: listen");
    return 1;
  }
  FILE *port_file = fopen(argv[1], "w");
  if (!port_file) {
    perror("replay-sink: port file");
    return 1;
  }
  fprintf(port_file, "%d\n", ntohs(address.sin_port));
  fclose(port_file);

  int epoll = epoll_create1(0);
  struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
  char *chunk = malloc(READ_CHUNK);
  struct epoll_event events[64];
  while (!want_exit) {
    if (want_dump) {
      want_dump = 0;
      dump_stats();
    }
    int ready = epoll_wait(epoll, events, 64, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      perror("replay-sink: epoll_wait");
      return 1;
    }
    for (int i = 0; i < ready; i++) {
      struct conn *c = events[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *fresh = calloc(1, sizeof *fresh);
          fresh->fd = fd;
          fresh->body_left = -1;
          struct epoll_event add = {.events = EPOLLIN, .data.ptr = fresh};
          epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &add);
          connections++;
        }
        continue;
      }
      if ((events[i].events & EPOLLOUT) && flush_out(epoll, c) < 0) {
        close_conn(epoll, c);
        continue;
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      int closed = 0;
      for (;;) {
        ssize_t got = recv(c->fd, chunk, READ_CHUNK, 0);
        if (got > 0) {
          if (consume(epoll, c, chunk, (size_t)got) < 0) {
            closed = 1;
            break;
          }
          if ((size_t)got < READ_CHUNK) break;
          continue;
        }
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (got < 0 && errno == EINTR) continue;
        closed = 1;
        break;
      }
      if (closed) close_conn(epoll, c);
    }
  }
  dump_stats();
  return 0;
}
