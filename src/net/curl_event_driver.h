// Drives a libcurl multi handle from an Asio io_context (internal to src/net): curl's sockets
// (CURLMOPT_SOCKETFUNCTION) are watched with stream_descriptors that borrow curl's descriptors
// and never close them, curl's timer (CURLMOPT_TIMERFUNCTION) is a steady_timer, and each
// curl_multi_socket_action is followed by `after_action`, where the owner reads CURLMSG_DONE.
//
// Thread-safety: used only on the thread that runs the io_context (construct it before the loop
// runs, destroy it after the loop ended). The owner keeps the multi handle and calls Stop()
// right after curl_multi_cleanup (which still reports sockets to the driver).
#pragma once

#include <curl/curl.h>

#include <functional>
#include <memory>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace herald::net::internal {

class CurlEventDriver {
 public:
  // Installs the socket and timer callbacks on `multi`.
  CurlEventDriver(boost::asio::io_context& io, CURLM* multi, std::function<void()> after_action);
  ~CurlEventDriver();
  CurlEventDriver(const CurlEventDriver&) = delete;
  CurlEventDriver& operator=(const CurlEventDriver&) = delete;

  // CURLOPT_CLOSESOCKETFUNCTION for every easy handle (CLOSESOCKETDATA = the driver): stops
  // watching the descriptor, then closes it, so that a reused descriptor number never meets a
  // stale registration.
  static int CloseSocket(void* driver, curl_socket_t s);

  // Forgets the multi handle, releases every descriptor and cancels the timers: afterwards no
  // handler of the driver keeps the io_context busy or touches curl.
  void Stop();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace herald::net::internal
