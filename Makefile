# gxinetd — build, run, test.
GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
SBINDIR  ?= $(PREFIX)/sbin
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR  ?= /lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/gxinetd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/gxinetd/gxinetd/internal/daemon.Version=$(VERSION)
TESTFLAGS ?= -count=1 -timeout 15m
FUZZTIME ?= 30s

.PHONY: all build run ctf-jail test unit e2e race fuzz bench lint install uninstall clean man-check attack

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o gxinetd ./cmd/gxinetd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o xconv ./cmd/xconv

# Foreground daemon on examples/: unprivileged 127.0.0.1 ports, logs on stderr.
run: build ctf-jail
	./gxinetd -f examples/xinetd.conf -dontfork -stayalive -filelog /dev/stderr

# The jail of the CTF example (examples/xinetd.d/ctf, docs/sandbox.md): the
# challenge built static, its flag, and the directories the sandbox mounts
# over. Owned by whoever builds it, so a root daemon wants root to build it.
CTF := examples/ctf/jail
ctf-jail:
	mkdir -p $(CTF)/proc $(CTF)/tmp
	chmod 0755 $(CTF) $(CTF)/proc $(CTF)/tmp
	CGO_ENABLED=0 GOFLAGS="$(filter-out -race,$(GOFLAGS))" $(GO) build -trimpath -o $(CTF)/chal ./examples/ctf/challenge
	install -m 0644 examples/ctf/flag.txt $(CTF)/flag.txt

# Every test: unit, golden, fuzz seeds, end-to-end (the e2e package builds the binaries itself).
# The spawner again as a build without cgo would start servers (Go's fork
# and the exec helper instead of the clone path).
test: lint man-check
	$(GO) test $(TESTFLAGS) ./...
	CGO_ENABLED=0 $(GO) test $(TESTFLAGS) ./spawn

unit:
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v /e2e)

e2e:
	$(GO) test $(TESTFLAGS) -v ./e2e/...

# Every test again with the race detector, in the tests and in the gxinetd
# the e2e suite builds (GOFLAGS reaches its go build). A daemon's race
# report goes to RACEDIR, and any report fails the target. RACEDIR is
# this checkout's own: a second checkout's make race beside this one must
# neither delete these reports nor fail on its.
RACEDIR ?= /tmp/gxinetd-race-$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)
race:
	rm -rf $(RACEDIR) && mkdir -p $(RACEDIR)
	GOFLAGS=-race GORACE='log_path=$(RACEDIR)/report' $(GO) test $(TESTFLAGS) ./...
	@if ls $(RACEDIR)/report.* >/dev/null 2>&1; then cat $(RACEDIR)/report.*; echo "data races reported"; exit 1; fi

# The attack suite (GitHub issue 13): connection floods, 5,000 idle
# connections, descriptor limits, UDP floods from 140,000 sources,
# malformed input, a stopped daemon, a SIGHUP storm, 10,000 services, a
# server replaced while running. As root; about 3 minutes on 2 cores,
# every test bounded in count and time. The smaller regression tests of
# the issue also run in `make test`.
ATTACKS ?= TestAttack|TestRefusalLogsBounded|TestDatagramBuiltinNotSwitchedOff|TestBacklogDrainAfterStop|TestDescriptorReserve|TestIdentOnRefusalBounded|TestNoDescriptorsOncePerInterval|TestIdleTimeoutEveryPath|TestMetricsOnlyItsPath|TestOwnershipCheckedAtEveryStart|TestUnsafeServerRefusalsBounded
attack:
	GXINETD_ATTACK=1 $(GO) test -count=1 -timeout 20m -v -run '^($(ATTACKS))' ./e2e

# Run each fuzz target for FUZZTIME (go test allows one -fuzz target per package and run).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null)); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Manual pages must render without warnings.
man-check:
	@for m in docs/*.[1-8]; do \
	  [ -f "$$m" ] || continue; \
	  w=$$(MANWIDTH=80 man --warnings -l "$$m" 2>&1 >/dev/null); \
	  if [ -n "$$w" ]; then echo "$$m:"; echo "$$w"; exit 1; fi; \
	done

# The unit runs the binary where this install puts it: its paths are
# generated from SBINDIR (so from PREFIX), never assumed.
install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 gxinetd $(DESTDIR)$(SBINDIR)/gxinetd
	install -m 0755 xconv $(DESTDIR)$(BINDIR)/xconv
	install -m 0644 docs/gxinetd.8 $(DESTDIR)$(MANDIR)/man8/gxinetd.8
	install -m 0644 docs/gxinetd.conf.5 $(DESTDIR)$(MANDIR)/man5/gxinetd.conf.5
	install -m 0644 docs/gxinetd.log.5 $(DESTDIR)$(MANDIR)/man5/gxinetd.log.5
	install -m 0644 docs/xconv.1 $(DESTDIR)$(MANDIR)/man1/xconv.1
	sed 's|@SBINDIR@|$(SBINDIR)|g' dist/gxinetd.service.in > $(DESTDIR)$(UNITDIR)/gxinetd.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/gxinetd.service.tmp
	mv $(DESTDIR)$(UNITDIR)/gxinetd.service.tmp $(DESTDIR)$(UNITDIR)/gxinetd.service
	install -m 0644 dist/gxinetd.socket dist/gxinetd.default $(DESTDIR)$(DOCDIR)/examples/
	@# An existing xinetd installation is kept exactly as it is.
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/xinetd.conf ]; then \
	  install -d $(DESTDIR)$(SYSCONFDIR); install -m 0644 dist/xinetd.conf $(DESTDIR)$(SYSCONFDIR)/xinetd.conf; fi
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/xinetd.d ]; then install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/xinetd.d; fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/gxinetd $(DESTDIR)$(BINDIR)/xconv $(DESTDIR)$(MANDIR)/man8/gxinetd.8 \
	  $(DESTDIR)$(MANDIR)/man5/gxinetd.conf.5 $(DESTDIR)$(MANDIR)/man5/gxinetd.log.5 $(DESTDIR)$(MANDIR)/man1/xconv.1 \
	  $(DESTDIR)$(UNITDIR)/gxinetd.service $(DESTDIR)$(DOCDIR)/examples/gxinetd.socket $(DESTDIR)$(DOCDIR)/examples/gxinetd.default
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null

clean:
	rm -f gxinetd xconv
	rm -rf examples/ctf/jail
