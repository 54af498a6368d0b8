# Makefile: builds and release archives. The tests are scripts/test (the
# README's command); `make test` runs it.
#
#   make build                   tollgated and tollgate for this machine, in bin/
#   make release                 dist/: an archive per platform of PLATFORMS,
#                                with both binaries, and SHA256SUMS
#   make release VERSION=1.2.0   the version the binaries print
#   make cross-check             build for one other platform (windows/amd64),
#                                into a temporary directory: the cheap check
#   make generate                regenerate docs/tollgated-config.md
#
# Binaries are static (CGO_ENABLED=0: the SQLite driver is pure Go) and carry
# the version (-X main.version), the Go version and the commit they were
# built from (`tollgated version`, `tollgate version`).

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
DIST      ?= dist
GO        ?= go
LDFLAGS   := -s -w -X main.version=$(VERSION)
# -buildvcs=auto: stamp the commit even where GOFLAGS says -buildvcs=false.
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)'

.PHONY: build release cross-check generate test clean

build:
	$(GOBUILD) -o bin/ ./cmd/tollgated ./cmd/tollgate

release:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
	  name=tollgate_$(VERSION)_$${os}_$${arch}; dir=$(DIST)/$$name; \
	  echo "release: $$name"; \
	  mkdir -p $$dir/docs; \
	  for cmd in tollgated tollgate; do \
	    GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $$dir/$$cmd$$ext ./cmd/$$cmd; \
	  done; \
	  cp LICENSE README.md $$dir/; \
	  cp docs/install.md docs/tollgated-config.md $$dir/docs/; \
	  if [ "$$os" = linux ]; then \
	    mkdir -p $$dir/packaging; \
	    cp -R packaging/systemd packaging/sysusers packaging/tollgated.yaml packaging/agent.yml $$dir/packaging/; \
	  fi; \
	  tar -C $(DIST) -czf $$dir.tar.gz $$name; \
	  rm -rf $$dir; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS
	@echo "release: $(DIST)/ has $$(ls $(DIST)/*.tar.gz | wc -l) archives and SHA256SUMS"

cross-check:
	tmp=$$(mktemp -d) && GOOS=windows GOARCH=amd64 $(GOBUILD) -o $$tmp/ ./cmd/tollgated ./cmd/tollgate && rm -rf $$tmp

generate:
	$(GO) generate ./cmd/tollgated

test:
	scripts/test

clean:
	rm -rf bin $(DIST)
