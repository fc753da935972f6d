/*
 * fuzz_logrec.c — the ensemble's log records as read back from the store
 * at start (replica/ens_driver.c: the entry envelope, zk__ens_env_decode),
 * then what a restart does with them: the core restores them (zk_zab
 * restore) and may send them to learners in DIFF/PROPOSE messages.
 *
 * Input: a list of records, u16 length | bytes, logged at increasing
 * zxids. The first byte, when odd, makes the target put a valid envelope
 * header on each record (so that mutations reach the fields).
 *
 * Checks: a record that decodes encodes back to the same bytes; every
 * entry accepted is one a peer accepts (it survives zk_zab_msg_encode and
 * zk_zab_msg_decode in a PROPOSE), so that a corrupt log cannot make a
 * leader send what its followers refuse forever; the core accepts the
 * restored entries or refuses them with -EINVAL.
 */
#include "fuzz.h"
#include "ensemble_int.h"
#include "zk_common.h"
#include "zk_zab.h"

#include <errno.h>
#include <string.h>

#define RECORDS_MAX 32
#define ENV_HDR     18

static void check_sendable(const struct zk_zab_entry *en)
{
    struct zk_zab_msg m, back;
    struct zk_zab_entry ents[1];
    size_t need, len;
    uint8_t *b;

    memset(&m, 0, sizeof(m));
    m.type = ZK_ZAB_MSG_PROPOSE;
    m.from = 1;
    m.to = 2;
    m.n_entries = 1;
    m.entries = en;
    need = zk_zab_msg_encoded_size(&m);
    b = malloc(need);
    FZ_CHECK(b != NULL);
    FZ_CHECK(zk_zab_msg_encode(&m, b, need, &len) == 0);
    FZ_CHECK(zk_zab_msg_decode(b, len, &back, ents, 1) == 0);
    free(b);
}

static void restore(const struct zk_zab_entry *ents, size_t n)
{
    struct zk_zab_config cfg = {.id = 2, .n_members = 3,
        .init_limit_ticks = 10, .sync_limit_ticks = 5,
        .session_timeout_ticks = 20, .incarnation = 2, .seed = 1};
    struct zk_zab_restore st;
    struct zk_zab *z;

    memset(&st, 0, sizeof(st));
    for (uint32_t i = 0; i < 3; i++)
        cfg.members[i].id = i + 1;
    st.hard.accepted_epoch = st.hard.current_epoch = 1;
    st.entries = ents;
    st.n_entries = n;
    int rc = zk_zab_create(&cfg, &st, &z);
    FZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        zk_zab_tick(z);
        zk_zab_destroy(z);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct zk_zab_entry ents[RECORDS_MAX];
    static uint8_t *bufs[RECORDS_MAX];
    struct fz f = {data, size};
    int fix = fz_u8(&f) & 1;
    size_t n = 0;

    while (n < RECORDS_MAX && f.left) {
        size_t len, elen;
        const uint8_t *p = fz_bytes(&f, 1 << 16, &len);
        uint8_t *b = malloc(len + 1);
        FZ_CHECK(b != NULL);
        if (len)
            memcpy(b, p, len);
        if (fix && len >= 2) {
            b[0] = 0xE5;
            b[1] = 1;
        }
        uint64_t zxid = ZK_ZAB_ZXID(1, n + 1);
        if (zk__ens_env_decode(zxid, b, len, &ents[n]) != 0) {
            free(b);
            continue;
        }
        FZ_CHECK(ents[n].zxid == zxid && ents[n].len + ENV_HDR == len);
        uint8_t *enc = zk__ens_env_encode(&ents[n], &elen);
        FZ_CHECK(enc && elen == len && memcmp(enc, b, len) == 0);
        free(enc);
        check_sendable(&ents[n]);
        bufs[n++] = b;
    }
    restore(ents, n);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    return 0;
}
