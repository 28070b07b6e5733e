# SPDX-License-Identifier: GPL-2.0-only
# tmip: the usual targets. `make check` installs what the tests need, lints, and runs every test
# (unit + lab, the lab needs root); `make demo` shows a client roaming between two routed cells in a namespace lab.
.PHONY: all deps build typecheck lint test unit lab check demo bench clean

all: build

deps:
	bash test/install-deps.sh

build:
	bash build.sh

typecheck:
	npx tsc -p tsconfig.json --noEmit

# ESLint (type-aware), Prettier in check mode and knip (unused files, exports, dependencies); all three
# run, so one report shows every problem. `npm run format` rewrites what Prettier owns.
lint:
	@status=0; npm run lint || status=1; npm run format:check || status=1; npm run deadcode || status=1; exit $$status

unit:
	npm run test:unit

lab:
	npm run test:lab

test:
	npm test

check: deps lint
	npm test

demo: deps
	npm run demo

bench: deps
	npm run bench:roam

clean:
	rm -rf build dist
