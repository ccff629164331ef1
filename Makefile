# Thin wrappers over ./sqlwright.sh, which does the set-up.
.PHONY: ask test install lint
Q ?= Which three products brought in the most revenue?

ask:
	./sqlwright.sh ask "$(Q)"

test:
	./sqlwright.sh test

install:
	./sqlwright.sh install

lint:
	.venv/bin/ruff check src tests bench
