/*
 * lincheck.c — the linearizability checker of lincheck.h: reading
 * histories, the versioned-register model, the search, and the shrinking
 * of a violation to a small part that is itself not linearizable.
 *
 * The search (Lowe, "Testing for linearizability", 2017, after Wing and
 * Gong): the history of one key is a doubly linked list of call and
 * return entries in time order. Walking from the head, a call entry whose
 * operation the model allows in the current state is linearized: the
 * operation's entries are lifted out of the list, the previous state is
 * pushed, and the walk starts again from the head. Reaching a return
 * entry means its operation was not linearized in time: the last choice
 * is undone and the walk goes on after it. A (linearized set, state) pair
 * already seen is not explored again (memoization). Indeterminate
 * operations have no return entry, so nothing forces them in, and the
 * history is linearizable once no return entry is left.
 *
 * What it keeps true: every verdict LINEARIZABLE or VIOLATION is exact for
 * the model; when the step budget runs out the verdict is UNKNOWN, never
 * a guess.
 */
#include "lincheck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LINE_BYTES_MAX 1024
#define SHRINK_TRIES_MAX 400

/* ======================== interned strings ============================= */

struct strtab {
    char **s;
    size_t n, cap;
    uint32_t *slot;            /* open addressing: index + 1, 0 = empty */
    size_t nslot;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int strtab_grow(struct strtab *t)
{
    size_t nslot = t->nslot ? t->nslot * 2 : 64;
    uint32_t *slot = calloc(nslot, sizeof(*slot));
    if (slot == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        size_t j = hash_str(t->s[i]) & (nslot - 1);
        while (slot[j] != 0)
            j = (j + 1) & (nslot - 1);
        slot[j] = (uint32_t)i + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = nslot;
    return 0;
}

/* The index of s in t, added if new. */
static int strtab_intern(struct strtab *t, const char *s, uint32_t *out)
{
    if ((t->n + 1) * 2 > t->nslot && strtab_grow(t) < 0)
        return -ENOMEM;
    size_t j = hash_str(s) & (t->nslot - 1);
    for (; t->slot[j] != 0; j = (j + 1) & (t->nslot - 1)) {
        if (strcmp(t->s[t->slot[j] - 1], s) == 0) {
            *out = t->slot[j] - 1;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **ns = realloc(t->s, cap * sizeof(*ns));
        if (ns == NULL)
            return -ENOMEM;
        t->s = ns;
        t->cap = cap;
    }
    t->s[t->n] = strdup(s);
    if (t->s[t->n] == NULL)
        return -ENOMEM;
    t->slot[j] = (uint32_t)t->n + 1;
    *out = (uint32_t)t->n++;
    return 0;
}

static void strtab_free(struct strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->slot);
}

/* ======================== the history ================================== */

struct lin_key_init {
    bool set;
    uint32_t value, ver;
};

struct lin_history {
    struct strtab keys, values;
    struct lin_key_init *init;     /* per key */
    size_t init_cap;
    struct lin_event *ev;
    size_t n, cap;
    struct strtab ids;             /* "PROC ID" -> index in ev */
};

struct lin_history *lin_history_new(void)
{
    return calloc(1, sizeof(struct lin_history));
}

void lin_history_free(struct lin_history *h)
{
    if (h == NULL)
        return;
    strtab_free(&h->keys);
    strtab_free(&h->values);
    strtab_free(&h->ids);
    free(h->init);
    free(h->ev);
    free(h);
}

size_t lin_history_ops(const struct lin_history *h)
{
    return h->n;
}

const char *lin_verdict_name(enum lin_verdict v)
{
    switch (v) {
    case LIN_LINEARIZABLE: return "linearizable";
    case LIN_VIOLATION: return "NOT linearizable";
    default: return "unknown (search bound reached)";
    }
}

static int key_index(struct lin_history *h, const char *key, int *out)
{
    uint32_t k;
    int err = strtab_intern(&h->keys, key, &k);
    if (err < 0)
        return err;
    if (k >= h->init_cap) {
        size_t cap = h->init_cap ? h->init_cap * 2 : 16;
        struct lin_key_init *ni = realloc(h->init, cap * sizeof(*ni));
        if (ni == NULL)
            return -ENOMEM;
        memset(ni + h->init_cap, 0, (cap - h->init_cap) * sizeof(*ni));
        h->init = ni;
        h->init_cap = cap;
    }
    *out = (int)k;
    return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < 0)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The index of s in names[0..n), or -EINVAL. */
static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -EINVAL;
}

static int parse_op(const char *s, enum lin_op *out)
{
    static const char *const names[] = {"w", "cas", "r", "v", "c", "d"};
    int i = lookup(s, names, 6);
    if (i >= 0)
        *out = (enum lin_op)i;
    return i < 0 ? i : 0;
}

static int parse_status(const char *s, enum lin_status *out)
{
    static const char *const names[] = {"ok", "bad", "info", "fail"};
    int i = lookup(s, names, 4);
    if (i >= 0)
        *out = (enum lin_status)i;
    return i < 0 ? i : 0;
}

/* Splits line into at most max white-space separated tokens. */
static int split(char *line, char **tok, int max)
{
    int n = 0;
    for (char *p = strtok(line, " \t\r\n"); p; p = strtok(NULL, " \t\r\n")) {
        if (n == max || strlen(p) > LIN_TOKEN_MAX)
            return -1;
        tok[n++] = p;
    }
    return n;
}

static int add_init(struct lin_history *h, char **tok)
{
    int k, err = key_index(h, tok[1], &k);
    uint32_t v, ver;
    if (err < 0)
        return err;
    if (parse_u32(tok[3], &ver) < 0 || h->init[k].set)
        return -EINVAL;
    if (strcmp(tok[2], "<absent>") == 0)
        v = LIN_ABSENT;
    else if ((err = strtab_intern(&h->values, tok[2], &v)) < 0)
        return err;
    h->init[k] = (struct lin_key_init){true, v, ver};
    return 0;
}

/* Fills e's operation fields from tokens 5..9 (OP ARG1 ARG2 STATUS RET). */
static int parse_fields(struct lin_history *h, char **tok, struct lin_event *e)
{
    if (parse_op(tok[5], &e->op) < 0 || parse_status(tok[8], &e->status) < 0)
        return -EINVAL;
    if (e->status == LIN_BAD && (e->op == LIN_W || e->op == LIN_R ||
                                 e->op == LIN_V))
        return -EINVAL;
    bool done = e->status == LIN_OK;
    switch (e->op) {
    case LIN_W:
        return strtab_intern(&h->values, tok[6], &e->value);
    case LIN_CAS:
        if (parse_u32(tok[6], &e->ver) < 0)
            return -EINVAL;
        if (done && parse_u32(tok[9], &e->new_ver) < 0)
            return -EINVAL;
        return strtab_intern(&h->values, tok[7], &e->value);
    case LIN_R:
        if (done && strcmp(tok[9], "<absent>") == 0) {
            e->value = LIN_ABSENT;
            return 0;
        }
        return done ? strtab_intern(&h->values, tok[9], &e->value) : 0;
    case LIN_V:
        return done ? parse_u32(tok[9], &e->ver) : 0;
    case LIN_C:
        return strtab_intern(&h->values, tok[6], &e->value);
    case LIN_D:
        return 0;
    }
    return -EINVAL;
}

/* Stores e, replacing an earlier line of the same (PROC, ID). */
static int add_event(struct lin_history *h, const struct lin_event *e)
{
    char id[64];
    uint32_t slot;
    snprintf(id, sizeof(id), "%d %" PRId64, e->proc, e->id);
    int err = strtab_intern(&h->ids, id, &slot);
    if (err < 0)
        return err;
    if (slot < h->n) {
        h->ev[slot] = *e;
        return 0;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct lin_event *ne = realloc(h->ev, cap * sizeof(*ne));
        if (ne == NULL)
            return -ENOMEM;
        h->ev = ne;
        h->cap = cap;
    }
    h->ev[h->n++] = *e;
    return 0;
}

static int parse_event(struct lin_history *h, char **tok, int line)
{
    struct lin_event e = {.line = line};
    int64_t proc;
    int err;

    if (parse_i64(tok[0], &proc) < 0 || proc > INT32_MAX ||
        parse_i64(tok[1], &e.id) < 0 || parse_i64(tok[2], &e.t0) < 0)
        return -EINVAL;
    e.proc = (int)proc;
    if ((err = parse_fields(h, tok, &e)) < 0)
        return err;
    if (e.status == LIN_INFO)
        e.t1 = LIN_T_INF;
    else if (parse_i64(tok[3], &e.t1) < 0 || e.t1 < e.t0)
        return -EINVAL;
    if ((err = key_index(h, tok[4], &e.key)) < 0)
        return err;
    return add_event(h, &e);
}

static int parse_line(struct lin_history *h, char *buf, int line)
{
    char *tok[10];
    int n = split(buf, tok, 10);

    if (n == 0 || (n > 0 && tok[0][0] == '#'))
        return 0;
    if (n == 4 && strcmp(tok[0], "init") == 0)
        return add_init(h, tok);
    if (n != 10)
        return -EINVAL;
    return parse_event(h, tok, line);
}

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

int lin_history_read(struct lin_history *h, FILE *f, const char *name,
                     char *err, size_t err_len)
{
    char buf[LINE_BYTES_MAX];
    int line = 0;

    while (fgets(buf, sizeof(buf), f) != NULL) {
        line++;
        if (strchr(buf, '\n') == NULL && !feof(f)) {
            set_err(err, err_len, "%s:%d: line too long", name, line);
            return -EINVAL;
        }
        int rc = parse_line(h, buf, line);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0) {
            set_err(err, err_len, "%s:%d: malformed line", name, line);
            return rc;
        }
    }
    return 0;
}

int lin_history_parse(struct lin_history *h, const char *text, char *err,
                      size_t err_len)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    if (f == NULL)
        return -ENOMEM;
    int rc = lin_history_read(h, f, "history", err, err_len);
    fclose(f);
    return rc;
}

/* ======================== the model ==================================== */

/* A register's state: its value's index and its version. */
#define ST(value, ver) (((uint64_t)(value) << 32) | (ver))
#define ST_VALUE(s)    ((uint32_t)((s) >> 32))
#define ST_VER(s)      ((uint32_t)(s))

/* Whether op e may take effect in state s, and the state after it. A
 * file that does not exist has value LIN_ABSENT: only a create, a read
 * and a refused delete are possible then. */
static bool model_step(uint64_t s, const struct lin_event *e, uint64_t *next)
{
    bool exists = ST_VALUE(s) != LIN_ABSENT;
    *next = s;
    switch (e->op) {
    case LIN_C:
        if (e->status == LIN_BAD)
            return exists;
        *next = ST(e->value, 0);
        return !exists;
    case LIN_D:
        if (e->status == LIN_BAD)
            return !exists;
        *next = ST(LIN_ABSENT, 0);
        return exists;
    case LIN_R:
        return ST_VALUE(s) == e->value;
    default:
        break;
    }
    if (!exists)
        return false;
    switch (e->op) {
    case LIN_W:
        *next = ST(e->value, ST_VER(s) + 1);
        return true;
    case LIN_CAS:
        if (e->status == LIN_BAD)
            return ST_VER(s) != e->ver;
        if (ST_VER(s) != e->ver)
            return false;
        if (e->status == LIN_OK && e->new_ver != e->ver + 1)
            return false;
        *next = ST(e->value, e->ver + 1);
        return true;
    case LIN_V:
        return ST_VER(s) == e->ver;
    default:
        return false;
    }
}

/* ======================== the memo ===================================== */

/* Visited (linearized set, state) pairs: an open-addressing table whose
 * bitsets live in one arena of words. */
struct memo {
    size_t words;              /* per bitset */
    uint64_t *arena;
    size_t n, cap_sets;
    struct memo_slot { uint64_t hash, state; size_t set; } *slot;
    size_t nslot;              /* power of two; set == 0: empty */
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static int memo_grow(struct memo *m)
{
    size_t nslot = m->nslot ? m->nslot * 2 : 1024;
    struct memo_slot *slot = calloc(nslot, sizeof(*slot));
    if (slot == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->nslot; i++) {
        if (m->slot[i].set == 0)
            continue;
        size_t j = m->slot[i].hash & (nslot - 1);
        while (slot[j].set != 0)
            j = (j + 1) & (nslot - 1);
        slot[j] = m->slot[i];
    }
    free(m->slot);
    m->slot = slot;
    m->nslot = nslot;
    return 0;
}

/* Adds (bits, state); 1 if it was new, 0 if seen, -ENOMEM. */
static int memo_add(struct memo *m, const uint64_t *bits, uint64_t bhash,
                    uint64_t state)
{
    if ((m->n + 1) * 2 > m->nslot && memo_grow(m) < 0)
        return -ENOMEM;
    uint64_t h = mix(bhash ^ mix(state)) | 1;
    size_t j = h & (m->nslot - 1);
    for (; m->slot[j].set != 0; j = (j + 1) & (m->nslot - 1)) {
        const struct memo_slot *s = &m->slot[j];
        if (s->hash == h && s->state == state &&
            memcmp(m->arena + (s->set - 1) * m->words, bits,
                   m->words * 8) == 0)
            return 0;
    }
    if (m->n == m->cap_sets) {
        size_t cap = m->cap_sets ? m->cap_sets * 2 : 1024;
        uint64_t *na = realloc(m->arena, cap * m->words * 8);
        if (na == NULL)
            return -ENOMEM;
        m->arena = na;
        m->cap_sets = cap;
    }
    memcpy(m->arena + m->n * m->words, bits, m->words * 8);
    m->slot[j] = (struct memo_slot){h, state, ++m->n};
    return 1;
}

static void memo_free(struct memo *m)
{
    free(m->arena);
    free(m->slot);
}

/* ======================== the search =================================== */

struct entry {
    int op;                    /* index into the ops */
    bool call;
    int64_t t;
    int prev, next;            /* list links; -1 = none */
    int ret;                   /* call: its return entry, -1 if none */
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    /* At the same instant calls come first: those are concurrent. */
    if (x->call != y->call)
        return x->call ? -1 : 1;
    return x->op - y->op;
}

/* The entries of ops[0..n) in time order, linked behind a head at index
 * 0. Returns the array (n_entries + 1 long) or NULL. */
static struct entry *build_entries(const struct lin_event *const *ops,
                                   size_t n, size_t *n_out)
{
    struct entry *e = calloc(2 * n + 1, sizeof(*e));
    size_t k = 1;
    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        e[k++] = (struct entry){.op = (int)i, .call = true, .t = ops[i]->t0};
        if (ops[i]->t1 != LIN_T_INF)
            e[k++] = (struct entry){.op = (int)i, .t = ops[i]->t1};
    }
    qsort(e + 1, k - 1, sizeof(*e), cmp_entry);
    int *call_of = malloc(n * sizeof(int));
    if (call_of == NULL) {
        free(e);
        return NULL;
    }
    for (size_t i = 0; i < k; i++) {
        e[i].prev = (int)i - 1;
        e[i].next = i + 1 < k ? (int)i + 1 : -1;
        e[i].ret = -1;
        if (i > 0 && e[i].call)
            call_of[e[i].op] = (int)i;
        else if (i > 0)
            e[call_of[e[i].op]].ret = (int)i;
    }
    free(call_of);
    *n_out = k;
    return e;
}

static void unlink_entry(struct entry *e, int i)
{
    e[e[i].prev].next = e[i].next;
    if (e[i].next >= 0)
        e[e[i].next].prev = e[i].prev;
}

static void relink_entry(struct entry *e, int i)
{
    e[e[i].prev].next = i;
    if (e[i].next >= 0)
        e[e[i].next].prev = i;
}

static void lift(struct entry *e, int c)
{
    unlink_entry(e, c);
    if (e[c].ret >= 0)
        unlink_entry(e, e[c].ret);
}

static void unlift(struct entry *e, int c)
{
    if (e[c].ret >= 0)
        relink_entry(e, e[c].ret);
    relink_entry(e, c);
}

struct search {
    const struct lin_event *const *ops;
    size_t n;
    struct entry *e;
    uint64_t *bits, bhash, *zob;
    struct memo memo;
    struct frame { int call; uint64_t state; } *stack;
    size_t depth;
    uint64_t steps;
};

static void flip(struct search *s, int op)
{
    s->bits[op / 64] ^= 1ULL << (op % 64);
    s->bhash ^= s->zob[op];
}

/* Tries to linearize the call at entry c in state *state: on success the
 * choice is pushed and 1 returned. */
static int try_call(struct search *s, int c, uint64_t *state)
{
    uint64_t next;
    int op = s->e[c].op;
    if (!model_step(*state, s->ops[op], &next))
        return 0;
    flip(s, op);
    int rc = memo_add(&s->memo, s->bits, s->bhash, next);
    if (rc <= 0) {
        flip(s, op);
        return rc;
    }
    s->stack[s->depth++] = (struct frame){c, *state};
    *state = next;
    lift(s->e, c);
    return 1;
}

static int search_run(struct search *s, uint64_t state, uint64_t steps_max,
                      enum lin_verdict *out)
{
    size_t returns = 0;
    for (size_t i = 0; i < s->n; i++)
        returns += s->ops[i]->t1 != LIN_T_INF;
    int cur = s->e[0].next;
    while (returns > 0) {
        if (++s->steps > steps_max) {
            *out = LIN_UNKNOWN;
            return 0;
        }
        if (cur >= 0 && s->e[cur].call) {
            int rc = try_call(s, cur, &state);
            if (rc < 0)
                return rc;
            if (rc == 1) {
                returns -= s->e[cur].ret >= 0;
                cur = s->e[0].next;
            } else {
                cur = s->e[cur].next;
            }
            continue;
        }
        if (s->depth == 0) {
            *out = LIN_VIOLATION;
            return 0;
        }
        struct frame f = s->stack[--s->depth];
        flip(s, s->e[f.call].op);
        state = f.state;
        unlift(s->e, f.call);
        returns += s->e[f.call].ret >= 0;
        cur = s->e[f.call].next;
    }
    *out = LIN_LINEARIZABLE;
    return 0;
}

/* Checks ops[0..n) of one key from state init. */
static int check_ops(const struct lin_event *const *ops, size_t n,
                     uint64_t init, uint64_t steps_max,
                     struct lin_key_result *res)
{
    struct search s = {.ops = ops, .n = n};
    size_t ne;
    int rc = -ENOMEM;

    s.memo.words = n / 64 + 1;
    s.e = build_entries(ops, n, &ne);
    s.bits = calloc(s.memo.words, 8);
    s.zob = malloc((n + 1) * sizeof(uint64_t));
    s.stack = malloc((n + 1) * sizeof(*s.stack));
    if (s.e && s.bits && s.zob && s.stack) {
        for (size_t i = 0; i < n; i++)
            s.zob[i] = mix(i * 0x9e3779b97f4a7c15ULL + 1);
        rc = search_run(&s, init, steps_max, &res->verdict);
    }
    res->steps = s.steps;
    res->cache = s.memo.n;
    memo_free(&s.memo);
    free(s.e);
    free(s.bits);
    free(s.zob);
    free(s.stack);
    return rc;
}

/* ======================== shrinking a violation ======================== */

static bool is_observation(const struct lin_event *e)
{
    return e->op == LIN_R || e->op == LIN_V || e->status == LIN_BAD;
}

/* The ops of a key as they were known at time t: operations invoked after
 * t are left out, those completed after t are indeterminate (and so
 * observations among them say nothing and are left out). Copies go into
 * tmp, pointers into out; returns how many. */
static size_t prefix_at(const struct lin_event *const *ops, size_t n,
                        int64_t t, struct lin_event *tmp,
                        const struct lin_event **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->t0 > t)
            continue;
        tmp[k] = *ops[i];
        if (tmp[k].t1 > t) {
            if (is_observation(&tmp[k]))
                continue;
            tmp[k].t1 = LIN_T_INF;
            tmp[k].status = LIN_INFO;
        }
        out[k] = &tmp[k];
        k++;
    }
    return k;
}

static int verdict_of(const struct lin_event *const *ops, size_t n,
                      uint64_t init, uint64_t steps_max,
                      enum lin_verdict *v)
{
    struct lin_key_result r = {0};
    int rc = check_ops(ops, n, init, steps_max, &r);
    *v = r.verdict;
    return rc;
}

static int cmp_t1(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The earliest completion time at which the known prefix is already not
 * linearizable (prefixes only gain constraints as time goes on). */
static int first_failing_time(const struct lin_event *const *ops, size_t n,
                              uint64_t init, uint64_t steps_max,
                              struct lin_event *tmp,
                              const struct lin_event **pre, int64_t *out)
{
    int64_t *ts = malloc(n * sizeof(*ts));
    size_t nt = 0, lo = 0, hi;
    if (ts == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (ops[i]->t1 != LIN_T_INF)
            ts[nt++] = ops[i]->t1;
    if (nt == 0) {             /* nothing completed: nothing can fail */
        free(ts);
        return -EINVAL;
    }
    qsort(ts, nt, sizeof(*ts), cmp_t1);
    hi = nt - 1;               /* the whole history fails */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        enum lin_verdict v;
        size_t k = prefix_at(ops, n, ts[mid], tmp, pre);
        int rc = verdict_of(pre, k, init, steps_max, &v);
        if (rc < 0) {
            free(ts);
            return rc;
        }
        if (v == LIN_VIOLATION)
            hi = mid;
        else
            lo = mid + 1;
    }
    *out = ts[lo];
    free(ts);
    return 0;
}

static void print_op(FILE *f, const struct lin_history *h,
                     const struct lin_event *e, int64_t t_base)
{
    fprintf(f, "    proc %-3d %9.3f .. ", e->proc, (e->t0 - t_base) / 1e6);
    if (e->t1 == LIN_T_INF)
        fprintf(f, "%9s ms  ", "(never)");
    else
        fprintf(f, "%9.3f ms  ", (e->t1 - t_base) / 1e6);
    const char *val = e->value == LIN_ABSENT ? "<absent>"
                                             : h->values.s[e->value];
    switch (e->op) {
    case LIN_W: fprintf(f, "write %s", val); break;
    case LIN_CAS: fprintf(f, "cas version %" PRIu32 " -> %s", e->ver, val); break;
    case LIN_R: fprintf(f, "read -> %s", val); break;
    case LIN_V: fprintf(f, "version -> %" PRIu32, e->ver); break;
    case LIN_C: fprintf(f, "create %s", val); break;
    case LIN_D: fprintf(f, "delete"); break;
    }
    if (e->op == LIN_CAS && e->status == LIN_OK)
        fprintf(f, ": ok, version %" PRIu32, e->new_ver);
    else if (e->status == LIN_BAD)
        fprintf(f, e->op == LIN_C ? ": exists" : e->op == LIN_D
                   ? ": does not exist" : ": version mismatch");
    else if (e->status == LIN_INFO)
        fprintf(f, ": indeterminate");
    fprintf(f, "   (line %d)\n", e->line);
}

/* Leaves out observations one at a time while the rest still fails
 * (fewer observations are fewer constraints, so what is left is itself
 * a non-linearizable history). */
static int drop_observations(const struct lin_event **pre, size_t *k,
                             uint64_t init, uint64_t steps_max)
{
    size_t tries = 0;
    for (size_t i = 0; i < *k && tries < SHRINK_TRIES_MAX; i++) {
        if (!is_observation(pre[i]))
            continue;
        const struct lin_event *held = pre[i];
        memmove(pre + i, pre + i + 1, (*k - i - 1) * sizeof(*pre));
        enum lin_verdict v;
        int rc = verdict_of(pre, *k - 1, init, steps_max, &v);
        tries++;
        if (rc < 0)
            return rc;
        if (v == LIN_VIOLATION) {
            (*k)--;
            i--;
            continue;
        }
        memmove(pre + i + 1, pre + i, (*k - i - 1) * sizeof(*pre));
        pre[i] = held;
    }
    return 0;
}

static int cmp_t0(const void *a, const void *b)
{
    const struct lin_event *x = *(const struct lin_event *const *)a;
    const struct lin_event *y = *(const struct lin_event *const *)b;
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

static int explain(FILE *f, size_t show_max, const struct lin_history *h,
                   int key, const struct lin_event *const *ops, size_t n,
                   uint64_t init, uint64_t steps_max)
{
    struct lin_event *tmp = malloc((n + 1) * sizeof(*tmp));
    const struct lin_event **pre = malloc((n + 1) * sizeof(*pre));
    int64_t t, base = INT64_MAX;
    int rc = -ENOMEM;

    if (tmp == NULL || pre == NULL)
        goto out;
    if ((rc = first_failing_time(ops, n, init, steps_max, tmp, pre, &t)) < 0)
        goto out;
    size_t k = prefix_at(ops, n, t, tmp, pre);
    if ((rc = drop_observations(pre, &k, init, steps_max)) < 0)
        goto out;
    qsort(pre, k, sizeof(*pre), cmp_t0);
    for (size_t i = 0; i < n; i++)
        base = ops[i]->t0 < base ? ops[i]->t0 : base;
    fprintf(f, "  key %s: initial value %s, version %" PRIu32 "; the history "
            "is already not linearizable when the operation completing at "
            "%.3f ms returns; a smallest failing part (%zu of its %zu "
            "operations; times in ms from the key's first invocation):\n",
            h->keys.s[key], ST_VALUE(init) == LIN_ABSENT ? "<absent>"
                            : h->values.s[ST_VALUE(init)], ST_VER(init),
            (t - base) / 1e6, k, n);
    size_t from = show_max && k > show_max ? k - show_max : 0;
    if (from > 0)
        fprintf(f, "    (%zu earlier operations of the part not shown: "
                "writes, creates and deletes are all kept, since leaving one "
                "out could fail for another reason)\n", from);
    for (size_t i = from; i < k; i++)
        print_op(f, h, pre[i], base);
out:
    free(tmp);
    free(pre);
    return rc;
}

/* ======================== per key ====================================== */

/* The operations of key k that constrain the search: failed ones and
 * observations that returned nothing are dropped. */
static size_t ops_of_key(const struct lin_history *h, int k,
                         const struct lin_event **ops, size_t *dropped,
                         size_t *info)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        const struct lin_event *e = &h->ev[i];
        if (e->key != k)
            continue;
        bool obs = e->op == LIN_R || e->op == LIN_V;
        if (e->status == LIN_FAIL || (obs && e->status != LIN_OK)) {
            (*dropped)++;
            continue;
        }
        *info += e->status == LIN_INFO;
        ops[n++] = e;
    }
    return n;
}

static int check_key(struct lin_history *h, int k,
                     const struct lin_options *opts,
                     const struct lin_event **ops, struct lin_key_result *r)
{
    uint64_t steps_max = opts && opts->steps_max ? opts->steps_max
                                                 : LIN_STEPS_MAX_DEFAULT;
    uint64_t init = ST(h->init[k].value, h->init[k].ver);

    *r = (struct lin_key_result){.key = h->keys.s[k]};
    r->ops = ops_of_key(h, k, ops, &r->dropped, &r->info);
    int rc = check_ops(ops, r->ops, init, steps_max, r);
    if (rc == 0 && r->verdict == LIN_VIOLATION && opts && opts->explain)
        rc = explain(opts->explain, opts->explain_max, h, k, ops, r->ops,
                     init, steps_max);
    return rc;
}

int lin_check(struct lin_history *h, const struct lin_options *opts,
              struct lin_key_result **out, size_t *n_out, char *err,
              size_t err_len)
{
    size_t nk = h->keys.n;
    int worst = LIN_LINEARIZABLE, rc = 0;

    for (size_t k = 0; k < nk; k++) {
        if (!h->init[k].set) {
            set_err(err, err_len, "key %s has no init line", h->keys.s[k]);
            return -EINVAL;
        }
    }
    struct lin_key_result *res = calloc(nk + 1, sizeof(*res));
    const struct lin_event **ops = malloc((h->n + 1) * sizeof(*ops));
    if (res == NULL || ops == NULL) {
        free(res);
        free(ops);
        return -ENOMEM;
    }
    for (size_t k = 0; k < nk && rc == 0; k++) {
        rc = check_key(h, (int)k, opts, ops, &res[k]);
        if (res[k].verdict == LIN_VIOLATION ||
            (res[k].verdict == LIN_UNKNOWN && worst != LIN_VIOLATION))
            worst = res[k].verdict;
    }
    free(ops);
    if (rc < 0) {
        free(res);
        return rc;
    }
    *out = res;
    *n_out = nk;
    return worst;
}
