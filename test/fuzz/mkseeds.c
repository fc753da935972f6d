/*
 * mkseeds.c — writes the seed corpora of the fuzz targets into
 * test/fuzz/corpus/<target>/seed-* (`make fuzz-seeds`), from the encoders
 * themselves where there is one, so that a change of format shows up as
 * a change of seeds. libFuzzer grows each corpus from these; the long
 * runs' findings that are worth keeping are merged in beside them.
 *
 * Usage: mkseeds DIR   (DIR: the corpus root, test/fuzz/corpus)
 */
#include "fuzz.h"
#include "zk_common.h"
#include "zk_ctl.h"
#include "zk_zab.h"
#include "zk_txn.h"
#include "ensemble_int.h"
#include "snap_rx.h"

#include <zlib.h>
#include <zstd.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;

static void put(const char *target, const char *name, const void *a,
                size_t alen, const void *b, size_t blen)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/seed-%s", root, target, name);
    f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fwrite(a, 1, alen, f) == alen);
    if (blen)
        FZ_CHECK(fwrite(b, 1, blen, f) == blen);
    FZ_CHECK(fclose(f) == 0);
}

static void put_text(const char *target, const char *name, const char *s)
{
    put(target, name, s, strlen(s), NULL, 0);
}

/* ---- fuzz_txn ----------------------------------------------------------- */

static void txn_seed(const char *name, struct zk_op *ops, uint32_t n)
{
    struct zk_txn t = {1700000000000ull, n, ops};
    uint8_t *enc, raw = 1, body = 0;
    size_t len;
    char nm[64];

    FZ_CHECK(zk_txn_encode(&t, &enc, &len) == 0);
    snprintf(nm, sizeof(nm), "%s-raw", name);
    put("txn", nm, &raw, 1, enc, len);
    snprintf(nm, sizeof(nm), "%s-body", name);
    put("txn", nm, &body, 1, enc + ZK_TXN_HDR_SIZE, len - ZK_TXN_HDR_SIZE);
    free(enc);
}

#define S(x) x, (uint32_t)(sizeof(x) - 1)

static void seeds_txn(void)
{
    struct zk_op ops[10];

    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < 10; i++) {
        ops[i].type = (uint8_t)(i + 1);
        ops[i].version = -1;
    }
    ops[0].path = "/a"; ops[0].path_len = 2;
    ops[0].data = (const uint8_t *)"hello"; ops[0].data_len = 5;
    ops[0].mode = 0644; ops[0].flags = ZK_CREATE_EPHEMERAL;
    ops[0].session = 0x0100000100000001ull;
    ops[0].owner = "host:42"; ops[0].owner_len = 7;
    ops[1].path = "/a"; ops[1].path_len = 2; ops[1].version = 3;
    ops[2].path = "/b/c"; ops[2].path_len = 4;
    ops[2].data = (const uint8_t *)"x"; ops[2].data_len = 1;
    ops[3].path = "/q"; ops[3].path_len = 2;
    ops[3].data = (const uint8_t *)"+1"; ops[3].data_len = 2;
    ops[4].path = "/d"; ops[4].path_len = 2; ops[4].attr_mask = 7;
    ops[4].mode = 0600; ops[4].uid = 1000; ops[4].gid = 1000;
    ops[5].path = "/old"; ops[5].path_len = 4;
    ops[5].path2 = "/new"; ops[5].path2_len = 4;
    ops[5].flags = ZK_RENAME_NOREPLACE;
    ops[6].path = "/a"; ops[6].path_len = 2; ops[6].version = 0;
    ops[7].path = "/dir"; ops[7].path_len = 4;
    ops[7].flags = ZK_CHILDREN_SEQUENTIAL;
    ops[8].session = 0x0200000100000002ull; ops[8].timeout_ms = 4000;
    ops[8].owner = "server.2"; ops[8].owner_len = 8;
    ops[9].session = 0x0200000100000002ull;
    for (uint32_t i = 0; i < 10; i++) {
        char nm[16];
        snprintf(nm, sizeof(nm), "op%u", i + 1);
        txn_seed(nm, &ops[i], 1);
    }
    txn_seed("multi", ops, 10);
}

/* ---- fuzz_peer: what member 2 hears in a real exchange ------------------ */

#define PEERS 4
#define CORES 3
static const uint32_t peer_ids[PEERS] = {1, 3, 4, 5};

struct rec {
    uint8_t *buf;
    size_t len, cap;
};

static void rec_add(struct rec *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2;
        r->buf = realloc(r->buf, r->cap);
        FZ_CHECK(r->buf != NULL);
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
}

struct wire {
    uint32_t to;
    uint8_t *buf;
    size_t len;
};

/* Takes every Ready of core z; its messages go on the wire list. */
static void drain(struct zk_zab *z, struct wire *w, size_t *nw, size_t cap)
{
    for (int n = 0; n < 16 && zk_zab_has_ready(z); n++) {
        struct zk_zab_ready rd;
        zk_zab_ready(z, &rd);
        for (size_t i = 0; i < rd.n_msgs && *nw < cap; i++) {
            size_t need = zk_zab_msg_encoded_size(&rd.msgs[i]);
            w[*nw].buf = malloc(need);
            FZ_CHECK(zk_zab_msg_encode(&rd.msgs[i], w[*nw].buf, need,
                                       &w[*nw].len) == 0);
            w[*nw].to = rd.msgs[i].to;
            (*nw)++;
        }
        zk_zab_advance(z);
    }
}

static void record_msg(struct rec *r, uint32_t from, const uint8_t *b,
                       size_t len)
{
    uint8_t cmd = 2, hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    uint8_t step = 0xff;            /* one 16 KiB piece per frame */

    for (int i = 0; i < PEERS; i++)
        if (peer_ids[i] == from)
            cmd = (uint8_t)(i << 6 | 2);
    rec_add(r, &cmd, 1);
    rec_add(r, hdr, 2);
    rec_add(r, b, len);
    rec_add(r, &step, 1);
}

/* Runs members 1..3 (those in the bit mask `up`) on a perfect network for
 * `ticks` ticks, writes `writes` proposals at whoever leads, and records
 * what member 2 gets and does (fuzz_peer's command 0, sub 4: propose). */
static void peer_run(const char *name, int ticks, int writes, size_t skip,
                     unsigned up)
{
    static struct wire w[4096], next[4096];
    struct zk_zab *z[CORES + 1];
    struct rec r = {0};
    size_t nw = 0, nn, msgs = 0;
    uint8_t mode = 0, tick = 0, propose = 4 << 2;

    rec_add(&r, &mode, 1);
    for (uint32_t i = 1; i <= CORES; i++)
        z[i] = fz_core(i);
    for (int t = 0; t < ticks; t++) {
        for (uint32_t i = 1; i <= CORES; i++) {
            if (!(up >> i & 1))
                continue;
            zk_zab_tick(z[i]);
            drain(z[i], w, &nw, ZK_ARRAY_LEN(w));
        }
        rec_add(&r, &tick, 1);
        for (int round = 0; round < 8 && nw; round++) {
            nn = 0;
            for (size_t k = 0; k < nw; k++) {
                struct zk_zab_msg m;
                struct zk_zab_entry ents[ZK_ZAB_MSG_ENTRIES_MAX];
                if (w[k].to >= 1 && w[k].to <= CORES &&
                    (up >> w[k].to & 1) &&
                    zk_zab_msg_decode(w[k].buf, w[k].len, &m, ents,
                                      ZK_ARRAY_LEN(ents)) == 0) {
                    if (w[k].to == 2 && msgs++ >= skip &&
                        r.len + w[k].len < 12000)
                        record_msg(&r, m.from, w[k].buf, w[k].len);
                    zk_zab_step(z[w[k].to], &m);
                    drain(z[w[k].to], next, &nn, ZK_ARRAY_LEN(next));
                }
                free(w[k].buf);
            }
            memcpy(w, next, nn * sizeof(*w));
            nw = nn;
        }
        for (uint32_t i = 1; i <= CORES && t > ticks / 2; i++) {
            struct zk_zab_status st;
            uint64_t req;
            zk_zab_status(z[i], &st);
            if (!(up >> i & 1) || st.role != ZK_ZAB_LEADING ||
                !st.established || writes <= 0)
                continue;
            if (i == 2)
                rec_add(&r, &propose, 1);
            if (zk_zab_propose(z[i], (const uint8_t *)"write", 5, &req) == 0)
                writes--;
            drain(z[i], w, &nw, ZK_ARRAY_LEN(w));
        }
    }
    for (size_t k = 0; k < nw; k++)
        free(w[k].buf);
    for (uint32_t i = 1; i <= CORES; i++) {
        struct zk_zab_status st;
        zk_zab_status(z[i], &st);
        if (getenv("MKSEEDS_DEBUG"))
            fprintf(stderr, "%s: member %u %s epoch %llu commit %llx\n",
                    name, i, zk_zab_role_name(st.role),
                    (unsigned long long)st.epoch,
                    (unsigned long long)st.commit_zxid);
        zk_zab_destroy(z[i]);
    }
    put("peer", name, r.buf, r.len, NULL, 0);
    free(r.buf);
}

static void seeds_peer(void)
{
    static const uint8_t votes[] = {
        0, 0x01, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xff,
        0x41, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0xff, 0x00};
    static const uint8_t raw[] = {1, 0x5a, 0x4b, 0x46, 0x52, 1, 1, 0, 0, 0,
                                  0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 1};

    peer_run("elect", 30, 0, 0, 0xe);
    peer_run("broadcast", 40, 6, 0, 0xe);
    peer_run("late", 60, 12, 12, 0xe);
    peer_run("lead", 40, 6, 0, 0x6);    /* 3 is down: 2 leads */
    put("peer", "built-votes", votes, sizeof(votes), NULL, 0);
    put("peer", "raw-hello", raw, sizeof(raw), NULL, 0);
}

/* ---- fuzz_config, fuzz_ctl, fuzz_cli_txn -------------------------------- */

/* The first byte picks fuzz_config's overrides (bits: id 0..3, --data). */
static void cfg_seed(const char *name, uint8_t args, const char *text)
{
    put("config", name, &args, 1, text, strlen(text));
}

static void seeds_config(void)
{
    cfg_seed("standalone", 1, "dataDir=data\n"
             "server.1=127.0.0.1:2888\n");
    cfg_seed("three", 0,
             "# three voters and an observer\r\n"
             "dataDir=data\ntickTime=100\ninitLimit=20\nsyncLimit=4\n"
             "sessionTimeout=1000\nsecretFile=secret\n"
             "server.1=zk1.example:2888\nserver.2=[fd00::2]:2888\n"
             "server.3=10.0.0.3:2888:participant\n"
             "server.4=obs:2888:observer\n");
    cfg_seed("override", 7, "dataDir=/nonexistent\n"
             "secretFile=short\nserver.3=a:1\n server.1 = b:2 \n");
    cfg_seed("fifo", 2, "dataDir=bad\nsecretFile=fifo\n"
             "server.1=a:1\nserver.2=b:2\n");
}

static void ctl_seed(const char *name, const char *hdr, const char *payload)
{
    size_t hn = strlen(hdr), pn = strlen(payload);
    uint8_t pre[5] = {0};       /* one write: the whole request */

    zk_put_be32(pre + 1, (uint32_t)(hn + pn));
    uint8_t *b = malloc(hn + pn);
    FZ_CHECK(b != NULL);
    memcpy(b, hdr, hn);
    memcpy(b + hn, payload, pn);
    put("ctl", name, pre, sizeof(pre), b, hn + pn);
    free(b);
}

static void seeds_ctl(void)
{
    struct zk_op op;
    struct zk_txn t = {0, 1, &op};
    uint8_t *enc, pre[5] = {0};
    size_t len;

    ctl_seed("create", "create\tes\t/locks/l-\n", "data");
    ctl_seed("mkdir", "create\td\t/a/b\n", "");
    ctl_seed("set", "set\t3\t/a\n", "new value");
    ctl_seed("rm", "rm\t-1\t/a\n", "");
    ctl_seed("stat", "stat\t/\n", "");
    ctl_seed("sync", "sync\t/a\n", "");
    ctl_seed("status", "status\t-\n", "");
    ctl_seed("umount", "umount\t-\n", "");
    memset(&op, 0, sizeof(op));
    op.type = ZK_OP_CREATE;
    op.version = -1;
    op.path = "/t";
    op.path_len = 2;
    FZ_CHECK(zk_txn_encode(&t, &enc, &len) == 0);
    zk_put_be32(pre + 1, (uint32_t)(len + 6));
    uint8_t *b = malloc(len + 6);
    FZ_CHECK(b != NULL);
    memcpy(b, "txn\t-\n", 6);
    memcpy(b + 6, enc, len);
    put("ctl", "txn", pre, sizeof(pre), b, len + 6);
    free(b);
    free(enc);
}

static void seeds_cli_txn(void)
{
    put_text("cli_txn", "all", "# a transfer\n"
             "check -v 3 /accounts/a\n"
             "set -v3 /accounts/a 97\r\n"
             "create -es /queue/job- payload with spaces\n"
             "create -d dir\n"
             "rm -v 0 /accounts/old\n"
             "\n   \t\n");
    put_text("cli_txn", "bad", "create -x /a\n");
    put_text("cli_txn", "rm-extra", "rm /a trailing\n");
}

/* ---- fuzz_snap ---------------------------------------------------------- */

static void snap_frame(struct rec *r, uint8_t kind, const uint8_t *p,
                       size_t len)
{
    uint8_t hdr[3] = {kind, (uint8_t)(len >> 8), (uint8_t)len};

    rec_add(r, hdr, 3);
    rec_add(r, p, len);
}

static void seeds_snap(void)
{
    static const char content[] = "ZKSN a snapshot's bytes, any bytes";
    size_t len = sizeof(content) - 1, zlen;
    uint8_t z[256], begin[ZK__SNAP_BEGIN_LEN], end[ZK__SNAP_END_LEN];
    uint8_t one = 1, three = 3;
    struct rec r = {0};

    zlen = ZSTD_compress(z, sizeof(z), content, len, 3);
    FZ_CHECK(!ZSTD_isError(zlen));
    zk_put_be32(begin, ZK__SNAP_MAGIC);
    begin[4] = ZK__SNAP_VERSION;
    begin[5] = ZK__SNAP_CODEC_ZSTD;
    begin[6] = begin[7] = 0;
    zk_put_be64(begin + 8, 0x100000007ull);    /* fuzz_snap's zxid */
    zk_put_be64(begin + 16, len);
    zk_put_be64(end, 0x100000007ull);
    zk_put_be64(end + 8, len);
    zk_put_be64(end + 16, zlen);
    zk_put_be32(end + 24, (uint32_t)crc32(0L, (const uint8_t *)content,
                                          (uInt)len));
    rec_add(&r, "", 1);                         /* mode 0: frames */
    snap_frame(&r, 0, begin, sizeof(begin));
    snap_frame(&r, 1, z, zlen / 2);
    snap_frame(&r, 1, z + zlen / 2, zlen - zlen / 2);
    snap_frame(&r, 2, end, sizeof(end));
    put("snap", "frames", r.buf, r.len, NULL, 0);
    free(r.buf);
    put("snap", "round-trip", &one, 1, content, len);
    put("snap", "flipped", &three, 1, content, len);
}

/* ---- fuzz_logrec -------------------------------------------------------- */

static void seeds_logrec(void)
{
    static const uint8_t sid[8] = {2, 0, 0, 1, 0, 0, 0, 1};
    struct zk_op op;
    struct zk_txn t = {1700000000000ull, 1, &op};
    struct rec r = {0};
    uint8_t *txn, *env;
    size_t tlen, elen;

    memset(&op, 0, sizeof(op));
    op.type = ZK_OP_CREATE;
    op.version = -1;
    op.path = "/a";
    op.path_len = 2;
    FZ_CHECK(zk_txn_encode(&t, &txn, &tlen) == 0);
    struct zk_zab_entry ents[3] = {
        {0, 0, 2, ZK_ZAB_ENTRY_SESSION_OPEN, 8, sid},
        {0, 7, 2, ZK_ZAB_ENTRY_WRITE, (uint32_t)tlen, txn},
        {0, 0, 2, ZK_ZAB_ENTRY_SESSION_CLOSE, 8, sid},
    };
    rec_add(&r, "", 1);
    for (int i = 0; i < 3; i++) {
        env = zk__ens_env_encode(&ents[i], &elen);
        FZ_CHECK(env != NULL);
        uint8_t hdr[2] = {(uint8_t)(elen >> 8), (uint8_t)elen};
        rec_add(&r, hdr, 2);
        rec_add(&r, env, elen);
        free(env);
    }
    put("logrec", "entries", r.buf, r.len, NULL, 0);
    free(r.buf);
    free(txn);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds CORPUS-DIR\n");
        return 2;
    }
    root = argv[1];
    seeds_txn();
    seeds_peer();
    seeds_config();
    seeds_ctl();
    seeds_cli_txn();
    seeds_snap();
    seeds_logrec();
    return 0;
}
