# Herald's two commands: `make run` and `make test`. Everything else is a helper for them.
BUILD_DIR ?= build
DATA_DIR  ?= data
LISTEN    ?= 127.0.0.1:8080
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test test-asan lint format bench clean

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

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 300

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan:
	$(MAKE) test BUILD_DIR=build-asan CMAKE_FLAGS="-DHERALD_SANITIZE=ON -DHERALD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug"

lint:
	@scripts/lint

format:
	@scripts/lint --fix

bench: build
	@scripts/run-benchmarks $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-asan
