# dist/install.mk — `make install` and `make uninstall` (included by the
# Makefile). GNU conventions: PREFIX (default /usr/local) and DESTDIR are
# honoured; the configuration goes to $(SYSCONFDIR)/zkfs (default /etc,
# under DESTDIR) and is never overwritten, and uninstall removes it only
# when it is still the shipped file.
#
#   make install                         /usr/local/bin/zkfs, ...
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make uninstall [PREFIX=... DESTDIR=...]

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
INSTALL     ?= install

MAN_PAGES   := $(sort $(wildcard docs/man/*.[1-8]))
ZK_CFG      := $(DESTDIR)$(SYSCONFDIR)/zkfs/zoo.cfg

.PHONY: install uninstall
install: $(B)/zkfs
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(SYSCONFDIR)/zkfs
	$(INSTALL) -m 755 $(B)/zkfs $(DESTDIR)$(BINDIR)/zkfs
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    dist/zkfs@.service.in > $(DESTDIR)$(UNITDIR)/zkfs@.service
	chmod 644 $(DESTDIR)$(UNITDIR)/zkfs@.service
	$(INSTALL) -m 644 dist/zkfs.bash-completion $(DESTDIR)$(BASHCOMPDIR)/zkfs
	@for p in $(MAN_PAGES); do \
	    s=$${p##*.}; \
	    echo "$(INSTALL) -m 644 $$p $(DESTDIR)$(MANDIR)/man$$s/"; \
	    $(INSTALL) -d $(DESTDIR)$(MANDIR)/man$$s && \
	    $(INSTALL) -m 644 $$p $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
	@if [ -e $(ZK_CFG) ]; then \
	    echo "keeping the existing $(ZK_CFG)"; \
	else \
	    echo "$(INSTALL) -m 644 dist/zoo.cfg $(ZK_CFG)"; \
	    $(INSTALL) -m 644 dist/zoo.cfg $(ZK_CFG); \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/zkfs $(DESTDIR)$(UNITDIR)/zkfs@.service \
	    $(DESTDIR)$(BASHCOMPDIR)/zkfs
	@for p in $(MAN_PAGES); do \
	    s=$${p##*.}; f=$(DESTDIR)$(MANDIR)/man$$s/$${p##*/}; \
	    echo "rm -f $$f"; rm -f $$f; \
	done
	@if [ -e $(ZK_CFG) ] && ! cmp -s dist/zoo.cfg $(ZK_CFG); then \
	    echo "keeping $(ZK_CFG): it was changed"; \
	else \
	    echo "rm -f $(ZK_CFG)"; rm -f $(ZK_CFG); \
	    rmdir $(DESTDIR)$(SYSCONFDIR)/zkfs 2>/dev/null || true; \
	fi
