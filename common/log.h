/* Leveled, timestamped logging to stderr for every module of wa-gateway.
 *
 * Each line reads: `2026-11-25T03:21:36.123Z INFO  http: message`.
 * One write(2) per line, so lines from several threads never interleave.
 * Secrets (keys, API keys, QR strings) must never be passed to these
 * functions; callers log lengths or fingerprints instead. */
#ifndef WG_COMMON_LOG_H
#define WG_COMMON_LOG_H

#include <stdarg.h>

typedef enum {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO = 1,
    LOG_LEVEL_WARN = 2,
    LOG_LEVEL_ERROR = 3,
    LOG_LEVEL_OFF = 4,
} log_level_t;

/* Sets the minimum level printed. Called once by main before any thread
 * starts; the default is LOG_LEVEL_INFO. */
void log_set_level(log_level_t level);

/* Returns the minimum level printed. */
log_level_t log_get_level(void);

/* Parses "debug", "info", "warn", "error" or "off" (case-insensitive).
 * Returns 0 and stores the level, or -1 for an unknown name. */
int log_level_parse(const char *name, log_level_t *out);

/* Returns the lower-case name of a level ("info"); never NULL. */
const char *log_level_name(log_level_t level);

/* Prints one line at `level` for `module` (a short name such as "http").
 * Lines longer than 2 KiB are truncated. */
void log_msg(log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* va_list variant of log_msg. */
void log_vmsg(log_level_t level, const char *module, const char *fmt, va_list ap);

#define LOG_DEBUG(mod, ...) log_msg(LOG_LEVEL_DEBUG, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...) log_msg(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...) log_msg(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) log_msg(LOG_LEVEL_ERROR, mod, __VA_ARGS__)

#endif
