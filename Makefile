# Postern: build, run, test and install.
#
#   make              release build (target/release/postern)
#   make run          build, then run a quickstart mail proxy in the foreground
#   make test         install test prerequisites, cargo build/test, prove t/
#   make install      binary, systemd unit, default config, man page
#   make bench        benchmarks side by side with stock nginx (BENCH_ARGS=--quick)
#   make lint         cargo fmt --check and clippy with warnings denied
#   make fuzz         every fuzz target for FUZZ_SECONDS each
#
# Default paths are compiled in, like nginx's ./configure options:
#   make PREFIX=/usr/local/postern CONF_PATH=conf/postern.conf \
#        PID_PATH=logs/postern.pid ERROR_LOG_PATH=logs/error.log \
#        LOCK_PATH=logs/postern.lock
# Relative paths are relative to PREFIX; ERROR_LOG_PATH=stderr is allowed.

PREFIX         ?= /usr/local/postern
CONF_PATH      ?= conf/postern.conf
PID_PATH       ?= logs/postern.pid
ERROR_LOG_PATH ?= logs/error.log
LOCK_PATH      ?= logs/postern.lock

DESTDIR        ?=
SBINDIR        ?= $(PREFIX)/sbin
MANDIR         ?= /usr/local/share/man
SYSTEMDDIR     ?= /etc/systemd/system

CARGO          ?= cargo
FUZZ_SECONDS   ?= 60

# Paths as the binary resolves them (relative ones under PREFIX).
abs = $(if $(filter /%,$(1)),$(1),$(PREFIX)/$(1))
CONF_FILE      := $(call abs,$(CONF_PATH))
PID_FILE       := $(call abs,$(PID_PATH))

export POSTERN_PREFIX         = $(PREFIX)
export POSTERN_CONF_PATH      = $(CONF_PATH)
export POSTERN_PID_PATH       = $(PID_PATH)
export POSTERN_ERROR_LOG_PATH = $(ERROR_LOG_PATH)
export POSTERN_LOCK_PATH      = $(LOCK_PATH)

# Packages the build needs on Debian: the toolchain's C side for the -sys
# crates, the system OpenSSL and c-ares; `make test` adds what t/ needs.
BUILD_PACKAGES = gcc libc6-dev pkg-config libssl-dev libc-ares-dev
# The quickstart's backend: Dovecot for IMAP and POP3, and curl to try it.
RUN_PACKAGES   = dovecot-imapd dovecot-pop3d curl perl openssl
# Stock nginx with its mail module, the reference `make bench` compares with.
BENCH_PACKAGES = nginx-light libnginx-mod-mail perl libio-socket-ssl-perl openssl
TEST_PACKAGES  = $(BUILD_PACKAGES) openssl perl procps \
                 libio-socket-ssl-perl libnet-ssleay-perl \
                 softhsm2 libengine-pkcs11-openssl opensc

RUN_DIR        = $(CURDIR)/target/quickstart
SUDO           = $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all build build-deps run run-deps bench test test-deps install lint fuzz clean

all: build

build: build-deps
	$(CARGO) build --release

run: build run-deps
	docs/quickstart/run.sh $(CURDIR)/target/release/postern $(RUN_DIR)

bench: build
	$(call apt_install,$(BENCH_PACKAGES))
	perl t/bench/bench.pl $(BENCH_ARGS)

run-deps:
	$(call apt_install,$(RUN_PACKAGES))

# Install whichever of the packages named in $(1) are missing.
define apt_install
	@missing=""; \
	for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	        || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

build-deps:
	$(call apt_install,$(BUILD_PACKAGES))

test-deps:
	$(call apt_install,$(TEST_PACKAGES))

test: test-deps
	$(CARGO) build
	$(CARGO) test
	TEST_POSTERN_MAIL=1 TEST_POSTERN_TLS=1 TEST_POSTERN_BINARY=$(CURDIR)/target/debug/postern prove -j2 -I t/lib t/

install: build
	install -d $(DESTDIR)$(SBINDIR)
	install -m 755 target/release/postern $(DESTDIR)$(SBINDIR)/postern
	install -d $(DESTDIR)$(dir $(CONF_FILE)) $(DESTDIR)$(PREFIX)/logs
	@if [ -e $(DESTDIR)$(CONF_FILE) ]; then \
	    echo "keeping existing $(DESTDIR)$(CONF_FILE)"; \
	else \
	    install -m 644 docs/postern.conf $(DESTDIR)$(CONF_FILE); \
	fi
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed -e 's|@SBIN@|$(SBINDIR)/postern|g' -e 's|@PID_FILE@|$(PID_FILE)|g' \
	    docs/postern.service > $(DESTDIR)$(SYSTEMDDIR)/postern.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/postern.service
	install -d $(DESTDIR)$(MANDIR)/man8
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@CONF_FILE@|$(CONF_FILE)|g' \
	    -e 's|@PID_FILE@|$(PID_FILE)|g' docs/postern.8 > $(DESTDIR)$(MANDIR)/man8/postern.8
	chmod 644 $(DESTDIR)$(MANDIR)/man8/postern.8

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the
# stable toolchain we have.
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@set -e; for f in fuzz/fuzz_targets/*.rs; do \
	    t=$$(basename $$f .rs); \
	    echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	    RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS); \
	done

clean:
	$(CARGO) clean
