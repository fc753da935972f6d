/*
 * fuzz.h — what the libFuzzer targets in test/fuzz/ share (util.c): a
 * bounded reader that splits one fuzz input into the values a target needs,
 * a private temporary directory, and the quiet logger that replaces
 * common/log.c in the fuzz build (ZK_FUZZ_LOG=1 turns lines back on).
 *
 * A target aborts (FZ_CHECK) when an invariant of the code under test is
 * broken — a round trip that does not give back what went in, a decoder
 * that accepted what its encoder cannot say — so that libFuzzer records
 * the input like any crash.
 */
#ifndef ZK_FUZZ_H
#define ZK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CHECK(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,     \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

/* A reader over the fuzz input: takes past the end give zeros. */
struct fz {
    const uint8_t *p;
    size_t left;
};

uint8_t fz_u8(struct fz *f);
uint16_t fz_u16(struct fz *f);
uint32_t fz_u32(struct fz *f);
/* Up to max bytes (a length read from the input, then the bytes): *len is
 * what was actually taken; the pointer is into the input. */
const uint8_t *fz_bytes(struct fz *f, size_t max, size_t *len);

/* A consensus core for member id of fuzz_peer's ensemble: members 1..5,
 * 4 and 5 observers, small limits, a seed fixed per member. The seed
 * generator and fuzz_peer must build member 2 exactly alike, or the seeds
 * (what member 2 hears) would not replay. */
struct zk_zab;
struct zk_zab *fz_core(uint32_t id);

/* A fresh directory under $TMPDIR (or /tmp), removed at exit. Exits the
 * process if it cannot be made. */
const char *fz_tmpdir(const char *tag);

#endif /* ZK_FUZZ_H */
