# Thin wrapper over meson. `make run` and `make test` work on a fresh Debian
# machine: they install missing Debian packages first (apt-get; sudo when not
# root).

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
ARGS ?=

DEBS = meson ninja-build pkg-config gcc clang libclang-rt-14-dev \
       libevent-dev liburing-dev liblmdb-dev libcmocka-dev libxxhash-dev

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test test-plain test-asan test-fuzz install clean

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
# with warnings as errors, then each libFuzzer target briefly.
test: deps test-plain test-asan test-fuzz

test-plain: $(BUILD)/build.ninja
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs --no-suite fuzz

test-asan:
	[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) \
	  -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true -Dbuildtype=debug
	ninja -C $(ASAN_BUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --no-suite fuzz --timeout-multiplier 3

test-fuzz:
	[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) \
	  -Dfuzz=true -Dgpu=disabled -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C $(FUZZ_BUILD)
	FUZZ_SECONDS=$(FUZZ_SECONDS) meson test -C $(FUZZ_BUILD) --print-errorlogs --suite fuzz

install: build
	meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
