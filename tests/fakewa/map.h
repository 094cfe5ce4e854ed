/* A hash map from byte strings to pointers for the fake WhatsApp server's
 * indexes (devices by JID and by noise key, pairing refs, accounts by phone
 * number), so that its per-connection work stays constant with thousands
 * of linked devices. Keys are copied; values are borrowed. Chained buckets
 * that double when the map holds more entries than buckets. Single thread;
 * no global state. */
#ifndef WG_TESTS_FAKEWA_MAP_H
#define WG_TESTS_FAKEWA_MAP_H

#include <stddef.h>

typedef struct fakewa_map fakewa_map_t;

/* A new empty map, or NULL when out of memory. */
fakewa_map_t *fakewa_map_new(void);

/* Frees the map and its key copies (not the values). NULL is ignored. */
void fakewa_map_free(fakewa_map_t *m);

/* Maps key[0..klen) to `val` (non-NULL), replacing an earlier value.
 * Returns 0, or -1 when out of memory (the map is unchanged). */
int fakewa_map_put(fakewa_map_t *m, const void *key, size_t klen, void *val);

/* The value of the key, or NULL. */
void *fakewa_map_get(const fakewa_map_t *m, const void *key, size_t klen);

/* Removes the key; returns its value, or NULL when it was absent. */
void *fakewa_map_del(fakewa_map_t *m, const void *key, size_t klen);

/* Entries held. */
size_t fakewa_map_count(const fakewa_map_t *m);

#endif
