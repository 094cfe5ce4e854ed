/* The service's one wall clock and its one text form: milliseconds since
 * the epoch, and ISO 8601 UTC with milliseconds ("2026-12-03T09:00:00.123Z")
 * as the log, the JSON views, the event log and webhooks write it. */
#ifndef WG_COMMON_CLOCK_H
#define WG_COMMON_CLOCK_H

#include <stdint.h>

/* Room for clk_iso8601's text and its NUL (24 bytes for any year of four
 * digits; the rest is what the compiler can prove of an int year). */
#define CLK_ISO_LEN 64

/* The wall-clock time in milliseconds since the epoch. Any thread. */
int64_t clk_now_ms(void);

/* Writes `ms` (>= 0) as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out. */
void clk_iso8601(int64_t ms, char out[CLK_ISO_LEN]);

/* Parses exactly what clk_iso8601 writes (nothing before or after) into
 * *ms. Returns 0, or -1 for anything else. */
int clk_parse_iso8601(const char *s, int64_t *ms);

#endif
