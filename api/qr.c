/* QR rendering: libqrencode for the symbol, libpng for a 1-bit PNG written
 * to memory, base64 for the data URL, half-blocks for terminals. */
#include "api/qr.h"

#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include "common/base64.h"
#include <qrencode.h>

static int encode(const char *text, QRcode **out)
{
    if (!text || !*text)
        return API_QR_EINVAL;
    errno = 0;
    QRcode *qr = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
    if (!qr)
        return errno == ENOMEM ? API_QR_ENOMEM : API_QR_ETOOLONG;
    *out = qr;
    return 0;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int oom;
} membuf_t;

static void png_write_mem(png_structp p, png_bytep data, png_size_t n)
{
    membuf_t *m = png_get_io_ptr(p);
    if (m->oom)
        return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        while (cap < m->len + n)
            cap *= 2;
        uint8_t *b = realloc(m->buf, cap);
        if (!b) {
            m->oom = 1;
            return;
        }
        m->buf = b;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void png_flush_mem(png_structp p)
{
    (void)p;
}

/* Writes the PNG; isolated so that setjmp/longjmp touch no caller locals. */
static int write_png(const QRcode *qr, int scale, membuf_t *m, uint8_t *row)
{
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!p)
        return API_QR_ENOMEM;
    png_infop info = png_create_info_struct(p);
    if (!info) {
        png_destroy_write_struct(&p, NULL);
        return API_QR_ENOMEM;
    }
    if (setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        return API_QR_EPNG;
    }
    int q = API_QR_QUIET_ZONE;
    png_uint_32 side = (png_uint_32)((qr->width + 2 * q) * scale);
    png_set_write_fn(p, m, png_write_mem, png_flush_mem);
    png_set_IHDR(p, info, side, side, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(p, info);
    size_t rowbytes = (side + 7) / 8;
    for (png_uint_32 y = 0; y < side; y++) {
        int my = (int)(y / (png_uint_32)scale) - q;
        memset(row, 0xff, rowbytes); /* 1 = white */
        if (my >= 0 && my < qr->width) {
            for (int mx = 0; mx < qr->width; mx++) {
                if (!(qr->data[my * qr->width + mx] & 1))
                    continue;
                for (int s = 0; s < scale; s++) {
                    size_t x = (size_t)((mx + q) * scale + s);
                    row[x / 8] &= (uint8_t) ~(0x80 >> (x % 8));
                }
            }
        }
        png_write_row(p, row);
    }
    png_write_end(p, info);
    png_destroy_write_struct(&p, &info);
    return m->oom ? API_QR_ENOMEM : 0;
}

int api_qr_png(const char *text, int scale, uint8_t **png, size_t *len, int *modules)
{
    *png = NULL;
    *len = 0;
    if (scale == 0)
        scale = 6;
    if (scale < 1 || scale > 32)
        return API_QR_EINVAL;
    QRcode *qr;
    int rc = encode(text, &qr);
    if (rc)
        return rc;
    size_t side = (size_t)(qr->width + 2 * API_QR_QUIET_ZONE) * (size_t)scale;
    uint8_t *row = malloc((side + 7) / 8);
    membuf_t m = {0};
    rc = row ? write_png(qr, scale, &m, row) : API_QR_ENOMEM;
    if (modules)
        *modules = qr->width;
    free(row);
    QRcode_free(qr);
    if (rc) {
        free(m.buf);
        return rc;
    }
    *png = m.buf;
    *len = m.len;
    return 0;
}

char *api_qr_base64(const uint8_t *data, size_t len)
{
    return b64_encode(data, len);
}

char *api_qr_data_url(const uint8_t *png, size_t len)
{
    static const char prefix[] = "data:image/png;base64,";
    char *b64 = api_qr_base64(png, len);
    if (!b64)
        return NULL;
    size_t bl = strlen(b64);
    char *out = malloc(sizeof(prefix) + bl);
    if (out) {
        memcpy(out, prefix, sizeof(prefix) - 1);
        memcpy(out + sizeof(prefix) - 1, b64, bl + 1);
    }
    free(b64);
    return out;
}

/* 1 when module (x, y) of the padded symbol is dark. */
static int dark(const QRcode *qr, int x, int y)
{
    x -= API_QR_QUIET_ZONE;
    y -= API_QR_QUIET_ZONE;
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
        return 0;
    return qr->data[y * qr->width + x] & 1;
}

char *api_qr_terminal(const char *text, int *err)
{
    QRcode *qr;
    int rc = encode(text, &qr);
    if (rc) {
        if (err)
            *err = rc;
        return NULL;
    }
    int side = qr->width + 2 * API_QR_QUIET_ZONE;
    int lines = (side + 1) / 2;
    /* each cell is at most 3 bytes of UTF-8 */
    char *out = malloc((size_t)lines * ((size_t)side * 3 + 1) + 1);
    if (!out) {
        QRcode_free(qr);
        if (err)
            *err = API_QR_ENOMEM;
        return NULL;
    }
    size_t o = 0;
    for (int y = 0; y < side; y += 2) {
        for (int x = 0; x < side; x++) {
            /* light modules are drawn (the terminal's foreground), dark
             * modules are left blank (its background) */
            int top = !dark(qr, x, y), bottom = y + 1 < side ? !dark(qr, x, y + 1) : 0;
            const char *c = top && bottom ? "\xe2\x96\x88"
                            : top         ? "\xe2\x96\x80"
                            : bottom      ? "\xe2\x96\x84"
                                          : " ";
            size_t n = strlen(c);
            memcpy(out + o, c, n);
            o += n;
        }
        out[o++] = '\n';
    }
    out[o] = 0;
    QRcode_free(qr);
    if (err)
        *err = 0;
    return out;
}
