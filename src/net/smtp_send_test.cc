// HttpClient::SendMail against postfix's smtp-sink on loopback: accepted mail, recipients
// rejected with 550 and deferred with 451 (reported with their reply line), refused STARTTLS.
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "net/http_client.h"
#include "net/test_peers.h"

namespace herald::net {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

SmtpResult Await(std::future<SmtpResult> future) {
  if (future.wait_for(30s) != std::future_status::ready) {
    ADD_FAILURE() << "no completion within 30 s";
    return {};
  }
  return future.get();
}

class SmtpSendTest : public ::testing::Test {
 protected:
  // smtp-sink with `extra` flags, appending every mail it accepts to mail/dump; its smtp:// URL.
  std::string StartSink(const std::vector<std::string>& extra) {
    // smtp-sink drops root privileges to nobody, who must be able to write the dump.
    fs::permissions(dir_.path(),
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    fs::create_directories(mail_dir());
    fs::permissions(mail_dir(), fs::perms::all);
    auto port = peers::StartOnFreePort(
        sink_,
        [&](uint16_t p) {
          std::vector<std::string> argv = {"smtp-sink"};
          if (::geteuid() == 0) argv.insert(argv.end(), {"-u", "nobody"});
          argv.insert(argv.end(), {"-D", (mail_dir() / "dump").string()});
          argv.insert(argv.end(), extra.begin(), extra.end());
          argv.push_back("127.0.0.1:" + std::to_string(p));
          argv.emplace_back("16");
          return argv;
        },
        dir_.path() / "sink.log");
    if (!port) {
      ADD_FAILURE() << "smtp-sink did not start: " << peers::ReadFile(dir_.path() / "sink.log");
      return {};
    }
    return "smtp://127.0.0.1:" + std::to_string(*port);
  }

  fs::path mail_dir() const { return dir_.path() / "mail"; }

  // The dump once it holds `needle` (smtp-sink writes it as the message ends), else "".
  std::string DumpContaining(const std::string& needle,
                             std::chrono::milliseconds patience = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string dump = peers::ReadFile(mail_dir() / "dump");
      if (dump.find(needle) != std::string::npos) return dump;
      std::this_thread::sleep_for(20ms);
    }
    return {};
  }

  static SmtpMessage Message(const std::string& url) {
    SmtpMessage m;
    m.url = url;
    m.mail_from = "noreply@herald.example";
    m.rcpt_to = {"someone@example.com"};
    m.data =
        "From: Herald <noreply@herald.example>\r\n"
        "To: someone@example.com\r\n"
        "Subject: Your code is 314159\r\n"
        "\r\n"
        "Hello.\r\n"
        ".leading dot survives\r\n";
    m.timeout_ms = 10'000;
    return m;
  }

  peers::TempDir dir_;
  peers::PeerProcess sink_;
};

TEST_F(SmtpSendTest, AcceptedMailReportsTheFinal250) {
  const std::string url = StartSink({});
  ASSERT_FALSE(url.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  SmtpResult r = Await(client->SendMail(Message(url)));
  EXPECT_EQ(r.curl_code, 0) << r.error;
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.reply.substr(0, 4), "250 ");
  EXPECT_FALSE(r.timed_out);
  const std::string dump = DumpContaining("Subject: Your code is 314159");
  EXPECT_NE(dump.find("Subject: Your code is 314159"), std::string::npos);
  EXPECT_NE(dump.find(".leading dot survives"), std::string::npos);
  EXPECT_EQ(client->in_flight(), 0u);

  // A second message through the same client (and its cached connection).
  SmtpMessage second = Message(url);
  second.data = "Subject: second one\r\n\r\nBye.\r\n";
  r = Await(client->SendMail(second));
  EXPECT_EQ(r.code, 250) << r.error;
  EXPECT_NE(DumpContaining("Subject: second one"), "");
}

TEST_F(SmtpSendTest, RejectedRecipientReports550AndItsReplyLine) {
  const std::string url =
      StartSink({"-f", "RCPT", "-B", "550 5.1.1 <someone@example.com>: User unknown"});
  ASSERT_FALSE(url.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  SmtpResult r = Await(client->SendMail(Message(url)));
  EXPECT_NE(r.curl_code, 0);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.reply, "550 5.1.1 <someone@example.com>: User unknown");
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.error.empty());
}

TEST_F(SmtpSendTest, DeferredRecipientReports451AndItsReplyLine) {
  const std::string url = StartSink({"-r", "RCPT", "-b", "451 4.3.0 Try again later"});
  ASSERT_FALSE(url.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  SmtpResult r = Await(client->SendMail(Message(url)));
  EXPECT_NE(r.curl_code, 0);
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(r.reply, "451 4.3.0 Try again later");
}

TEST_F(SmtpSendTest, RequiredTlsIsNotSilentlyDropped) {
  const std::string url = StartSink({});  // smtp-sink offers no STARTTLS
  ASSERT_FALSE(url.empty());
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  SmtpMessage m = Message(url);
  m.require_tls = true;
  SmtpResult r = Await(client->SendMail(m));
  EXPECT_EQ(r.curl_code, 64) << r.error;  // CURLE_USE_SSL_FAILED
  EXPECT_EQ(DumpContaining("Subject", 500ms), "") << "nothing may go out in the clear";
}

TEST_F(SmtpSendTest, ConnectionRefusedHasNoReply) {
  auto client = MakeHttpClient();
  ASSERT_NE(client, nullptr);
  SmtpResult r =
      Await(client->SendMail(Message("smtp://127.0.0.1:" + std::to_string(peers::PickFreePort()))));
  EXPECT_EQ(r.curl_code, 7) << r.error;  // CURLE_COULDNT_CONNECT
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.reply, "");
}

}  // namespace
}  // namespace herald::net
