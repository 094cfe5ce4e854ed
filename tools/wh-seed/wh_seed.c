/* wh-seed: fills a wa-gateway store with a webhook backlog for the webhook
 * benchmark (tests/bench/webhooks_bench.sh): a webhook target (id "bench",
 * every session, every type) and N session events of "default" queued to it
 * as pending deliveries, appended through store_events_append in groups of
 * 10,000 (one transaction each), as the journal would have. With N = 0 only
 * the target is made (the baseline).
 *
 *   wh-seed DATA_DIR URL N
 *
 * Exits 0, or 1 with a message on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session/store/store.h"

#define GROUP 10000

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: wh-seed DATA_DIR URL N\n");
        return 1;
    }
    char *end = NULL;
    unsigned long long n = strtoull(argv[3], &end, 10);
    if (!end || *end || n > 100000000ULL) {
        fprintf(stderr, "wh-seed: N must be a count\n");
        return 1;
    }
    store_t *st = NULL;
    char err[256];
    if (store_open(argv[1], &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "wh-seed: %s\n", err);
        return 1;
    }
    uint8_t key[24];
    memset(key, 0x42, sizeof(key));
    store_webhook_t t = {.url = argv[2], .secret = key, .secret_len = sizeof(key), .events = ""};
    snprintf(t.id, sizeof(t.id), "wh_%024d", 0);
    int rc = store_webhook_put(st, &t);
    uint64_t seq = 0;
    if (!rc)
        rc = store_events_last_seq(st, "default", &seq);
    store_event_t *ev = calloc(GROUP, sizeof(*ev));
    char(*bodies)[256] = calloc(GROUP, 256);
    if (!ev || !bodies)
        rc = STORE_ENOMEM;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (unsigned long long done = 0; !rc && done < n;) {
        size_t k = n - done < GROUP ? (size_t)(n - done) : GROUP;
        for (size_t i = 0; i < k; i++) {
            seq++;
            int len = snprintf(bodies[i], 256,
                               "{\"type\":\"session.status\",\"session\":\"default\",\"seq\":%llu,"
                               "\"timestamp\":\"2026-12-03T09:00:00.000Z\",\"data\":{\"state\":"
                               "\"DISCONNECTED\",\"detail\":\"backlog\",\"connected\":false,"
                               "\"linked\":false}}",
                               (unsigned long long)seq);
            ev[i] = (store_event_t){.session = "default",
                                    .seq = seq,
                                    .ts_ms = ms,
                                    .type = "session.status",
                                    .body = bodies[i],
                                    .body_len = (size_t)len};
        }
        rc = store_events_append(st, ev, k);
        done += k;
    }
    free(ev);
    free(bodies);
    store_close(st);
    if (rc) {
        fprintf(stderr, "wh-seed: %s\n", store_strerror(rc));
        return 1;
    }
    return 0;
}
