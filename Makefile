# zkfs — plain GNU Makefile, dependencies found with pkg-config.
#
#   make            build build/zkfs, build/zkfs-sim and the test programs
#   make check      install missing packages, then run every test suite
#   make run        install missing packages, build, mount a standalone replica
#   make sim        run a few hundred simulator seeds
#   make mutate     mutation testing: dangerous changes to the core and driver
#                   must each be caught by the simulator or the unit tests
#   make SAN=asan   the same targets built with ASan+UBSan into build-asan/
#   make SAN=tsan   ... with TSan into build-tsan/
#   make fuzz       libFuzzer targets (test/fuzz/fuzz_*.c) built with clang,
#                   ASan and UBSan into build-fuzz/ (scripts/fuzz.sh runs them)
#   make install    (and uninstall) PREFIX=/usr/local DESTDIR=: dist/install.mk
#   make deb        a Debian package, build/zkfs_VERSION_ARCH.deb (scripts/mkdeb.sh)
#
# The consensus core (replica/zab*.c, common/common.c) and its driver
# (replica/driver.c, replica/lease.c) are compiled against
# "poison" copies of the libuv, LMDB and FUSE headers that stop the build with
# #error, so an include of any of them from the core cannot slip in.

CC      ?= gcc
SAN     ?=
PKGS    := fuse3 libuv lmdb libzstd zlib libsodium
ifeq ($(SAN),)
B       := build
SANFLAGS :=
else ifeq ($(SAN),asan)
B       := build-asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SAN),tsan)
B       := build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else
$(error SAN must be empty, asan or tsan)
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral
OPT     ?= -O2 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARN) $(OPT) \
               $(SANFLAGS) -Iinclude -MMD -MP
# Deferred (=) so that `make check` can install packages before pkg-config runs.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS)) -lpthread
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS   = $(shell pkg-config --libs check)

# common/: errors, assertions and logging, below every other module (the
# core links common.c; the logger, log.c, is for the runtime, store and fs).
CORE_SRCS    := common/common.c $(sort $(wildcard replica/zab*.c)) \
                replica/driver.c replica/lease.c
COMMON_SRCS  := $(filter-out $(CORE_SRCS),$(sort $(wildcard common/*.c)))
RUNTIME_SRCS := $(filter-out $(CORE_SRCS),$(sort $(wildcard replica/*.c)))
STORE_SRCS   := $(sort $(wildcard store/*.c))
FS_SRCS      := $(filter-out fs/main.c,$(sort $(wildcard fs/*.c)))
SIM_SRCS     := $(filter-out test/sim/main.c,$(sort $(wildcard test/sim/*.c)))
UNIT_SRCS    := $(sort $(wildcard test/unit/test_*.c))
BENCH_SRCS   := $(sort $(wildcard bench/*.c))
# The linearizability checker (test/lin/): a library for the unit suite
# and the lincheck command for t_ens_linear.
LIN_OBJS     := $(B)/obj/test/lin/lincheck.o

CORE_OBJS    := $(CORE_SRCS:%.c=$(B)/obj/%.o)
LIB_OBJS     := $(CORE_OBJS) $(COMMON_SRCS:%.c=$(B)/obj/%.o) \
                $(RUNTIME_SRCS:%.c=$(B)/obj/%.o) \
                $(STORE_SRCS:%.c=$(B)/obj/%.o) $(FS_SRCS:%.c=$(B)/obj/%.o)
SIM_OBJS     := $(SIM_SRCS:%.c=$(B)/obj/%.o)
UNIT_OBJS    := $(UNIT_SRCS:%.c=$(B)/obj/%.o) $(B)/obj/test/unit/main.o \
                $(B)/obj/test/unit/store_fx.o
UNIT_NAMES   := $(patsubst test/unit/test_%.c,%,$(UNIT_SRCS))
BENCH_BINS   := $(BENCH_SRCS:bench/%.c=$(B)/bench/%)

POISON_HDRS  := lmdb.h uv.h fuse.h fuse_lowlevel.h fuse3/fuse.h fuse3/fuse_lowlevel.h
POISON       := $(addprefix $(B)/poison/,$(POISON_HDRS))

.PHONY: all check run sim mutate deps deps-tests unit integration bench clean \
        fuzz fuzz-seeds deb
all: $(B)/zkfs $(B)/zkfs-sim $(B)/zkfs-unit $(BENCH_BINS) $(B)/test/fsfuzz \
     $(B)/test/probe $(B)/test/notify_listen $(B)/test/gone \
     $(B)/test/versions $(B)/test/linclient $(B)/test/lincheck \
     $(B)/test/fdscript $(B)/test/truncseek $(B)/test/lockrace

deps:
	@scripts/deps.sh
deps-tests:
	@scripts/deps.sh --tests

check: deps-tests
	@scripts/check.sh

run: deps
	@$(MAKE) --no-print-directory $(B)/zkfs
	$(B)/zkfs mount

sim: $(B)/zkfs-sim
	$(B)/zkfs-sim --seed 1 --seeds 300

mutate: deps-tests
	@scripts/mutate.sh

unit: $(B)/zkfs-unit
	$(B)/zkfs-unit

bench: all
	bench/run.sh

# --- objects ---------------------------------------------------------------

$(POISON):
	@mkdir -p $(dir $@)
	@printf '#error "the consensus core must not include %s (see Makefile)"\n' $(notdir $@) > $@

$(CORE_OBJS): $(B)/obj/%.o: %.c | $(POISON)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -I$(B)/poison -I$(B)/poison/fuse3 -c $< -o $@

$(filter-out $(CORE_OBJS),$(LIB_OBJS)) $(SIM_OBJS) $(B)/obj/test/sim/main.o \
$(B)/obj/fs/main.o $(LIN_OBJS) $(B)/obj/test/lin/main.o: $(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# Every test file sees the prototypes of all suite constructors.
$(B)/obj/test/unit/%.o: test/unit/%.c $(B)/suites.inc
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) $(CHECK_CFLAGS) -I$(B) \
	    -include $(B)/suites_proto.h -c $< -o $@

$(B)/suites.inc: $(UNIT_SRCS) Makefile
	@mkdir -p $(dir $@)
	@printf 'ZK_SUITE(%s)\n' $(UNIT_NAMES) > $@.tmp && mv $@.tmp $@
	@{ echo '#include <check.h>'; \
	   printf 'Suite *%s_suite(void);\n' $(UNIT_NAMES); } > $(B)/suites_proto.h

# --- programs --------------------------------------------------------------

$(B)/libzk.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libzkcore.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/zkfs: $(B)/obj/fs/main.o $(B)/libzk.a
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The simulator runs the runtime's driver (replica/driver.c, with the
# lease, replica/lease.c; both pure, in libzkcore.a) as well, the
# lock table's rules (store/lock_tab.c, pure) and the linearizability
# checker (test/lin/), which checks its clients' history.
$(B)/zkfs-sim: $(B)/obj/test/sim/main.o $(SIM_OBJS) $(B)/obj/store/lock_tab.o \
               $(LIN_OBJS) $(B)/libzkcore.a
	$(CC) $(SANFLAGS) -o $@ $^ -lm

$(B)/zkfs-unit: $(UNIT_OBJS) $(SIM_OBJS) $(LIN_OBJS) $(B)/libzk.a
	$(CC) $(SANFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS) -lm

$(B)/bench/%: bench/%.c $(B)/libzk.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(B)/libzk.a $(PKG_LIBS) -lm

# The syscall fuzzer is a plain client of a mount: no FUSE, no zkfs code.
$(B)/test/fsfuzz: test/fuzz/fsfuzz.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $<

$(B)/test/lincheck: $(B)/obj/test/lin/main.o $(LIN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $^

# The integration tests' own small programs (test/integration/helpers/),
# built with the project's flags instead of by each test.
$(B)/test/%: test/integration/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -o $@ $<

# --- coverage-guided fuzzing (clang's libFuzzer) -----------------------------
# Every library object is compiled again with clang's coverage
# instrumentation (fuzzer-no-link) and the sanitizers; each target links
# its own LLVMFuzzerTestOneInput with libFuzzer's main. The core's poison
# headers are not needed here: the plain build already proves the boundary.

FUZZ_CC     ?= clang
FB          := build-fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARN) -O1 -g \
              $(FUZZ_SAN) -fsanitize=fuzzer-no-link -Iinclude -MMD -MP \
              $(PKG_CFLAGS)
FUZZ_SRCS   := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZ_BINS   := $(FUZZ_SRCS:test/fuzz/%.c=$(FB)/%)
FUZZ_LIB_OBJS := $(patsubst $(B)/obj/%,$(FB)/obj/%,\
                 $(filter-out $(B)/obj/common/log.o,$(LIB_OBJS)))

fuzz: $(FUZZ_BINS)

.SECONDARY: $(FUZZ_SRCS:%.c=$(FB)/obj/%.o) $(FB)/obj/test/fuzz/util.o

$(FB)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Istore -Ireplica -Ifs -c $< -o $@

$(FB)/libzk.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FB)/fuzz_%: $(FB)/obj/test/fuzz/fuzz_%.o $(FB)/obj/test/fuzz/util.o \
              $(FB)/libzk.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm

# The seed corpora in test/fuzz/corpus/ come from the encoders.
$(FB)/mkseeds: $(FB)/obj/test/fuzz/mkseeds.o $(FB)/obj/test/fuzz/util.o \
               $(FB)/libzk.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -o $@ $^ $(PKG_LIBS) -lm

fuzz-seeds: $(FB)/mkseeds $(FB)/fuzz_store
	$(FB)/mkseeds test/fuzz/corpus
	@mkdir -p test/fuzz/corpus/store
	ZK_FUZZ_STORE_SEEDS=test/fuzz/corpus/store $(FB)/fuzz_store -runs=0 \
	    2>/dev/null

deb: deps
	@scripts/mkdeb.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz build-deb

include dist/install.mk

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
ifneq ($(filter fuzz fuzz-seeds build-fuzz/%,$(MAKECMDGOALS)),)
-include $(shell find $(FB)/obj -name '*.d' 2>/dev/null)
endif
