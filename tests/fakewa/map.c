/* Chained hash map with FNV-1a; each entry holds its key inline. */
#include "tests/fakewa/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    void *val;
    uint64_t hash;
    size_t klen;
    unsigned char key[];
} entry_t;

struct fakewa_map {
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

static uint64_t hash_of(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

fakewa_map_t *fakewa_map_new(void)
{
    fakewa_map_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nbuckets = 64;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (!m->buckets) {
        free(m);
        return NULL;
    }
    return m;
}

void fakewa_map_free(fakewa_map_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry_t *e = m->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(m->buckets);
    free(m);
}

static entry_t **find(const fakewa_map_t *m, const void *key, size_t klen, uint64_t h)
{
    entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && !memcmp((*pp)->key, key, klen))
            return pp;
    return pp;
}

/* Doubles the bucket array; on failure the map stays as it is (longer
 * chains, still correct). */
static void grow(fakewa_map_t *m)
{
    size_t nb = m->nbuckets * 2;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry_t *e = m->buckets[i], *n; e; e = n) {
            n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

int fakewa_map_put(fakewa_map_t *m, const void *key, size_t klen, void *val)
{
    uint64_t h = hash_of(key, klen);
    entry_t **pp = find(m, key, klen, h);
    if (*pp) {
        (*pp)->val = val;
        return 0;
    }
    entry_t *e = malloc(sizeof(*e) + klen);
    if (!e)
        return -1;
    e->next = NULL;
    e->val = val;
    e->hash = h;
    e->klen = klen;
    memcpy(e->key, key, klen);
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return 0;
}

void *fakewa_map_get(const fakewa_map_t *m, const void *key, size_t klen)
{
    entry_t **pp = find(m, key, klen, hash_of(key, klen));
    return *pp ? (*pp)->val : NULL;
}

void *fakewa_map_del(fakewa_map_t *m, const void *key, size_t klen)
{
    entry_t **pp = find(m, key, klen, hash_of(key, klen));
    entry_t *e = *pp;
    if (!e)
        return NULL;
    void *v = e->val;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

size_t fakewa_map_count(const fakewa_map_t *m)
{
    return m->count;
}
