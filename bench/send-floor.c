/*
 * The replay benchmark's floor for sending: REQUESTS requests of SIZE body bytes to the sink on
 * CONNECTIONS connections at once, WINDOW requests in flight on each, from one buffer (no
 * copying, no verification, no framing work). It prints the wall time; replay's sending cannot
 * beat it with the same number of connections and one request in flight per stream.
 *
 *   send-floor PORT REQUESTS SIZE CONNECTIONS WINDOW
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int port, size, window;
static char *body;

static void fail(const char *what) {
  perror(what);
  exit(1);
}

/* Sends `count` requests on one connection, keeping `window` unanswered. */
static void *send_all(void *arg) {
  long count = (long)arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("connect");
  char head[256];
  int head_length = snprintf(head, sizeof head,
                             "POST /v1/traces HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-protobuf\r\n"
                             "Content-Length: %d\r\n\r\n",
                             size);
  char answers[65536];
  size_t buffered = 0;
  long sent = 0, answered = 0;
  while (answered < count) {
    while (sent < count && sent - answered < window) {
      struct iovec parts[2] = {{head, (size_t)head_length}, {body, (size_t)size}};
      size_t left = (size_t)head_length + (size_t)size;
      while (left > 0) {
        ssize_t written = writev(fd, parts, 2);
        if (written <= 0) fail("writev");
        left -= (size_t)written;
        for (int i = 0; i < 2; i++) {
          size_t step = (size_t)written < parts[i].iov_len ? (size_t)written : parts[i].iov_len;
          parts[i].iov_base = (char *)parts[i].iov_base + step;
          parts[i].iov_len -= step;
          written -= (ssize_t)step;
        }
      }
      sent++;
    }
    ssize_t got = read(fd, answers + buffered, sizeof answers - buffered);
    if (got <= 0) fail("read");
    buffered += (size_t)got;
    /* The sink's answers have no body: each ends at its blank line. */
    char *end;
    while ((end = memmem(answers, buffered, "\r\n\r\n", 4)) != NULL) {
      size_t used = (size_t)(end + 4 - answers);
      memmove(answers, end + 4, buffered - used);
      buffered -= used;
      answered++;
    }
  }
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: send-floor PORT REQUESTS SIZE CONNECTIONS WINDOW\n");
    return 2;
  }
  port = atoi(argv[1]);
  long requests = atol(argv[2]);
  size = atoi(argv[3]);
  int connections = atoi(argv[4]);
  window = atoi(argv[5]);
  if (connections < 1 || connections > 64 || window < 1 || size < 0) return 2;
  body = malloc((size_t)size + 1);
  memset(body, 7, (size_t)size);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pthread_t threads[64];
  for (int i = 0; i < connections; i++) {
    long share = requests / connections + (i < requests % connections ? 1 : 0);
    pthread_create(&threads[i], NULL, send_all, (void *)share);
  }
  for (int i = 0; i < connections; i++) pthread_join(threads[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &end);
  printf("%.4f\n", (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9);
  return 0;
}
