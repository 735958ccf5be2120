# ipcsh: the runner (./ipcsh) and the Lua module (./interprocess.so), built
# from one set of objects.  `make SANITIZE=1 ...` builds into build-san/
# with AddressSanitizer + UndefinedBehaviorSanitizer.

PREFIX ?= /usr/local
DESTDIR ?=
LUA_PC ?= lua5.4
CC ?= cc

ifeq ($(SANITIZE),1)
B := build-san
BIN := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT := -O1
else
B := build
BIN := .
SANFLAGS :=
OPT := -O2
endif

# Missing headers or busted: run our own installer (as root) first.  A
# packager's build (LuaRocks, debian/rules) names LUA_INCDIR and is trusted.
ifneq ($(LUA_INCDIR),)
DEPS_OK := yes
else
DEPS_OK := $(shell pkg-config --exists $(LUA_PC) 2>/dev/null && command -v busted >/dev/null 2>&1 && echo yes)
endif
ifneq ($(DEPS_OK),yes)
ifneq ($(MAKECMDGOALS),clean)
$(info Lua 5.4 headers or busted are missing: running scripts/install-deps.sh)
DEPS_RUN := $(shell sh scripts/install-deps.sh >&2 && echo ok)
ifneq ($(DEPS_RUN),ok)
$(error could not install dependencies; see the message above)
endif
endif
endif

LUA_CFLAGS := $(if $(LUA_INCDIR),-I$(LUA_INCDIR),$(shell pkg-config --cflags $(LUA_PC)))

# PostgreSQL (ipc.connect) only when libpq is installed; PG=0 disables it.
ifneq ($(PG),0)
PG_OK := $(shell pkg-config --exists libpq 2>/dev/null && echo yes)
endif
ifeq ($(PG_OK),yes)
PG_CFLAGS := -DIPCSH_WITH_PG $(shell pkg-config --cflags libpq)
PG_LIBS := # libpq is dlopen()ed at the first ipc.connect (src/core/pq_dyn.h)
endif
LUA_LIBS := $(shell pkg-config --libs $(LUA_PC))

WARN := -Wall -Wextra -Werror -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wpointer-arith -Wformat=2 -Wundef -Wvla -Wno-overlength-strings
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) -g -fPIC -pthread $(WARN) $(SANFLAGS) $(PG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := -pthread $(SANFLAGS) $(LDFLAGS)

CORE_SRC := $(sort $(wildcard src/core/*.c))
LUA_SRC := $(sort $(wildcard src/lua/*.c))
RUNNER_SRC := $(sort $(wildcard src/cli/*.c)) src/ipcsh.c
LUA_PARTS := $(sort $(wildcard lua/interprocess/*.lua))

CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
LUA_OBJ := $(LUA_SRC:%.c=$(B)/%.o) $(B)/embedded.o
RUNNER_OBJ := $(RUNNER_SRC:%.c=$(B)/%.o)

.PHONY: all test bench bench-ir install uninstall clean format check-format torture fuzz fuzz-quick \
	fuzz-check valgrind model model-mutants
all: $(BIN)/ipcsh $(BIN)/interprocess.so

$(BIN)/ipcsh: $(RUNNER_OBJ) $(LUA_OBJ) $(CORE_OBJ)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) -Wl,-E $(LUA_LIBS) $(PG_LIBS) -lm -ldl

$(BIN)/interprocess.so: $(LUA_OBJ) $(CORE_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS_ALL) $(PG_LIBS)

# src/core/ is compiled without the Lua include path: it must not need it.
$(B)/src/core/%.o: src/core/%.c $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(B)/src/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LUA_CFLAGS) -c -o $@ $<

$(B)/embed: tools/embed.c
	@mkdir -p $(B)
	$(CC) -O1 -o $@ $<

$(B)/embedded.c: $(B)/embed $(LUA_PARTS)
	$(B)/embed $@ $(foreach f,$(LUA_PARTS),$(f) interprocess.$(basename $(notdir $(f))))

$(B)/embedded.o: $(B)/embedded.c
	$(CC) $(CFLAGS_ALL) $(LUA_CFLAGS) -c -o $@ $<

test: all
	sh spec/run.sh $(BIN) $(if $(filter 1,$(SANITIZE)),sanitize,plain)

# Crash torture (docs/reliability.md): >= TORTURE_KILLS (250) SIGKILLs per type.
torture: all
	IPCSH_DIR=$${IPCSH_DIR:-/dev/shm} $(BIN)/ipcsh torture/torture.lua long

# libFuzzer harnesses (fuzz/README.md; needs clang + libclang-rt-14-dev).
# make fuzz: FUZZ_SECONDS (60) per target; fuzz-quick: 5 s per target (CI);
# fuzz-check: replay fuzz/regressions/ and the seeds.
FUZZ_SECONDS ?= 60
fuzz: all
	cd fuzz && sh make_seeds.sh && $(MAKE) run FUZZ_TIME=$(FUZZ_SECONDS)

fuzz-quick: all
	cd fuzz && sh make_seeds.sh && $(MAKE) run FUZZ_TIME=5

fuzz-check: all
	cd fuzz && sh make_seeds.sh && $(MAKE) check

# valgrind memcheck of every object in one process (docs/reliability.md).
valgrind: all
	export IPCSH_DIR=$$(mktemp -d /dev/shm/ipcsh-vg.XXXXXX) && \
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
		$(BIN)/ipcsh torture/memcheck.lua && \
	LUA_CPATH="$(BIN)/?.so;;" valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
		lua5.4 torture/memcheck.lua; st=$$?; rm -rf "$$IPCSH_DIR"; exit $$st

# SPIN models of the crash-recovery protocols (models/, docs/design.md
# "Model checking"); verifiers are built under $(B)/models.
model:
	sh models/run.sh $(B)

model-mutants:
	sh models/run.sh $(B) mutants

bench: all
	sh bench/run.sh $(if $(QUICK),quick,full)

# Ir per operation pair from Lua under callgrind (noise-free), beside the
# floor and Python's multiprocessing.
bench-ir: all
	sh bench/ir.sh

# install = install-lua (runner, module, man page) + install-lib (libipcsh).
install: install-lua install-lib

install-lua: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUA_CMODDIR) $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BIN)/ipcsh $(DESTDIR)$(BINDIR)/ipcsh
	install -m 644 $(BIN)/interprocess.so $(DESTDIR)$(LUA_CMODDIR)/interprocess.so
	if [ -f docs/ipcsh.1 ]; then install -m 644 docs/ipcsh.1 $(DESTDIR)$(PREFIX)/share/man/man1/ipcsh.1; fi

uninstall: uninstall-lib
	rm -f $(DESTDIR)$(BINDIR)/ipcsh $(DESTDIR)$(LUA_CMODDIR)/interprocess.so \
		$(DESTDIR)$(PREFIX)/share/man/man1/ipcsh.1

format:
	clang-format -i $(CORE_SRC) $(LUA_SRC) $(RUNNER_SRC) src/*/*.h tools/*.c $(LIB_FORMAT)

check-format:
	clang-format --dry-run -Werror $(CORE_SRC) $(LUA_SRC) $(RUNNER_SRC) src/*/*.h tools/*.c $(LIB_FORMAT)

clean:
	rm -rf build build-san ipcsh interprocess.so

# --- libipcsh: the core for C programs (include/ipcsh.h, src/lib/) -------
# The core is compiled a second time, PIC with hidden visibility, into
# $(B)/lib/ (no Lua headers, no libpq); only ipcsh_* is exported (the
# header's IPCSH_API plus src/lib/libipcsh.map).  Outputs: $(B)/libipcsh.so*
# (`make lib`, part of `all`); ipcsh.pc is written by install-lib, with
# the PREFIX / LIBDIR / INCLUDEDIR of that install.
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LUA_CMODDIR ?= $(PREFIX)/lib/lua/5.4
LIB_VERSION := 0.1.0
LIB_SONAME := libipcsh.so.0
LIB_SRC := $(sort $(wildcard src/lib/*.c))
LIB_OBJ := $(CORE_SRC:%.c=$(B)/lib/%.o) $(LIB_SRC:%.c=$(B)/lib/%.o)
LIB_FILE := $(B)/libipcsh.so.$(LIB_VERSION)
LIB_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -g -fPIC -pthread -fvisibility=hidden -Iinclude \
	$(WARN) $(SANFLAGS) $(CFLAGS)
LIB_FORMAT := $(LIB_SRC) include/ipcsh.h $(wildcard examples/c/*.c spec/support/capi/*.c spec/support/wait/*.c spec/support/lockword/*.c)

.PHONY: lib install-lua install-lib uninstall-lib package-check
all: lib
lib: $(LIB_FILE) $(B)/$(LIB_SONAME) $(B)/libipcsh.so

$(B)/lib/%.o: %.c include/ipcsh.h $(wildcard src/core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<

$(LIB_FILE): $(LIB_OBJ) src/lib/libipcsh.map
	$(CC) -shared -o $@ $(LIB_OBJ) -Wl,-soname,$(LIB_SONAME) \
		-Wl,--version-script=src/lib/libipcsh.map -Wl,--no-undefined $(LDFLAGS_ALL)

$(B)/$(LIB_SONAME) $(B)/libipcsh.so: $(LIB_FILE)
	ln -sf $(notdir $(LIB_FILE)) $@

install-lib: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(LIB_FILE) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(LIB_FILE)) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libipcsh.so
	install -m 644 include/ipcsh.h $(DESTDIR)$(INCLUDEDIR)/ipcsh.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(LIB_VERSION)|g' \
		src/lib/ipcsh.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/ipcsh.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/ipcsh.pc

uninstall-lib:
	rm -f $(DESTDIR)$(LIBDIR)/$(notdir $(LIB_FILE)) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME) \
		$(DESTDIR)$(LIBDIR)/libipcsh.so $(DESTDIR)$(INCLUDEDIR)/ipcsh.h \
		$(DESTDIR)$(PKGCONFIGDIR)/ipcsh.pc

# Slow packaging checks (CI runs them once): .deb build + lintian, luarocks.
package-check:
	sh scripts/package-check.sh
