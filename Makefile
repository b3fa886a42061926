# ptorrent build. `make` builds build/ptorrent; see README.md for the other targets.
#
# Build variants live in their own directories so they never mix objects:
#   build/        normal (-O2 -g)
#   build/asan/   AddressSanitizer + UndefinedBehaviorSanitizer
#   build/tsan/   ThreadSanitizer

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
SAN     ?=
WERROR  ?=

PKGS    := libcurl libcrypto
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wwrite-strings -Wformat=2 -Wundef -Wvla
UNAME_S := $(shell uname -s)
# _POSIX_C_SOURCE hides BSD/GNU extensions we use with fallbacks (pwritev,
# posix_fadvise are POSIX; MSG_NOSIGNAL, SO_NOSIGPIPE are checked with #ifdef).
FEATURES := -D_POSIX_C_SOURCE=200809L
ifeq ($(UNAME_S),Linux)
FEATURES += -D_DEFAULT_SOURCE
endif
ifneq ($(filter FreeBSD OpenBSD NetBSD DragonFly Darwin,$(UNAME_S)),)
FEATURES += -D__BSD_VISIBLE=1 -D_DARWIN_C_SOURCE
endif

OPT     := -O2 -g
ifneq ($(SAN),)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SAN) -fno-sanitize-recover=all
endif
ifneq ($(WERROR),)
WARN    += -Werror
endif

CFLAGS  ?=
LDFLAGS ?=
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lcurl -lcrypto)
CUNIT_LIBS := $(shell pkg-config --libs cunit 2>/dev/null || echo -lcunit)
ALL_CFLAGS := -std=c11 $(FEATURES) $(OPT) $(WARN) -pthread -MMD -MP -Isrc $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(OPT) -pthread $(LDFLAGS)

SRCS      := $(wildcard src/*.c)
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
LIB_OBJS  := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_OBJS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%.o) $(BUILD)/tests/support.o
SUITES    := $(basename $(notdir $(filter-out tests/test_main.c,$(TEST_SRCS))))

BIN       := $(BUILD)/ptorrent
TEST_BIN  := $(BUILD)/test_runner

.PHONY: all test e2e check asan tsan demo bench bench-quick install clean fmt deps
all: $(BIN)

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libptorrent.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/libptorrent.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The test runner learns its suites from the file names: tests/test_foo.c must
# define `int test_foo_register(void)`. See tests/test_main.c.
$(BUILD)/tests/suites.h: $(TEST_SRCS) | $(BUILD)/tests
	@for s in $(SUITES); do echo "SUITE($$s)"; done > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp

$(BUILD)/tests/test_main.o: $(BUILD)/tests/suites.h
$(BUILD)/tests/%.o: tests/%.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -I$(BUILD)/tests -Itests -c -o $@ $<

$(TEST_BIN): $(TEST_OBJS) $(BUILD)/libptorrent.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CUNIT_LIBS) $(PKG_LIBS)

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

deps:
	@scripts/deps.sh

test: $(TEST_BIN) $(BIN)
	cd tests && PTORRENT=$(abspath $(BIN)) ../$(TEST_BIN)

e2e: $(BIN)
	PTORRENT=$(abspath $(BIN)) tests/e2e/run.sh

# The README's test command: dependencies, build, unit suites, end-to-end
# suites, and (outside sanitizer builds, where timings mean nothing) the
# benchmark's smoke test: every client downloads, every cmp passes.
check: deps
	$(MAKE) all
	$(MAKE) test
	$(MAKE) e2e
ifeq ($(SAN),)
	$(MAKE) bench-quick
endif

bench-quick: $(BIN)
	PTORRENT=$(abspath $(BIN)) scripts/bench.sh --quick --no-build

asan: deps
	$(MAKE) BUILD=build/asan SAN=address,undefined check

tsan: deps
	$(MAKE) BUILD=build/tsan SAN=thread check

demo: deps
	$(MAKE) all
	PTORRENT=$(abspath $(BIN)) scripts/demo.sh

bench: deps
	$(MAKE) all
	scripts/bench.sh

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ptorrent

fmt:
	clang-format -i src/*.c src/*.h tests/*.c

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d)
