/*
 * lincheck.h — a linearizability checker for histories of operations on
 * versioned registers (zkfs files): whole-file writes, conditional writes
 * (`zkfs set -v`), reads after `zkfs sync` and version reads (stat after
 * sync). Used by test/integration/t_ens_linear.sh (through the CLI,
 * test/lin/main.c) and by the unit suite `lincheck`.
 *
 * The search is Wing and Gong's, with Lowe's just-in-time linearization
 * and memoization of (set of linearized operations, model state), one
 * register at a time (P-compositionality: a history is linearizable iff
 * the sub-history of each key is). An indeterminate operation (it timed
 * out or failed with an error that does not say whether it took effect)
 * has no completion: it may linearize at any point after its invocation,
 * or never.
 *
 * History text, one operation per line (blank lines and '#' comments are
 * skipped):
 *
 *   init KEY VALUE VERSION
 *   PROC ID T0 T1 KEY OP ARG1 ARG2 STATUS RET
 *
 * PROC and ID are non-negative integers; a later line with the same
 * (PROC, ID) replaces an earlier one (a client writes a line before it
 * invokes an operation, with T1 '-' and STATUS info, and one when it
 * completes). T0 and T1 are nanoseconds on one clock. OP and its fields:
 *
 *   w   VALUE -       write of VALUE; ok | info
 *   cas VER   VALUE   write of VALUE if the version is VER; ok with RET the
 *                     new version, bad (the version differed), info
 *   r   -     -       read; ok with RET the value read, or <absent> when
 *                     the file did not exist
 *   v   -     -       version read; ok with RET the version
 *   c   VALUE -       exclusive create of the file holding VALUE (version
 *                     0); ok, bad (it existed), info
 *   d   -     -       delete; ok, bad (it did not exist), info
 *
 * STATUS fail means the operation certainly had no effect: it is dropped,
 * as are reads and version reads that did not succeed. Tokens are at most
 * LIN_TOKEN_MAX bytes without white space.
 */
#ifndef LINCHECK_H
#define LINCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LIN_TOKEN_MAX 63
#define LIN_T_INF     INT64_MAX
#define LIN_ABSENT    UINT32_MAX  /* the value of a file that does not exist */

enum lin_op { LIN_W, LIN_CAS, LIN_R, LIN_V, LIN_C, LIN_D };
enum lin_status { LIN_OK, LIN_BAD, LIN_INFO, LIN_FAIL };
enum lin_verdict { LIN_LINEARIZABLE, LIN_VIOLATION, LIN_UNKNOWN };

struct lin_event {
    int proc;
    int64_t id;
    int64_t t0, t1;            /* t1 = LIN_T_INF when indeterminate */
    int key;                   /* index into the history's key table */
    enum lin_op op;
    enum lin_status status;
    uint32_t value;            /* value written (w, cas, c) or read (r);
                                  LIN_ABSENT: read "<absent>" */
    uint32_t ver;              /* cas: expected version; v: version read */
    uint32_t new_ver;          /* cas ok: the version it reported */
    int line;                  /* line in the input, for messages */
};

struct lin_history;

/* A new empty history. NULL when out of memory. */
struct lin_history *lin_history_new(void);
void lin_history_free(struct lin_history *h);

/* Adds the lines of f (name is used in messages) to h. Returns 0, or
 * -EINVAL with a "NAME:LINE: reason" message in err (size err_len) for a
 * malformed line, -ENOMEM. */
int lin_history_read(struct lin_history *h, FILE *f, const char *name,
                     char *err, size_t err_len);

/* The same for a string of lines (unit tests). */
int lin_history_parse(struct lin_history *h, const char *text, char *err,
                      size_t err_len);

struct lin_key_result {
    const char *key;
    size_t ops, info, dropped;
    enum lin_verdict verdict;
    uint64_t steps;            /* search steps taken */
    size_t cache;              /* (linearized set, state) pairs memoized */
};

struct lin_options {
    uint64_t steps_max;        /* per key; 0 = LIN_STEPS_MAX_DEFAULT */
    FILE *explain;             /* where a violation's minimal part goes */
    size_t explain_max;        /* print at most its last N operations;
                                  0 = all */
};

#define LIN_STEPS_MAX_DEFAULT 20000000ULL

/* Checks every key of h. Writes one result per key into *out (a new
 * array of *n_out results, freed with free(); the key names live as long
 * as h). Returns the worst verdict (VIOLATION over UNKNOWN over
 * LINEARIZABLE), or -ENOMEM, or -EINVAL (a key without an init line; a
 * message in err). With opts->explain set, each violation is followed by
 * its minimal non-linearizable part, printed there. */
int lin_check(struct lin_history *h, const struct lin_options *opts,
              struct lin_key_result **out, size_t *n_out, char *err,
              size_t err_len);

/* How many operations h holds (after replacement by (PROC, ID)). */
size_t lin_history_ops(const struct lin_history *h);

const char *lin_verdict_name(enum lin_verdict v);

#endif /* LINCHECK_H */
