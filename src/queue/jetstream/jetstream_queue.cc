#include "queue/jetstream/jetstream_queue.h"

#include <nats/nats.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "observe/log.h"

namespace herald {
namespace {

using std::chrono::milliseconds;

constexpr uint8_t kPayloadVersion = 1;
constexpr size_t kPayloadSize = 1 + 8 * 5 + 1 + 1 + 2;
// A consumer found empty is looked at again after this long (a message nak'd with a delay, or
// pushed by a process whose bell was missed, becomes visible so).
constexpr auto kEmptyFor = std::chrono::milliseconds(200);
constexpr int kFetchBatch = 256;

Error Unavailable(std::string code, std::string message) {
  return MakeError(ErrorKind::kUnavailable, std::move(code), std::move(message));
}

std::string NatsText(natsStatus s) { return natsStatus_GetText(s); }

void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::string Encode(const DeliveryJob& j) {
  std::string out(kPayloadSize, '\0');
  char* p = out.data();
  p[0] = static_cast<char>(kPayloadVersion);
  PutU64(p + 1, static_cast<uint64_t>(j.delivery));
  PutU64(p + 9, static_cast<uint64_t>(j.notification));
  PutU64(p + 17, static_cast<uint64_t>(j.tenant));
  PutU64(p + 25, static_cast<uint64_t>(j.deadline));
  PutU64(p + 33, static_cast<uint64_t>(j.not_before));
  p[41] = static_cast<char>(j.channel);
  p[42] = static_cast<char>(j.priority);
  p[43] = static_cast<char>(j.attempt & 0xff);
  p[44] = static_cast<char>(j.attempt >> 8);
  return out;
}

bool Decode(const char* p, int len, DeliveryJob* j) {
  if (len != static_cast<int>(kPayloadSize) || static_cast<uint8_t>(p[0]) != kPayloadVersion) {
    return false;
  }
  j->delivery = static_cast<int64_t>(GetU64(p + 1));
  j->notification = static_cast<int64_t>(GetU64(p + 9));
  j->tenant = static_cast<int64_t>(GetU64(p + 17));
  j->deadline = static_cast<int64_t>(GetU64(p + 25));
  j->not_before = static_cast<int64_t>(GetU64(p + 33));
  const auto channel = static_cast<uint8_t>(p[41]);
  if (channel >= std::size(kAllChannels)) return false;
  j->channel = static_cast<Channel>(channel);
  j->priority = static_cast<uint8_t>(p[42]);
  j->attempt =
      static_cast<uint16_t>(static_cast<uint8_t>(p[43]) | static_cast<uint8_t>(p[44]) << 8);
  return true;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

class JetStreamQueue final : public Queue {
 public:
  JetStreamQueue(JetStreamQueueOptions options, QueueOptions limits)
      : options_(std::move(options)), stage_(MakeLocalQueue(limits)) {
    prefix_ = options_.stream;
    for (char& c : prefix_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }

  ~JetStreamQueue() override {
    Close();
    if (housekeeper_.joinable()) housekeeper_.join();
    if (bell_ != nullptr) {
      natsSubscription_Unsubscribe(bell_);
      natsSubscription_Destroy(bell_);
    }
    if (inbox_sub_ != nullptr) {
      natsSubscription_Unsubscribe(inbox_sub_);
      natsSubscription_Destroy(inbox_sub_);
    }
    {
      std::lock_guard lock(mu_);
      // Not acknowledged: the server hands these to another taker after ack_wait.
      for (auto& [key, s] : staged_) natsMsg_Destroy(s.msg);
      for (auto& [token, h] : held_) natsMsg_Destroy(h.msg);
      staged_.clear();
      held_.clear();
      held_delivery_.clear();
    }
    if (options_.purge_on_close && js_ != nullptr) {
      jsErrCode jerr = static_cast<jsErrCode>(0);
      js_PurgeStream(js_, options_.stream.c_str(), nullptr, &jerr);
    }
    if (js_ != nullptr) jsCtx_Destroy(js_);
    if (nc_ != nullptr) {
      natsConnection_Close(nc_);
      natsConnection_Destroy(nc_);
    }
  }

  Status Open() {
    if (options_.classes < 1 || options_.shards < 1 || options_.class_width.count() < 1) {
      return MakeError(ErrorKind::kInvalid, "invalid_queue_options",
                       "The JetStream queue needs at least one class, one shard and a class "
                       "width of a minute or more.");
    }
    if (Status st = Connect(); !st.ok()) return st;
    if (Status st = EnsureStream(); !st.ok()) return st;
    if (Status st = EnsureConsumers(); !st.ok()) return st;
    natsInbox* inbox = nullptr;
    natsInbox_Create(&inbox);
    inbox_ = inbox;
    natsInbox_Destroy(inbox);
    natsStatus s = natsConnection_SubscribeSync(&inbox_sub_, nc_, (inbox_ + ".*").c_str());
    if (s == NATS_OK) natsSubscription_SetPendingLimits(inbox_sub_, -1, -1);
    if (s == NATS_OK) {
      s = natsConnection_Subscribe(&bell_, nc_, BellSubject().c_str(), &OnBell, this);
    }
    if (s != NATS_OK) {
      return Unavailable("queue_unavailable",
                         "Cannot subscribe to " + BellSubject() + ": " + NatsText(s));
    }
    housekeeper_ = std::thread([this] { Housekeep(); });
    return Status::Ok();
  }

  QueueOrder order() const override { return QueueOrder::kEdfByDeadlineClass; }
  milliseconds lease_time() const override { return options_.ack_wait; }
  bool outlives_process() const override { return true; }

  Status Push(std::vector<DeliveryJob> jobs) override {
    if (closed_.load()) {
      return Unavailable("queue_closed",
                         "The queue is closed (the process is shutting down); nothing was queued.");
    }
    if (jobs.empty()) return Status::Ok();
    ChangeDelta(0, /*bump=*/true);  // a stream count read from here on may hold part of this
    // A context of its own, so that the errors its handler counts are this call's. The tally
    // outlives the call when acks are still due (a timeout): the handler may yet write to it.
    auto* tally = new PublishErrors;
    PublishErrors& errors = *tally;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = options_.request_timeout.count();
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.AckHandler = &OnPublishAck;
    jo.PublishAsync.AckHandlerClosure = &errors;
    jsCtx* js = nullptr;
    natsStatus s = natsConnection_JetStream(&js, nc_, &jo);
    if (s != NATS_OK) return Unavailable("queue_unavailable", "JetStream: " + NatsText(s));
    std::vector<bool> rung(consumers_.size(), false);
    for (const DeliveryJob& job : jobs) {
      const size_t c = ConsumerOf(job);
      rung[c] = true;
      const std::string payload = Encode(job);
      natsMsg* msg = nullptr;
      s = natsMsg_Create(&msg, consumers_[c].subject.c_str(), nullptr, payload.data(),
                         static_cast<int>(payload.size()));
      if (s != NATS_OK) break;
      const std::string id = options_.message_id_prefix + "d" + std::to_string(job.delivery) +
                             ".a" + std::to_string(job.attempt);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      po.MaxWait = options_.request_timeout.count();
      s = js_PublishMsgAsync(js, &msg, &po);  // takes the message on success
      if (msg != nullptr) natsMsg_Destroy(msg);
      if (s != NATS_OK) break;
    }
    if (s == NATS_OK) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = options_.request_timeout.count();
      s = js_PublishAsyncComplete(js, &po);
    }
    jsCtx_Destroy(js);
    ChangeDelta(errors.queued.load());
    delayed_estimate_ += errors.delayed.load();
    const bool complete = s == NATS_OK;
    const int refused = errors.count.load();
    std::string refused_text = refused > 0 ? errors.Text() : "";
    if (complete) {
      delete tally;
    } else {
      std::lock_guard lock(mu_);
      orphaned_.emplace_back(tally);
    }
    if (!complete || refused > 0) {
      const std::string why = !complete ? NatsText(s) : refused_text;
      return Unavailable("queue_unavailable",
                         "JetStream did not confirm the jobs (" + why +
                             "); pushing them again is safe (they carry message ids).");
    }
    std::string bell;
    {
      std::lock_guard lock(mu_);
      for (size_t c = 0; c < rung.size(); ++c) {
        if (!rung[c]) continue;
        consumers_[c].empty_until = {};
        bell += std::to_string(c) + " ";
      }
    }
    natsConnection_PublishString(nc_, BellSubject().c_str(), bell.c_str());
    wake_.notify_all();
    return Status::Ok();
  }

  Result<std::vector<Lease>> Take(size_t max, milliseconds wait) override {
    std::vector<Lease> out;
    if (max == 0) return out;
    constexpr milliseconds kLongestWait = std::chrono::hours(24 * 365);
    const auto until =
        std::chrono::steady_clock::now() + std::clamp(wait, milliseconds(0), kLongestWait);
    while (!closed_.load()) {
      TakeStaged(max, &out);
      for (int round = 0; round < 3 && out.size() < max; ++round) {
        // Due jobs left in the stage now are held back by a limit: fetch from the consumers
        // that have none there, so that other tenants' shards move meanwhile.
        const QueueStats staged = stage_->Stats();
        const bool held_back = staged.queued > staged.delayed;
        const size_t fetched = Refill(max - out.size(), held_back);
        TakeStaged(max, &out);
        if (fetched == 0) break;
      }
      if (!out.empty()) return out;
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) break;
      std::unique_lock lock(wake_mu_);
      wake_.wait_until(lock, std::min(until, now + milliseconds(20)));
    }
    return out;
  }

  Status Ack(std::span<const Lease> leases) override {
    size_t acked = 0;
    Status st = Settle(leases, [this, &acked](natsMsg* m) {
      ++acked;
      return Reply(m, "+ACK");
    });
    ChangeDelta(-static_cast<int64_t>(acked));  // out of the stream
    return st;
  }

  Status Retry(const Lease& lease, UnixMillis not_before) override {
    const int64_t delay = std::max<int64_t>(0, not_before - NowMillis());
    if (delay == 0) {
      // Due at once: back into the stage with the message still ours, so that it competes by
      // deadline now rather than after a round trip to the server.
      std::unique_lock lock(mu_);
      auto it = held_.find(lease.token);
      if (it == held_.end()) return Status::Ok();  // not held: changes nothing
      Message m = it->second;
      held_.erase(it);
      held_delivery_.erase(lease.job.delivery);
      m.since = std::chrono::steady_clock::now();
      staged_.emplace(lease.job.delivery, m);
      ++consumers_[m.consumer].staged;
      lock.unlock();
      return stage_->Retry(lease, not_before);
    }
    bool nakd = false;
    Status st = Settle(std::span(&lease, 1), [this, delay, &nakd](natsMsg* m) {
      nakd = true;
      return Reply(m, "-NAK {\"delay\":" + std::to_string(delay * 1'000'000) + "}");
    });
    if (nakd) {  // due again at not_before: look at its consumer then
      retried_.fetch_add(1);
      std::lock_guard lock(mu_);
      Consumer& c = consumers_[ConsumerOf(lease.job)];
      c.empty_until =
          std::min(c.empty_until, std::chrono::steady_clock::now() + milliseconds(delay));
    }
    return st;
  }

  Status Extend(std::span<const Lease> leases) override {
    natsStatus worst = NATS_OK;
    std::lock_guard lock(mu_);
    for (const Lease& lease : leases) {
      auto it = held_.find(lease.token);
      if (it == held_.end()) continue;
      natsStatus s = Reply(it->second.msg, "+WPI");
      if (s != NATS_OK) worst = s;
    }
    if (worst != NATS_OK) {
      return Unavailable("queue_unavailable", "JetStream in-progress: " + NatsText(worst));
    }
    return Status::Ok();
  }

  QueueStats Stats() const override {
    // The stream holds every job not yet acknowledged: queued, nak'd to wait, and fetched or
    // taken by some process. Its count is read once a second; what this process published and
    // acknowledged since is added, and what this process holds (its stage counts the fetched
    // jobs itself) is taken off. Other processes' leases count as queued.
    QueueStats s = stage_->Stats();
    int64_t in_stream = 0;
    {
      std::lock_guard lock(stats_mu_);
      in_stream = stream_msgs_ + local_delta_;
    }
    int64_t ours = 0;
    {
      std::lock_guard lock(mu_);
      ours = static_cast<int64_t>(staged_.size() + held_.size());
    }
    const int64_t remote = std::max<int64_t>(0, in_stream - ours);
    const int64_t delayed =
        std::max<int64_t>(0, retried_.load()) + std::max<int64_t>(0, delayed_estimate_.load());
    s.queued += static_cast<size_t>(remote);
    s.delayed += static_cast<size_t>(std::min(remote, delayed));
    s.at = NowMillis();
    return s;
  }

  void ChangeDelta(int64_t n, bool bump = false) {
    if (n == 0 && !bump) return;
    std::lock_guard lock(stats_mu_);
    local_delta_ += n;
    ++delta_version_;
  }

  void SetLimits(QueueOptions options) override { stage_->SetLimits(options); }

  void Close() override {
    closed_ = true;
    stage_->Close();
    wake_.notify_all();
  }

 private:
  struct Consumer {
    std::string subject;
    std::string durable;
    std::string next_subject;  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>
    size_t staged = 0;         // its jobs in the stage, not yet taken (mu_)
    std::chrono::steady_clock::time_point empty_until{};  // found empty: skipped until (mu_)
  };
  struct Message {
    natsMsg* msg;
    size_t consumer;
    uint64_t seq;  // the stream's sequence: a redelivery has the same one
    std::chrono::steady_clock::time_point since{};  // fetched, or last told in progress
  };
  struct PublishErrors {
    std::atomic<int> count{0};
    std::atomic<int64_t> queued{0};   // acknowledged, not as duplicates
    std::atomic<int64_t> delayed{0};  // of those, not yet due
    std::mutex mu;
    std::string first;
    std::string Text() {
      std::lock_guard lock(mu);
      return std::to_string(count.load()) + " refused, first: " + first;
    }
  };

  static void OnPublishAck(jsCtx* /*js*/, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                           void* closure) {
    auto* errors = static_cast<PublishErrors*>(closure);
    if (pae != nullptr) {
      if (errors->count.fetch_add(1) == 0) {
        std::lock_guard lock(errors->mu);
        errors->first = pae->ErrText != nullptr ? pae->ErrText : NatsText(pae->Err);
      }
    } else if (pa != nullptr && !pa->Duplicate) {
      errors->queued.fetch_add(1);
      if (msg != nullptr && natsMsg_GetDataLength(msg) == static_cast<int>(kPayloadSize)) {
        DeliveryJob job;
        if (Decode(natsMsg_GetData(msg), natsMsg_GetDataLength(msg), &job) &&
            job.not_before > NowMillis()) {
          errors->delayed.fetch_add(1);
        }
      }
    }
    if (msg != nullptr) natsMsg_Destroy(msg);
  }

  static void OnBell(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* msg,
                     void* closure) {
    auto* self = static_cast<JetStreamQueue*>(closure);
    const std::string text(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    {
      std::lock_guard lock(self->mu_);
      size_t pos = 0;
      while (pos < text.size()) {
        const size_t end = text.find(' ', pos);
        const std::string word = text.substr(pos, end == std::string::npos ? end : end - pos);
        if (!word.empty()) {
          const size_t c = std::strtoul(word.c_str(), nullptr, 10);
          if (c < self->consumers_.size()) self->consumers_[c].empty_until = {};
        }
        if (end == std::string::npos) break;
        pos = end + 1;
      }
    }
    self->wake_.notify_all();
  }

  std::string BellSubject() const { return prefix_ + ".bell"; }

  // Acknowledgements are publishes to the message's reply subject ($JS.ACK...): the messages
  // come from our own inbox subscription, which natsMsg_Ack and its kin do not accept.
  natsStatus Reply(natsMsg* msg, const std::string& body) {
    const char* reply = natsMsg_GetReply(msg);
    if (reply == nullptr) return NATS_INVALID_ARG;
    return natsConnection_Publish(nc_, reply, body.data(), static_cast<int>(body.size()));
  }

  // The delivery count, stream sequence and publish time (ns) from a $JS.ACK reply subject:
  // $JS.ACK.<stream>. <consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending> (9
  // tokens), or with a domain and account hash after ACK (12 tokens, newer servers).
  static bool AckInfo(const char* reply, uint64_t* delivered, uint64_t* seq,
                      int64_t* published_ns) {
    if (reply == nullptr) return false;
    std::vector<std::string_view> tokens;
    std::string_view r(reply);
    for (size_t pos = 0; pos <= r.size();) {
      const size_t end = std::min(r.find('.', pos), r.size());
      tokens.push_back(r.substr(pos, end - pos));
      pos = end + 1;
    }
    size_t at = 0;
    if (tokens.size() == 9) {
      at = 4;
    } else if (tokens.size() >= 11) {
      at = 6;
    } else {
      return false;
    }
    *delivered = std::strtoull(std::string(tokens[at]).c_str(), nullptr, 10);
    *seq = std::strtoull(std::string(tokens[at + 1]).c_str(), nullptr, 10);
    *published_ns = std::strtoll(std::string(tokens[at + 3]).c_str(), nullptr, 10);
    return true;
  }

  size_t ConsumerOf(const DeliveryJob& job) const {
    const int64_t width = std::chrono::duration_cast<milliseconds>(options_.class_width).count();
    const int64_t cls = FloorDiv(job.deadline, width) % options_.classes;
    const int64_t c = (cls + options_.classes) % options_.classes;
    const int64_t shard = (job.tenant % options_.shards + options_.shards) % options_.shards;
    return static_cast<size_t>(c * options_.shards + shard);
  }

  Status Connect() {
    std::vector<std::string> urls;
    for (size_t pos = 0; pos <= options_.urls.size();) {
      const size_t end = std::min(options_.urls.find(',', pos), options_.urls.size());
      std::string url = options_.urls.substr(pos, end - pos);
      if (!url.empty()) urls.push_back(url);
      pos = end + 1;
    }
    if (urls.empty()) {
      return MakeError(ErrorKind::kInvalid, "invalid_queue_url",
                       "The queue URL names no NATS server (nats://host:port[,host:port...]).");
    }
    std::vector<const char*> raw;
    raw.reserve(urls.size());
    for (const std::string& u : urls) raw.push_back(u.c_str());
    natsOptions* opts = nullptr;
    if (natsOptions_Create(&opts) != NATS_OK) {
      return Unavailable("queue_unavailable", "libnats: cannot create options");
    }
    natsOptions_SetServers(opts, raw.data(), static_cast<int>(raw.size()));
    natsOptions_SetTimeout(opts, 2000);
    natsOptions_SetMaxReconnect(opts, -1);  // a service reconnects for ever
    natsOptions_SetReconnectWait(opts, 250);
    natsOptions_SetReconnectBufSize(opts, 32 * 1024 * 1024);
    natsOptions_SetName(opts, "herald");
    natsStatus s = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
      nc_ = nullptr;
      return Unavailable("queue_unreachable", "Cannot reach any NATS server of " + options_.urls +
                                                  ": " + NatsText(s) + ".");
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = options_.request_timeout.count();
    s = natsConnection_JetStream(&js_, nc_, &jo);
    if (s != NATS_OK) return Unavailable("queue_unavailable", "JetStream: " + NatsText(s));
    return Status::Ok();
  }

  Status EnsureStream() {
    const std::string subjects = prefix_ + ".*.*";  // <prefix>.c<class>.s<shard>
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), nullptr, &jerr);
    if (s == NATS_OK) {
      std::string differs;
      const jsStreamConfig& c = *si->Config;
      if (c.Retention != js_WorkQueuePolicy) differs += " retention (want WorkQueue)";
      if (c.Replicas != options_.replicas) {
        differs += " replicas (" + std::to_string(c.Replicas) + ", want " +
                   std::to_string(options_.replicas) + ")";
      }
      if (c.Storage != js_FileStorage) differs += " storage (want file)";
      if (c.SubjectsLen != 1 || subjects != c.Subjects[0])
        differs += " subjects (want " + subjects + ")";
      jsStreamInfo_Destroy(si);
      if (!differs.empty()) {
        return MakeError(ErrorKind::kConflict, "queue_stream_mismatch",
                         "Stream " + options_.stream + " exists with other settings:" + differs +
                             ". Delete it (nats stream rm) or name another stream.");
      }
      return Status::Ok();
    }
    if (jerr != JSStreamNotFoundErr) {
      return Unavailable("queue_unavailable", "Cannot read stream " + options_.stream + " on " +
                                                  options_.urls + ": " + NatsText(s) +
                                                  " (no JetStream quorum?)");
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = options_.stream.c_str();
    const char* list[] = {subjects.c_str()};
    cfg.Subjects = list;
    cfg.SubjectsLen = 1;
    cfg.Retention = js_WorkQueuePolicy;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = options_.replicas;
    cfg.Duplicates =
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.duplicate_window).count();
    s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
    if (si != nullptr) jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
      return Unavailable("queue_unavailable", "Cannot create stream " + options_.stream + " (R" +
                                                  std::to_string(options_.replicas) +
                                                  "): " + NatsText(s) + ", error " +
                                                  std::to_string(static_cast<int>(jerr)));
    }
    return Status::Ok();
  }

  Status EnsureConsumers() {
    consumers_ = std::vector<Consumer>(static_cast<size_t>(options_.classes * options_.shards));
    for (int cls = 0; cls < options_.classes; ++cls) {
      for (int shard = 0; shard < options_.shards; ++shard) {
        Consumer& c = consumers_[static_cast<size_t>(cls) * static_cast<size_t>(options_.shards) +
                                 static_cast<size_t>(shard)];
        c.subject = prefix_ + ".c" + std::to_string(cls) + ".s" + std::to_string(shard);
        c.durable = options_.stream + "_c" + std::to_string(cls) + "_s" + std::to_string(shard);
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = c.durable.c_str();
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        cc.AckWait =
            std::chrono::duration_cast<std::chrono::nanoseconds>(options_.ack_wait).count();
        cc.MaxDeliver = -1;
        cc.MaxAckPending = options_.max_ack_pending;
        cc.MaxWaiting = 512;
        cc.FilterSubject = c.subject.c_str();
        jsConsumerInfo* ci = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        natsStatus s = js_GetConsumerInfo(&ci, js_, options_.stream.c_str(), c.durable.c_str(),
                                          nullptr, &jerr);
        if (s == NATS_OK) {
          const bool same =
              ci->Config->AckWait == cc.AckWait && ci->Config->MaxAckPending == cc.MaxAckPending;
          jsConsumerInfo_Destroy(ci);
          ci = nullptr;
          if (!same) s = js_UpdateConsumer(&ci, js_, options_.stream.c_str(), &cc, nullptr, &jerr);
        } else {
          s = js_AddConsumer(&ci, js_, options_.stream.c_str(), &cc, nullptr, &jerr);
        }
        if (ci != nullptr) jsConsumerInfo_Destroy(ci);
        if (s != NATS_OK) {
          return Unavailable("queue_unavailable", "Cannot create consumer " + c.durable + ": " +
                                                      NatsText(s) + ", error " +
                                                      std::to_string(static_cast<int>(jerr)));
        }
        c.next_subject = "$JS.API.CONSUMER.MSG.NEXT." + options_.stream + "." + c.durable;
      }
    }
    return Status::Ok();
  }

  // Moves up to max - out->size() jobs from the stage into `out`, as leases of their messages.
  void TakeStaged(size_t max, std::vector<Lease>* out) {
    Result<std::vector<Lease>> got = stage_->Take(max - out->size(), milliseconds(0));
    if (!got.ok() || got->empty()) return;
    std::lock_guard lock(mu_);
    for (const Lease& lease : *got) {
      auto it = staged_.find(lease.job.delivery);
      if (it == staged_.end()) continue;  // cannot happen: every staged job has its message
      Consumer& c = consumers_[it->second.consumer];
      if (c.staged > 0) --c.staged;
      held_.emplace(lease.token, it->second);
      held_delivery_[lease.job.delivery] = lease.token;
      staged_.erase(it);
      out->push_back(lease);
    }
  }

  // Fetches about `want` jobs (at least one batch) into the stage, from the consumers in
  // deadline-class order.
  size_t Refill(size_t want, bool held_back) {
    std::unique_lock refill(refill_mu_, std::try_to_lock);
    if (!refill.owns_lock()) return 0;  // another taker fetches: take what it stages next round
    const QueueStats staged = stage_->Stats();
    if (staged.queued >= options_.stage_target) {
      want = std::min<size_t>(want, 16);  // the stage is full of jobs a limit holds back
    }
    want = std::max<size_t>(want, 64);
    const int64_t width = std::chrono::duration_cast<milliseconds>(options_.class_width).count();
    const int64_t now_bucket = FloorDiv(NowMillis(), width);
    const int64_t first = now_bucket - options_.classes / 4;
    const size_t per_consumer_cap =
        std::max<size_t>(64, options_.stage_target / static_cast<size_t>(options_.shards));
    const int rotate = next_shard_++ % options_.shards;
    size_t fetched = 0;
    for (int i = 0; i < options_.classes && fetched < want; ++i) {
      const int64_t cls = ((first + i) % options_.classes + options_.classes) % options_.classes;
      for (int j = 0; j < options_.shards && fetched < want; ++j) {
        const int shard = (rotate + j) % options_.shards;
        const size_t index = static_cast<size_t>(cls * options_.shards + shard);
        Consumer& c = consumers_[index];
        {
          std::lock_guard lock(mu_);
          if (c.staged >= per_consumer_cap || (held_back && c.staged > 0)) continue;
          if (std::chrono::steady_clock::now() < c.empty_until) continue;
        }
        fetched += Fetch(index, std::min<size_t>(want - fetched, kFetchBatch));
      }
    }
    return fetched;
  }

  // One no-wait pull request to a consumer, its messages staged; how many came. The request is
  // made by hand (a publish to the consumer's MSG.NEXT subject, the messages read from our
  // inbox) rather than with natsSubscription_Fetch: in libnats 3.4.1 a no-wait fetch either
  // answers a timeout without asking (Expires 0) or, for a batch the consumer cannot fill, waits
  // out the whole expiry (nats.c #631, #749 — measured: 1 message in 1,990 ms of a 2 s expiry).
  size_t Fetch(size_t index, size_t batch) {
    Consumer& c = consumers_[index];
    const uint64_t id = ++fetch_seq_;
    const std::string reply = inbox_ + "." + std::to_string(id);
    const std::string request = "{\"batch\":" + std::to_string(batch) + ",\"no_wait\":true}";
    natsStatus s = natsConnection_PublishRequest(nc_, c.next_subject.c_str(), reply.c_str(),
                                                 request.data(), static_cast<int>(request.size()));
    if (s == NATS_OK) s = natsConnection_Flush(nc_);
    size_t got = 0;
    bool answered = false;
    const auto until = std::chrono::steady_clock::now() + options_.request_timeout;
    std::vector<DeliveryJob> jobs;
    while (s == NATS_OK && got < batch) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(until - std::chrono::steady_clock::now())
              .count();
      if (left <= 0) break;
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, inbox_sub_, left) != NATS_OK) break;
      const char* status = nullptr;
      if (natsMsgHeader_Get(msg, "Status", &status) == NATS_OK && status != nullptr) {
        // 404 no messages, 408 request expired, 409 too many waiting: the request is over.
        const bool ours = std::string_view(natsMsg_GetSubject(msg)) == reply;
        natsMsg_Destroy(msg);
        if (ours) {
          answered = true;
          break;
        }
        continue;  // the end of an earlier request
      }
      // Any job message that reaches the inbox is staged, also a late one of an earlier request:
      // its consumer is the one its subject names.
      std::lock_guard lock(mu_);
      const size_t from = ConsumerOfSubject(natsMsg_GetSubject(msg));
      if (from == index) ++got;
      if (std::optional<DeliveryJob> job = Accept(msg, from)) jobs.push_back(*job);
    }
    if (got == 0 && answered) {  // nothing there (the server said so): looked at again later
      std::lock_guard lock(mu_);
      c.empty_until = std::chrono::steady_clock::now() + kEmptyFor;
    }
    if (!answered && got < batch && s == NATS_OK) {
      observe::Warn("queue_pull_unanswered",
                    {{"consumer", c.durable}, {"messages", static_cast<long long>(got)}});
    }
    if (!jobs.empty()) {
      (void)stage_->Push(std::move(jobs));
      wake_.notify_all();  // for takers that found the refill taken by this one
    }
    return got;
  }

  // Which consumer a job subject (<prefix>.c<class>.s<shard>) belongs to; 0 for a stranger.
  size_t ConsumerOfSubject(std::string_view subject) const {
    const size_t c = subject.rfind(".c");
    const size_t sh = subject.rfind(".s");
    if (c == std::string_view::npos || sh == std::string_view::npos || sh < c) return 0;
    const long cls =
        std::strtol(std::string(subject.substr(c + 2, sh - c - 2)).c_str(), nullptr, 10);
    const long shard = std::strtol(std::string(subject.substr(sh + 2)).c_str(), nullptr, 10);
    if (cls < 0 || cls >= options_.classes || shard < 0 || shard >= options_.shards) return 0;
    return static_cast<size_t>(cls * options_.shards + shard);
  }

  // With mu_ held: decodes a delivered message and records it; the job to stage, if any.
  std::optional<DeliveryJob> Accept(natsMsg* msg, size_t index) {
    DeliveryJob job;
    if (!Decode(natsMsg_GetData(msg), natsMsg_GetDataLength(msg), &job)) {
      Reply(msg, "+TERM");  // not a job of ours: never again
      natsMsg_Destroy(msg);
      observe::Warn("queue_message_not_a_job", {{"subject", natsMsg_GetSubject(msg)}});
      return std::nullopt;
    }
    uint64_t seq = 0;
    uint64_t delivered = 0;
    int64_t published_ns = 0;
    if (AckInfo(natsMsg_GetReply(msg), &delivered, &seq, &published_ns)) {
      if (delivered == 1) {
        // Counted as delayed when it was published before its time (the publish's own test).
        if (job.not_before > published_ns / 1'000'000 && delayed_estimate_.load() > 0) {
          delayed_estimate_.fetch_sub(1);
        }
      } else {
        // Each redelivery is an attempt made (a Retry's NakWithDelay, or a lease that ran out
        // while its holder was sending).
        job.attempt = static_cast<uint16_t>(job.attempt + delivered - 1);
        retried_.fetch_sub(1);
      }
    }
    if (!Stage(job, Message{msg, index, seq, std::chrono::steady_clock::now()})) {
      return std::nullopt;
    }
    return job;
  }

  // With mu_ held: records the message of a fetched job; false when the job is not to be
  // staged (another message of the same delivery is already here).
  bool Stage(const DeliveryJob& job, Message m) {
    if (auto it = staged_.find(job.delivery); it != staged_.end()) {
      if (it->second.seq == m.seq) {  // redelivered while staged: the newer copy is the live one
        natsMsg_Destroy(it->second.msg);
        it->second = m;
      } else {  // a second message for one delivery (a publish past the duplicate window)
        Reply(m.msg, "+ACK");
        natsMsg_Destroy(m.msg);
        observe::Info("queue_duplicate_dropped",
                      {{"delivery", static_cast<long long>(job.delivery)}});
      }
      return false;
    }
    if (auto by = held_delivery_.find(job.delivery); by != held_delivery_.end()) {
      auto it = held_.find(by->second);
      if (it != held_.end() && it->second.seq != m.seq) {  // a second message, as above
        Reply(m.msg, "+ACK");
        natsMsg_Destroy(m.msg);
        observe::Info("queue_duplicate_dropped",
                      {{"delivery", static_cast<long long>(job.delivery)}});
        return false;
      }
      // Our own lease ran out and the server handed the message back: the old lease is over
      // (its Ack now changes nothing), the job is staged again.
      Lease stale;
      stale.job.delivery = job.delivery;
      stale.token = by->second;
      if (it != held_.end()) {
        natsMsg_Destroy(it->second.msg);
        held_.erase(it);
      }
      held_delivery_.erase(by);
      (void)stage_->Ack(std::span(&stale, 1));
    }
    staged_.emplace(job.delivery, m);
    ++consumers_[m.consumer].staged;
    return true;
  }

  template <typename Op>
  Status Settle(std::span<const Lease> leases, Op op) {
    natsStatus worst = NATS_OK;
    std::vector<Lease> released;
    {
      std::lock_guard lock(mu_);
      for (const Lease& lease : leases) {
        auto it = held_.find(lease.token);
        if (it == held_.end()) continue;  // not held (any more): changes nothing
        natsStatus s = op(it->second.msg);
        if (s != NATS_OK) worst = s;
        natsMsg_Destroy(it->second.msg);
        held_.erase(it);
        held_delivery_.erase(lease.job.delivery);
        released.push_back(lease);
      }
    }
    if (!released.empty()) (void)stage_->Ack(released);
    if (worst != NATS_OK) {
      return Unavailable("queue_unavailable", "JetStream acknowledgement: " + NatsText(worst));
    }
    return Status::Ok();
  }

  // Once a second: the stream's message count (for Stats), kept only when this process changed
  // nothing while it was read; and a +WPI for fetched jobs that wait in the stage (a limit holds
  // them back) a third of their lease, so that they are not handed to another process meanwhile.
  void Housekeep() {
    pthread_setname_np(pthread_self(), "queue-stats");
    while (!closed_.load()) {
      uint64_t version = 0;
      {
        std::lock_guard lock(stats_mu_);
        version = delta_version_;
      }
      jsStreamInfo* si = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      if (js_GetStreamInfo(&si, js_, options_.stream.c_str(), nullptr, &jerr) == NATS_OK) {
        const auto msgs = static_cast<int64_t>(si->State.Msgs);
        jsStreamInfo_Destroy(si);
        std::lock_guard lock(stats_mu_);
        if (delta_version_ == version) {
          stream_msgs_ = msgs;
          local_delta_ = 0;
        }
      }
      {
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mu_);
        for (auto& [key, m] : staged_) {
          if (now - m.since < options_.ack_wait / 3) continue;
          Reply(m.msg, "+WPI");
          m.since = now;
        }
      }
      std::unique_lock lock(wake_mu_);
      wake_.wait_for(lock, milliseconds(1000), [this] { return closed_.load(); });
    }
  }

  JetStreamQueueOptions options_;
  std::string prefix_;
  std::unique_ptr<Queue> stage_;  // what this process fetched: strict EDF and the limits
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* bell_ = nullptr;
  std::string inbox_;                      // pull requests' replies: <inbox_>.<request number>
  natsSubscription* inbox_sub_ = nullptr;  // read by the refilling taker only (refill_mu_)
  uint64_t fetch_seq_ = 0;                 // refill_mu_
  std::vector<Consumer> consumers_;        // class * shards + shard; fixed after Open

  mutable std::mutex mu_;
  std::unordered_map<int64_t, Message> staged_;           // by delivery: fetched, in the stage
  std::unordered_map<uint64_t, Message> held_;            // by lease token: taken
  std::unordered_map<int64_t, uint64_t> held_delivery_;   // delivery -> its lease token
  std::vector<std::unique_ptr<PublishErrors>> orphaned_;  // tallies of timed-out publishes
  std::mutex refill_mu_;
  int next_shard_ = 0;  // refill_mu_

  std::mutex wake_mu_;
  std::condition_variable wake_;
  std::atomic<bool> closed_{false};
  mutable std::mutex stats_mu_;
  int64_t stream_msgs_ = 0;          // the stream's message count as last read (stats_mu_)
  int64_t local_delta_ = 0;          // published minus acknowledged since that read (stats_mu_)
  uint64_t delta_version_ = 0;       // counts changes of local_delta_ (stats_mu_)
  std::atomic<int64_t> retried_{0};  // nak'd with a delay by this process, not back
  std::atomic<int64_t> delayed_estimate_{0};  // published not yet due, not yet fetched
  std::thread housekeeper_;
};

}  // namespace

Result<std::unique_ptr<Queue>> OpenJetStreamQueue(const JetStreamQueueOptions& options,
                                                  QueueOptions limits) {
  auto queue = std::make_unique<JetStreamQueue>(options, limits);
  if (Status st = queue->Open(); !st.ok()) return st.error();
  return std::unique_ptr<Queue>(std::move(queue));
}

}  // namespace herald
