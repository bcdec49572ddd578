# The two commands of the README:
#   make run    installs what is missing (libzmq), builds, and runs `slam serve` on the embedded default
#   make test   installs what is missing, builds, and runs every test (Swift and the Python contract test)
SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
SLAM := .build/debug/slam
# The Python that runs the contract test, chosen by python-deps.
TEST_PYTHON_FILE := .build/test-python
HAS_PYDEPS := -c 'import zmq, jsonschema, referencing, pytest'

.PHONY: run test deps python-deps build swift-test contract-test clean

run: deps build
	$(SLAM) serve

test: deps python-deps build swift-test contract-test

# libzmq (Debian's libzmq3-dev) and pkg-config for the CZMQ system-library target. Installed
# only when missing.
deps:
	@if ! pkg-config --exists libzmq 2>/dev/null; then \
	  echo "installing libzmq3-dev"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzmq3-dev pkg-config >/dev/null; \
	fi

# pyzmq, jsonschema (with referencing) and pytest for the contract test, from PyPI, installed only
# when missing: into $(PYTHON) when its pip will, else into a virtual environment in .build/venv
# (Debian's own python3 refuses pip outside one: "externally-managed-environment"; without
# python3-venv it cannot make one, so that is installed first).
python-deps: deps
	@mkdir -p .build
	@if $(PYTHON) $(HAS_PYDEPS) 2>/dev/null; then \
	  echo $(PYTHON) > $(TEST_PYTHON_FILE); \
	elif [ -x .build/venv/bin/python ] && .build/venv/bin/python $(HAS_PYDEPS) 2>/dev/null; then \
	  echo $(CURDIR)/.build/venv/bin/python > $(TEST_PYTHON_FILE); \
	elif echo "installing pyzmq, jsonschema, pytest" \
	     && $(PYTHON) -m pip install -q -r Tests/contract/requirements.txt 2>.build/pip-error.log \
	     && $(PYTHON) $(HAS_PYDEPS); then \
	  echo $(PYTHON) > $(TEST_PYTHON_FILE); \
	else \
	  echo "pip could not install into $(PYTHON) (why: .build/pip-error.log): installing into a virtual environment, .build/venv"; \
	  rm -rf .build/venv; \
	  if ! $(PYTHON) -m venv .build/venv >/dev/null 2>&1; then \
	    rm -rf .build/venv; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
	      && $(PYTHON) -m venv .build/venv; \
	  fi && .build/venv/bin/python -m pip install -q -r Tests/contract/requirements.txt \
	    && echo $(CURDIR)/.build/venv/bin/python > $(TEST_PYTHON_FILE); \
	fi

build:
	$(SWIFT) build

swift-test: build
	$(SWIFT) test

contract-test: build python-deps
	SLAM_BIN=$(CURDIR)/$(SLAM) $$(cat $(TEST_PYTHON_FILE)) -m pytest -q Tests/contract

clean:
	rm -rf .build
