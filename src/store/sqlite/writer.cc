#include "store/sqlite/writer.h"

#include <pthread.h>

#include <algorithm>
#include <exception>
#include <iterator>
#include <optional>
#include <string>
#include <utility>

namespace herald::sqlite {
namespace {

Error BatchAborted(const Error& cause) {
  Error e = cause;
  if (e.kind != ErrorKind::kUnavailable) {
    e = MakeError(ErrorKind::kUnavailable, "storage_unavailable",
                  "Storage failed while committing this write; retry it (" + cause.message + ")");
  }
  return e;
}

}  // namespace

Writer::Writer(std::unique_ptr<Connection> conn, size_t max_batch,
               std::function<void(size_t)> on_batch)
    : conn_(std::move(conn)),
      max_batch_(std::max<size_t>(1, max_batch)),
      on_batch_(std::move(on_batch)),
      thread_([this] { Loop(); }) {}

Writer::~Writer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

Status Writer::Run(Op op) {
  Completion completion;
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      return MakeError(ErrorKind::kUnavailable, "storage_unavailable", "The store is closing.");
    }
    queue_.push_back(Item{std::move(op), &completion});
  }
  cv_.notify_one();
  std::unique_lock lock(completion.mu);
  completion.cv.wait(lock, [&] { return completion.done; });
  return std::move(completion.result);
}

void Writer::Post(Op op, std::function<void(const Status&)> done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(Item{std::move(op), nullptr, std::move(done)});
      cv_.notify_one();
      return;
    }
    ++failed_posts_;
  }
  if (done)
    done(MakeError(ErrorKind::kUnavailable, "storage_unavailable", "The store is closing."));
}

Status Writer::Flush() {
  return Run([](Connection&) { return Status::Ok(); });
}

size_t Writer::failed_posts() const {
  std::lock_guard lock(mu_);
  return failed_posts_;
}

void Writer::Loop() {
  pthread_setname_np(pthread_self(), "store-writer");
  std::vector<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      size_t n = std::min(queue_.size(), max_batch_);
      auto end = queue_.begin() + static_cast<std::ptrdiff_t>(n);
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
      queue_.erase(queue_.begin(), end);
    }
    RunBatch(batch);
    batch.clear();
  }
}

Status Writer::RunOne(Item& item) {
  try {
    return item.op(*conn_);
  } catch (const std::exception& e) {
    return MakeError(ErrorKind::kInternal, "internal", std::string("Write failed: ") + e.what());
  } catch (...) {
    return MakeError(ErrorKind::kInternal, "internal", "Write failed.");
  }
}

void Writer::RunBatch(std::vector<Item>& batch) {
  std::vector<Status> results(batch.size());

  Status begin = conn_->Prepare("BEGIN IMMEDIATE").Run();
  std::optional<Error> abort;  // set when the transaction as a whole is lost
  if (!begin.ok()) abort = BatchAborted(begin.error());

  for (size_t i = 0; i < batch.size() && !abort; ++i) {
    Status sp = conn_->Prepare("SAVEPOINT op").Run();
    if (!sp.ok()) {
      abort = BatchAborted(sp.error());
      break;
    }
    Status s = RunOne(batch[i]);
    if (s.ok()) {
      s = conn_->Prepare("RELEASE op").Run();
      if (!s.ok()) {
        abort = BatchAborted(s.error());
        break;
      }
      continue;
    }
    results[i] = std::move(s);
    if (conn_->InAutocommit()) {  // SQLite rolled the whole transaction back (I/O error, ...)
      abort = BatchAborted(results[i].error());
      break;
    }
    Status rb = conn_->Prepare("ROLLBACK TO op").Run();
    if (rb.ok()) rb = conn_->Prepare("RELEASE op").Run();
    if (!rb.ok()) abort = BatchAborted(rb.error());
  }

  if (!abort) {
    Status commit = conn_->Prepare("COMMIT").Run();
    if (!commit.ok()) abort = BatchAborted(commit.error());
  }
  if (abort) {
    if (!conn_->InAutocommit()) (void)conn_->Exec("ROLLBACK");
    for (size_t i = 0; i < batch.size(); ++i) {
      if (results[i].ok()) results[i] = *abort;  // nothing of this batch is stored
    }
  } else if (on_batch_) {
    try {
      on_batch_(batch.size());
    } catch (...) {  // a metrics callback must not take the writer down
    }
  }

  // Count failed posts before waking anyone: a caller woken by a Flush in this batch must see
  // the failures of the posts queued before it.
  size_t failed_posts = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].completion == nullptr && !results[i].ok()) ++failed_posts;
  }
  if (failed_posts > 0) {
    std::lock_guard lock(mu_);
    failed_posts_ += failed_posts;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].done) {
      try {
        batch[i].done(results[i]);
      } catch (...) {  // a notification must not take the writer down
      }
    }
    Completion* c = batch[i].completion;
    if (c == nullptr) continue;
    std::lock_guard lock(c->mu);
    c->result = std::move(results[i]);
    c->done = true;
    c->cv.notify_one();
  }
}

}  // namespace herald::sqlite
