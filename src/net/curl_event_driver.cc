#include "net/curl_event_driver.h"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <unordered_map>
#include <utility>

namespace herald::net::internal {
namespace {

namespace asio = boost::asio;

// One socket curl asked us to watch. Handlers hold it by shared_ptr so that a wait cancelled by
// Release() can still complete safely after curl forgot the socket.
struct SocketWatch : std::enable_shared_from_this<SocketWatch> {
  SocketWatch(asio::io_context& io, curl_socket_t s) : fd(s), descriptor(io) {}

  // Stops watching without closing: the descriptor is curl's. Pending waits complete with
  // operation_aborted.
  void Release() {
    if (released) return;
    released = true;
    if (descriptor.is_open()) descriptor.release();
  }

  curl_socket_t fd;
  asio::posix::stream_descriptor descriptor;
  int wanted = 0;  // CURL_POLL_IN / OUT / INOUT
  bool reading = false;
  bool writing = false;
  bool released = false;
};

}  // namespace

struct CurlEventDriver::State {
  State(asio::io_context& io_context, CURLM* multi_handle, std::function<void()> after)
      : io(io_context), multi(multi_handle), after_action(std::move(after)), timer(io_context) {}

  void Act(curl_socket_t s, int select_flags) {
    if (multi == nullptr) return;
    curl_multi_socket_action(multi, s, select_flags, &running);
    after_action();
  }

  void Arm(const std::shared_ptr<SocketWatch>& watch) {
    if (watch->released) return;
    if ((watch->wanted & CURL_POLL_IN) != 0 && !watch->reading) {
      watch->reading = true;
      watch->descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                                   [this, watch](const boost::system::error_code& ec) {
                                     OnReady(watch, CURL_CSELECT_IN, ec);
                                   });
    }
    if ((watch->wanted & CURL_POLL_OUT) != 0 && !watch->writing) {
      watch->writing = true;
      watch->descriptor.async_wait(asio::posix::stream_descriptor::wait_write,
                                   [this, watch](const boost::system::error_code& ec) {
                                     OnReady(watch, CURL_CSELECT_OUT, ec);
                                   });
    }
  }

  void OnReady(const std::shared_ptr<SocketWatch>& watch, int select_flag,
               const boost::system::error_code& ec) {
    const int poll_bit = select_flag == CURL_CSELECT_IN ? CURL_POLL_IN : CURL_POLL_OUT;
    (select_flag == CURL_CSELECT_IN ? watch->reading : watch->writing) = false;
    if (ec || watch->released || multi == nullptr) return;
    if ((watch->wanted & poll_bit) != 0) Act(watch->fd, select_flag);
    Arm(watch);  // no-op when curl dropped the socket or no longer wants this direction
  }

  void Drop(curl_socket_t s) {
    auto it = sockets.find(s);
    if (it == sockets.end()) return;
    it->second->Release();
    sockets.erase(it);
  }

  static int OnSocket(CURL*, curl_socket_t s, int what, void* self, void* socket_data) {
    auto* state = static_cast<State*>(self);
    if (what == CURL_POLL_REMOVE) {
      state->Drop(s);
      return 0;
    }
    std::shared_ptr<SocketWatch> watch;
    if (socket_data != nullptr) {
      watch = static_cast<SocketWatch*>(socket_data)->shared_from_this();
    } else {
      state->Drop(s);  // a stale watch of a reused descriptor number would block assign()
      watch = std::make_shared<SocketWatch>(state->io, s);
      boost::system::error_code ec;
      watch->descriptor.assign(s, ec);
      if (ec) {
        // Cannot watch it: let curl find the socket broken and fail its transfers.
        asio::post(state->io, [state, s] { state->Act(s, CURL_CSELECT_ERR); });
        return 0;
      }
      state->sockets[s] = watch;
      curl_multi_assign(state->multi, s, watch.get());
    }
    watch->wanted = what;
    state->Arm(watch);
    return 0;
  }

  static int OnTimer(CURLM*, long timeout_ms, void* self) {
    auto* state = static_cast<State*>(self);
    if (timeout_ms < 0) {
      state->timer.cancel();
      return 0;
    }
    // curl must not be re-entered from its own callback: even "now" goes through the loop. The
    // common zero (after every add) skips the timerfd: an extra CURL_SOCKET_TIMEOUT action is
    // harmless, and a later deadline stays armed in `timer`.
    if (timeout_ms == 0) {
      if (!state->run_now_posted) {
        state->run_now_posted = true;
        asio::post(state->io, [state] {
          state->run_now_posted = false;
          state->Act(CURL_SOCKET_TIMEOUT, 0);
        });
      }
      return 0;
    }
    state->timer.expires_after(std::chrono::milliseconds(timeout_ms));
    state->timer.async_wait([state](const boost::system::error_code& ec) {
      if (!ec) state->Act(CURL_SOCKET_TIMEOUT, 0);
    });
    return 0;
  }

  asio::io_context& io;
  CURLM* multi;
  std::function<void()> after_action;
  asio::steady_timer timer;
  std::unordered_map<curl_socket_t, std::shared_ptr<SocketWatch>> sockets;
  bool run_now_posted = false;
  int running = 0;
};

CurlEventDriver::CurlEventDriver(asio::io_context& io, CURLM* multi,
                                 std::function<void()> after_action)
    : state_(std::make_shared<State>(io, multi, std::move(after_action))) {
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &State::OnSocket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, state_.get());
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &State::OnTimer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, state_.get());
}

CurlEventDriver::~CurlEventDriver() { Stop(); }

int CurlEventDriver::CloseSocket(void* driver, curl_socket_t s) {
  static_cast<CurlEventDriver*>(driver)->state_->Drop(s);
  return ::close(s);
}

void CurlEventDriver::Stop() {
  state_->multi = nullptr;
  for (auto& [fd, watch] : state_->sockets) watch->Release();
  state_->sockets.clear();
  state_->timer.cancel();
}

}  // namespace herald::net::internal
