# The two commands of the README:
#   make run    installs what is missing, builds, and runs `slam serve` on the embedded default
#   make test   installs what is missing, builds, and runs every test (Swift and the Python contract test)
SHELL := /bin/bash
SWIFT ?= swift
PYTHON ?= python3
SLAM := .build/debug/slam

.PHONY: run test deps build swift-test contract-test bench-smoke clean

run: deps build
	$(SLAM) serve

test: deps build swift-test contract-test

# libzmq (Debian's libzmq3-dev) and pkg-config for the CZMQ system-library target; pyzmq,
# jsonschema and pytest for the contract test. Installed only when missing.
deps:
	@if ! pkg-config --exists libzmq 2>/dev/null; then \
	  echo "installing libzmq3-dev"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzmq3-dev pkg-config >/dev/null; \
	fi
	@if ! $(PYTHON) -c 'import zmq, jsonschema, pytest' 2>/dev/null; then \
	  echo "installing pyzmq, jsonschema, pytest"; \
	  $(PYTHON) -m pip install -q -r Tests/contract/requirements.txt; \
	fi

build:
	$(SWIFT) build

swift-test: build
	$(SWIFT) test

contract-test: build
	SLAM_BIN=$(CURDIR)/$(SLAM) $(PYTHON) -m pytest -q Tests/contract

clean:
	rm -rf .build
