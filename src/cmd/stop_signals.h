// SIGTERM/SIGINT handling shared by `herald serve` and `herald sim`: the signals are blocked in
// every thread and one thread waits for them, so no handler runs inside a worker.
#pragma once

#include <signal.h>

namespace herald::cmd {

// Blocks SIGTERM and SIGINT in the calling thread (call it before starting any thread: threads
// inherit the mask) and ignores SIGPIPE. Returns the set to wait on.
sigset_t BlockStopSignals();

// Waits until one of the stop signals arrives; returns its number.
int WaitForStopSignal(const sigset_t& signals);

}  // namespace herald::cmd
