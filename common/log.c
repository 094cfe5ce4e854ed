/* Leveled logging to stderr: formats one line with an UTC timestamp, the
 * level and the module name, and writes it with a single write(2). */
#include "common/log.h"

#include "common/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

/* The one process-wide logging setting; written once by main at start-up. */
static atomic_int log_min_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const level_tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

void log_set_level(log_level_t level)
{
    atomic_store(&log_min_level, (int)level);
}

log_level_t log_get_level(void)
{
    return (log_level_t)atomic_load(&log_min_level);
}

int log_level_parse(const char *name, log_level_t *out)
{
    for (int i = 0; i <= LOG_LEVEL_OFF; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

const char *log_level_name(log_level_t level)
{
    if ((int)level < 0 || level > LOG_LEVEL_OFF)
        return "unknown";
    return level_names[level];
}

void log_vmsg(log_level_t level, const char *module, const char *fmt, va_list ap)
{
    if ((int)level < atomic_load(&log_min_level) || level >= LOG_LEVEL_OFF)
        return;
    char line[2048], now[CLK_ISO_LEN];
    clk_iso8601(clk_now_ms(), now);
    int n = snprintf(line, sizeof(line), "%s %s %s: ", now, level_tags[level], module);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(line)) {
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, (size_t)(n - off));
        if (w <= 0)
            break;
        off += w;
    }
}

void log_msg(log_level_t level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, module, fmt, ap);
    va_end(ap);
}
