# Local services: a real Apache Kafka broker and PostgreSQL (see localservices/README.md).
# Included by the main Makefile, which defines PY.
#
#   make services        start both (idempotent), print and write $(SERVICES_DIR)/env
#   make services-down   stop both, keep their data (services-purge also deletes it)
#
# A recipe that needs the endpoints can prefix its command with $(SERVICES_ENV), e.g.
#   test: services
#   	$(SERVICES_ENV) $(PY) -m pytest
SERVICES_DIR ?= .services
SERVICES_ENV = . $(SERVICES_DIR)/env &&

.PHONY: services services-down services-status services-purge

services:
	$(PY) -m localservices up --dir $(SERVICES_DIR)

services-down:
	$(PY) -m localservices down --dir $(SERVICES_DIR)

services-status:
	$(PY) -m localservices status --dir $(SERVICES_DIR)

services-purge:
	$(PY) -m localservices down --purge --dir $(SERVICES_DIR)
