// The batching writer on its own: batches form while the writer is busy, one failing operation
// rolls back alone, posted operations are written with the next batch.
#include "store/sqlite/writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "store/store_test_support.h"

namespace herald::sqlite {
namespace {

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path() + "/w.db";
    Result<std::unique_ptr<Connection>> conn =
        Connection::Open(path_, Connection::Mode::kReadWrite);
    ASSERT_TRUE(conn.ok()) << store_test::ErrorText(conn);
    ASSERT_TRUE((*conn)->Exec("CREATE TABLE t (v INTEGER PRIMARY KEY)").ok());
    writer_ = std::make_unique<Writer>(std::move(*conn), 64, [this](size_t n) {
      std::lock_guard lock(mu_);
      batches_.push_back(n);
    });
  }

  static Writer::Op Insert(int64_t v) {
    return
        [v](Connection& c) { return c.Prepare("INSERT INTO t (v) VALUES (?1)").Bind(1, v).Run(); };
  }

  std::vector<int64_t> Values() {
    Result<std::unique_ptr<Connection>> conn = Connection::Open(path_, Connection::Mode::kReadOnly);
    std::vector<int64_t> out;
    if (!conn.ok()) return out;
    Stmt q = (*conn)->Prepare("SELECT v FROM t ORDER BY v");
    while (*q.Next()) out.push_back(q.Int(0));
    return out;
  }

  std::vector<size_t> Batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }

  store_test::TempDir dir_;
  std::string path_;
  std::unique_ptr<Writer> writer_;
  std::mutex mu_;
  std::vector<size_t> batches_;
};

TEST_F(WriterTest, WritesQueuedWhileBusyShareOneBatchAndAFailureRollsBackAlone) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> blocking{false};
  // The first operation holds the writer, so the next ones queue up behind it.
  std::thread first([&] {
    Status s = writer_->Run([&](Connection& c) {
      blocking = true;
      released.wait();
      return Insert(1)(c);
    });
    EXPECT_TRUE(s.ok());
  });
  while (!blocking) std::this_thread::yield();

  std::vector<std::thread> others;
  others.reserve(5);
  std::vector<Status> results(5);
  for (int i = 0; i < 5; ++i) {
    others.emplace_back([&, i] {
      if (i == 2) {  // writes a row, then fails: its row must not survive
        results[i] = writer_->Run([](Connection& c) -> Status {
          Status s = Insert(100)(c);
          if (!s.ok()) return s;
          return MakeError(ErrorKind::kConflict, "version_conflict", "no");
        });
      } else if (i == 3) {  // a constraint failure: duplicate key
        results[i] = writer_->Run(Insert(1));
      } else {
        results[i] = writer_->Run(Insert(10 + i));
      }
    });
  }
  writer_->Post(Insert(50));
  // Wait until all five are queued behind the blocked operation, then let it go.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  release.set_value();
  first.join();
  for (std::thread& t : others) t.join();
  ASSERT_TRUE(writer_->Flush().ok());

  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[1].ok());
  ASSERT_FALSE(results[2].ok());
  EXPECT_EQ(results[2].error().code, "version_conflict");
  ASSERT_FALSE(results[3].ok());
  EXPECT_EQ(results[3].error().kind, ErrorKind::kConflict);
  EXPECT_TRUE(results[4].ok());
  EXPECT_EQ(Values(), (std::vector<int64_t>{1, 10, 11, 14, 50}));
  std::vector<size_t> batches = Batches();
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[0], 1u);  // the blocking operation alone
  EXPECT_EQ(batches[1], 6u);  // five callers and the posted write
  EXPECT_EQ(writer_->failed_posts(), 0u);
}

TEST_F(WriterTest, ExceptionInAnOperationIsAnError) {
  Status s = writer_->Run([](Connection&) -> Status { throw std::runtime_error("boom"); });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, ErrorKind::kInternal);
  EXPECT_TRUE(writer_->Run(Insert(7)).ok());
  EXPECT_EQ(Values(), std::vector<int64_t>{7});
}

TEST_F(WriterTest, FailedPostIsCounted) {
  writer_->Post(Insert(1));
  writer_->Post(Insert(1));
  ASSERT_TRUE(writer_->Flush().ok());
  EXPECT_EQ(writer_->failed_posts(), 1u);
  EXPECT_EQ(Values(), std::vector<int64_t>{1});
}

TEST_F(WriterTest, PostTellsWhenItsBatchCommittedAndHowTheOpEnded) {
  std::promise<Status> first;
  std::promise<Status> second;
  writer_->Post(Insert(5), [&](const Status& s) {
    // Called after the commit: a reader sees the row already.
    EXPECT_EQ(Values(), std::vector<int64_t>{5});
    first.set_value(s);
  });
  writer_->Post(Insert(5), [&](const Status& s) { second.set_value(s); });
  EXPECT_TRUE(first.get_future().get().ok());
  Status dup = second.get_future().get();
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().kind, ErrorKind::kConflict);
}

TEST_F(WriterTest, DestructionWritesWhatIsQueued) {
  for (int i = 0; i < 100; ++i) writer_->Post(Insert(i));
  writer_.reset();
  EXPECT_EQ(Values().size(), 100u);
}

}  // namespace
}  // namespace herald::sqlite
