# Herald's two commands: `make run` and `make test`. Everything else is a helper for them.
BUILD_DIR ?= build
DATA_DIR  ?= data
LISTEN    ?= 127.0.0.1:8080
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run cluster test test-asan lint format bench clean

all: build

deps:
	@scripts/install-deps

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)
	@test -x $(BUILD_DIR)/herald

run: build
	@scripts/run-herald $(BUILD_DIR)/herald $(DATA_DIR) $(LISTEN)

# The scaled-out shape on loopback until Ctrl-C: 3 NATS JetStream nodes, PostgreSQL with two
# standbys (pg_auto_failover), 2 API processes behind haproxy on 127.0.0.1:8080, 2 fan-out +
# dispatch processes, a reaper and the simulator on 127.0.0.1:9090 (as make run).
cluster: build
	@$(BUILD_DIR)/herald_cluster --herald $(BUILD_DIR)/herald --port $(lastword $(subst :, ,$(LISTEN))) \
	  --token-file $(DATA_DIR)/admin_token

# Every test. Under CI (CI=true, as .ci/run is run) also the linters first and, last, the tests
# again under AddressSanitizer and UndefinedBehaviorSanitizer.
test: build
ifeq ($(CI),true)
	@scripts/lint
endif
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 300
ifeq ($(CI),true)
	$(MAKE) test-asan
endif

# The tests under AddressSanitizer and UndefinedBehaviorSanitizer, in their own build directory.
# Left out there: the tests that measure time against the real budgets (the sanitizers slow
# SQLite and the HTTP stack several-fold); they run in the ordinary build above.
ASAN_DIR ?= build-asan
ASAN_SKIP ?= SendCrash|StoreFailover|PgHaCluster|ClusterRoles|ClusterShape|ThroughputTest|Throughput$$|MillionJobsFitWellUnder100MB
test-asan: deps
	cmake -S . -B $(ASAN_DIR) -G Ninja -DHERALD_SANITIZE=ON -DHERALD_BENCH=OFF \
	  -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_DIR) -j $(JOBS)
	ctest --test-dir $(ASAN_DIR) --output-on-failure -j $(JOBS) --timeout 600 -E '$(ASAN_SKIP)'

lint:
	@scripts/lint

format:
	@scripts/lint --fix

bench: build
	@scripts/run-benchmarks $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-asan
