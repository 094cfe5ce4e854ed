/* Binary search over the generated, sorted token index (tokens.c). */
#include <string.h>

#include "session/wa/tokens.h"

const wa_tokens_entry_t *wa_tokens_find(const char *s, size_t len)
{
    size_t lo = 0, hi = WA_TOKENS_SORTED_COUNT;
    if (len == 0)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *t = wa_tokens_sorted[mid].token;
        size_t tl = strlen(t);
        int c = memcmp(s, t, len < tl ? len : tl);
        if (c == 0)
            c = len < tl ? -1 : (len > tl ? 1 : 0);
        if (c == 0)
            return &wa_tokens_sorted[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}
