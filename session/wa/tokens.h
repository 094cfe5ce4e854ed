/* The WhatsApp binary-node token tables (dictionary version 3, protocol doc
 * 4.7): 236 single-byte tokens and 4 x 256 double-byte tokens, plus a sorted
 * reverse index for the encoder. The tables are generated (tokens.c). */
#ifndef WG_SESSION_WA_TOKENS_H
#define WG_SESSION_WA_TOKENS_H

#include <stddef.h>

#define WA_TOKENS_SINGLE_COUNT 236
#define WA_TOKENS_DICT_COUNT 4
#define WA_TOKENS_DICT_SIZE 256
#define WA_TOKENS_SORTED_COUNT                                                                     \
    (WA_TOKENS_SINGLE_COUNT - 1 + WA_TOKENS_DICT_COUNT * WA_TOKENS_DICT_SIZE)

/* The binary-dictionary version these tables belong to (intro header byte 3). */
#define WA_TOKENS_DICT_VERSION 3

typedef struct {
    const char *token;
    int dict;  /* -1: single-byte table; 0..3: double-byte dictionary */
    int index; /* index in that table */
} wa_tokens_entry_t;

extern const char *const wa_tokens_single[WA_TOKENS_SINGLE_COUNT];
extern const char *const wa_tokens_double[WA_TOKENS_DICT_COUNT][WA_TOKENS_DICT_SIZE];
extern const wa_tokens_entry_t wa_tokens_sorted[WA_TOKENS_SORTED_COUNT];

/* Looks up the string s[0..len) (not NUL-terminated necessarily). Returns the
 * table entry (static storage) or NULL when it is not a token. The empty
 * string is never a token for encoding. */
const wa_tokens_entry_t *wa_tokens_find(const char *s, size_t len);

#endif
