/*
 * util.c — helpers of the fuzz targets (fuzz.h) and the quiet logger: the
 * fuzz build links this instead of common/log.c, because a target that
 * rejects a million inputs a minute would otherwise spend its time in
 * zk_log (ZK_FUZZ_LOG=1 in the environment writes the lines to stderr).
 */
#include "fuzz.h"
#include "zk_common.h"
#include "zk_zab.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static int log_on = -1;

int zk_log_enabled(enum zk_log_level level)
{
    (void)level;
    if (log_on < 0)
        log_on = getenv("ZK_FUZZ_LOG") != NULL;
    return log_on;
}

void zk__log(enum zk_log_level level, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "zkfs log %d: ", (int)level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void zk_log_setup(enum zk_log_level level, int use_syslog)
{
    (void)level;
    (void)use_syslog;
}

uint8_t fz_u8(struct fz *f)
{
    if (f->left == 0)
        return 0;
    f->left--;
    return *f->p++;
}

uint16_t fz_u16(struct fz *f)
{
    return (uint16_t)(fz_u8(f) << 8 | fz_u8(f));
}

uint32_t fz_u32(struct fz *f)
{
    uint32_t hi = fz_u16(f);
    return hi << 16 | fz_u16(f);
}

const uint8_t *fz_bytes(struct fz *f, size_t max, size_t *len)
{
    size_t n = fz_u16(f);
    const uint8_t *p = f->p;

    if (n > max)
        n = max;
    if (n > f->left)
        n = f->left;
    f->p += n;
    f->left -= n;
    *len = n;
    return p;
}

static char tmp_path[512];

static void tmp_remove(void)
{
    char cmd[600];

    if (tmp_path[0] && strlen(tmp_path) > 8) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_path);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz: could not remove %s\n", tmp_path);
    }
}

const char *fz_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");

    if (tmp_path[0])
        return tmp_path;
    snprintf(tmp_path, sizeof(tmp_path), "%s/zkfs-fuzz-%s.XXXXXX",
             base && *base ? base : "/tmp", tag);
    if (!mkdtemp(tmp_path)) {
        perror("fuzz: mkdtemp");
        exit(1);
    }
    atexit(tmp_remove);
    return tmp_path;
}

struct zk_zab *fz_core(uint32_t id)
{
    struct zk_zab_config cfg = {.id = id, .n_members = 5,
        .init_limit_ticks = 10, .sync_limit_ticks = 5,
        .session_timeout_ticks = 20, .incarnation = 1, .counter_max = 64,
        .seed = id == 2 ? 42 : 1000 + id};
    struct zk_zab_restore st;
    struct zk_zab *z;

    memset(&st, 0, sizeof(st));
    for (uint32_t i = 0; i < 5; i++) {
        cfg.members[i].id = i + 1;
        cfg.members[i].observer = i >= 3;
    }
    FZ_CHECK(zk_zab_create(&cfg, &st, &z) == 0);
    return z;
}
