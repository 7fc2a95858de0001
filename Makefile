# stella-forensics: `make run` (set up + end-to-end demo) and `make test` (set up + every test).
SWIFT_BUILD_FLAGS ?=
BIN := .build/debug/stella-forensics

.PHONY: setup build run test unit-test e2e-test test-adversarial lint bench fuzz clean man completions kit

setup:
	bash scripts/setup.sh

build:
	swift build $(SWIFT_BUILD_FLAGS)

run: setup build
	bash scripts/demo.sh

unit-test:
	swift test $(SWIFT_BUILD_FLAGS)

e2e-test: build
	STELLA_BIN=$(abspath $(BIN)) python3 -m pytest -q e2e

test: setup build unit-test e2e-test

# Load attacks on capture (idle-connection and tenant floods, gRPC floods, fsync faults), with
# healthz, no-loss and peak-RSS checks; run on an otherwise idle machine.
test-adversarial: setup build
	STELLA_ADVERSARIAL=1 STELLA_BIN=$(abspath $(BIN)) python3 -m pytest -q e2e/test_adversarial_*.py

lint:
	swift format lint --recursive Sources Tests

# The man page, generated from the command definitions by swift-argument-parser's generate-manual
# package plugin (no extra dependency); written to docs/man/stella-forensics.1 (docs/cli.md).
man:
	swift package plugin generate-manual --configuration debug
	mkdir -p docs/man
	cp "$$(find .build/plugins -path '*GenerateManual*' -name 'stella-forensics.1' | head -n 1)" docs/man/
	@echo "wrote docs/man/stella-forensics.1 (read it with: man ./docs/man/stella-forensics.1)"

# The signed offline kit of this checkout and the release binary (README, "The offline kit"):
# make kit KEY=path/to/signer.key [KIT=stella-kit.tar]
KIT ?= stella-kit.tar
kit: man
	swift build -c release --product stella-forensics
	.build/release/stella-forensics kit build --out $(KIT) --key $(KEY) --source . --force

# Shell completion scripts for bash, zsh and fish, from the built binary, into .build/completions/.
completions: build
	mkdir -p .build/completions
	$(BIN) --generate-completion-script bash > .build/completions/stella-forensics.bash
	$(BIN) --generate-completion-script zsh > .build/completions/_stella-forensics
	$(BIN) --generate-completion-script fish > .build/completions/stella-forensics.fish

bench:
	bash bench/bundle-bench.sh
	bash bench/capture-bench.sh
	bash bench/replay-bench.sh
	bash bench/ring-bench.sh

fuzz:
	bash fuzz/run-fuzz.sh

clean:
	rm -rf .build .build-*
