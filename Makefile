# Thin wrapper over meson. `make run` and `make test` work on a fresh Debian
# machine: they install missing Debian packages first (apt-get; sudo when not
# root).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
ARGS ?=

DEBS = meson ninja-build pkg-config gcc clang libclang-rt-14-dev \
       libevent-dev liburing-dev liblmdb-dev libcmocka-dev libxxhash-dev \
       python3-numpy python3-pytest python3-torch \
       libhiredis-dev libssl-dev redis-server e2fsprogs mount util-linux

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test test-plain test-python test-asan test-tsan test-fuzz bench bench-deps bench-sets bench-recall example-pytorch install clean

# Debian's python3-torch installs for /usr/bin/python3 (not a pyenv python).
PY ?= /usr/bin/python3

all: build

deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Build and start simcached in the foreground with its embedded defaults.
run: build
	./$(BUILD)/cached/simcached $(ARGS)

# The test command (README, .ci/run): as shipped, then under ASan + UBSan
# with warnings as errors, then under ThreadSanitizer, then each libFuzzer
# target briefly.
test: deps test-plain test-python test-asan test-tsan test-fuzz

test-plain: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs --no-suite fuzz

# The Python binding against the plain build (the ASan build's library would
# need libasan preloaded into Python); its struct layouts against the C
# compiler's, printed by simcache-layout-dump.
test-python: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	SIMCACHE_LIB=$(BUILD)/client/libsimcache-client.so SIMCACHE_DAEMON=$(BUILD)/cached/simcached \
	  SIMCACHE_LAYOUT_DUMP=$(BUILD)/client/simcache-layout-dump \
	  $(PY) -m pytest -q -p no:cacheprovider client/python/tests

# The PyTorch reuse example (examples/pytorch/README.md), with and without simcache.
example-pytorch: build
	examples/pytorch/run.sh

test-asan:
	[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) \
	  -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true -Dbuildtype=debug
	ninja -C $(ASAN_BUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --no-suite fuzz --timeout-multiplier 3

# ThreadSanitizer over the unit and integration tests (not fuzz). The
# daemons the integration tests start inherit TSAN_OPTIONS; every report, of
# whichever process, is written under $(TSAN_BUILD)/tsan-reports (a daemon's
# own log goes with its temp dir) and fails the target. tests/tsan.supp
# lists the reports we know to be false, each with its reason.
TSAN_REPORTS = $(CURDIR)/$(TSAN_BUILD)/tsan-reports
TSAN_OPTIONS_ALL = halt_on_error=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp:log_path=$(TSAN_REPORTS)/report

test-tsan:
	[ -f $(TSAN_BUILD)/build.ninja ] || meson setup $(TSAN_BUILD) \
	  -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debug
	ninja -C $(TSAN_BUILD)
	rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	TSAN_OPTIONS="$(TSAN_OPTIONS_ALL)" SIMCACHE_TEST_SKIP_HUGE=1 \
	  meson test -C $(TSAN_BUILD) --print-errorlogs --no-suite fuzz --timeout-multiplier 3; \
	rc=$$?; \
	if ls $(TSAN_REPORTS)/report.* >/dev/null 2>&1; then \
	  cat $(TSAN_REPORTS)/report.*; echo "test-tsan: ThreadSanitizer reports above"; rc=1; \
	fi; \
	exit $$rc

test-fuzz:
	[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) \
	  -Dfuzz=true -Dgpu=disabled -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C $(FUZZ_BUILD)
	FUZZ_SECONDS=$(FUZZ_SECONDS) meson test -C $(FUZZ_BUILD) --print-errorlogs --suite fuzz

# Benchmarks (docs/benchmarks.md): each prints its figures and its anchor's
# (Redis, memcpy, FAISS, fio) measured in the same run, as ratios.
BENCH_DEBS = g++ libfaiss-dev libopenblas-openmp-dev gnuplot-nox fio \
             python3-sklearn python3-scipy python3-matplotlib manpages manpages-dev python3.11-doc
SETS ?= /var/tmp/simcache-sets

# What the benchmarks need beyond the build (FAISS, fio, plotting, the
# corpora of the real-text sets).
bench-deps: build
	@missing=""; for p in $(BENCH_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	  meson setup --reconfigure $(BUILD); ninja -C $(BUILD); \
	fi

bench: bench-deps
	meson test -C $(BUILD) --benchmark --suite bench --verbose --timeout-multiplier 0

# Real-text embedding sets for bench_recall (docs/benchmarks.md, "Index"):
# Debian's man pages, Python documentation and changelogs, three embedding
# methods, in $(SETS). About 15 minutes here; each set is made once.
bench-sets: bench-deps
	@for spec in "man srp 1024 60000 shuffle" "man lsa 1024 60000 shuffle" \
	    "pydoc wordmean 1024 36000 shuffle" "man wordmean 384 60000 shuffle" \
	    "debdoc srp 384 18000 shuffle" "man srp 2048 100000 shuffle" \
	    "pydoc wordmean 1024 36000 topic" "man srp 384 250000 topic" \
	    "man wordmean 384 200000 topic"; do \
	  set -- $$spec; out=$(SETS)/$$1-$$2-$$3$$([ $$5 = topic ] && echo -topic); \
	  [ -f $$out/base.fvecs ] || $(PY) bench/realtext/make_sets.py --corpus $$1 --embed $$2 \
	    --dim $$3 --base $$4 --queries 2000 --order $$5 --out $$out || exit 1; \
	done

# The real-text recall benchmark on those sets, then under churn; CSV and
# plots in $(BUILD)/bench.
bench-recall: bench-sets
	S=$(SETS); ./$(BUILD)/bench/bench_recall --csv $(BUILD)/bench/bench_recall.csv \
	  --set $$S/man-srp-1024 --set $$S/man-lsa-1024 --set $$S/pydoc-wordmean-1024 \
	  --set $$S/man-wordmean-384 --set $$S/debdoc-srp-384 --set $$S/man-srp-2048
	S=$(SETS); ./$(BUILD)/bench/bench_recall --csv $(BUILD)/bench/bench_churn.csv --churn-only \
	  --set $$S/pydoc-wordmean-1024-topic --set $$S/man-srp-384-topic \
	  --set $$S/man-wordmean-384-topic --churn 512 --churn 100000
	$(PY) bench/plot_recall.py $(BUILD)/bench/bench_recall.csv $(BUILD)/bench/bench_churn.csv \
	  --out $(BUILD)/bench

# ldconfig: so that the Python binding (ctypes find_library) and programs
# linked with -lsimcache-client find the library just installed.
install: build
	meson install -C $(BUILD)
	$(SUDO) ldconfig

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
