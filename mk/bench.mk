# make bench — the performance benchmark (issue 6), against the real local Kafka and PostgreSQL.
#
# Starts the services like `make test` does (`localservices up` is idempotent), runs
# `python -m bench` (writes bench/results.json, bench/results.md and the table in
# BENCHMARKS.md), and stops the services again only if this target started them.
# py-spy (the profile of where the consumer's time goes) lives in its own small venv under
# bench/out/, never in the app's .venv. BENCH_ARGS passes more flags (e.g. --quick).

BENCH_ARGS   ?=
BENCH_TOOLS  := bench/out/tools
PY_SPY_PIN   := py-spy==0.4.3

.PHONY: bench

$(BENCH_TOOLS)/bin/py-spy:
	@[ -x $(BENCH_TOOLS)/bin/python ] || $(PYTHON) -m venv $(BENCH_TOOLS)
	$(BENCH_TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check $(PY_SPY_PIN)

bench: install $(BENCH_TOOLS)/bin/py-spy ## the performance benchmark: e2e vs machine limits, naive, RSS, scaling → BENCHMARKS.md
	@mkdir -p bench/out; if $(PY) -m localservices status >/dev/null 2>&1; then rm -f bench/out/.services-ours; \
	  else touch bench/out/.services-ours; fi
	$(PY) -m localservices up
	set -a; . "$${CLAZZIFY_SERVICES_DIR:-.services}/env"; set +a; \
	PY_SPY=$(BENCH_TOOLS)/bin/py-spy $(PY) -m bench --profile $(BENCH_ARGS); rc=$$?; \
	if [ -f bench/out/.services-ours ]; then rm -f bench/out/.services-ours; $(PY) -m localservices down; fi; \
	exit $$rc
