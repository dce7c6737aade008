// The SMTP server against real clients: swaks and Python's smtplib.
#include <chrono>

#include "sim/sim_test_support.h"

namespace herald::sim::testing {
namespace {

class SmtpTest : public SimTest {
 protected:
  void SetUp() override {
    SimTest::SetUp();
    ASSERT_TRUE(HaveTool("swaks")) << "install the Debian package swaks";
    ASSERT_TRUE(HaveTool("python3"));
  }
  CommandResult Swaks(const std::string& args) {
    return RunCommand("swaks --server 127.0.0.1:" + std::to_string(sim_->smtp_port()) +
                      " --from sender@herald.test --timeout 10 " + args);
  }
  // Runs a Python script with PORT and CA (the simulator's certificate) defined.
  CommandResult Python(const std::string& script) {
    std::string prelude =
        "import smtplib, ssl, sys, socket\nPORT = " + std::to_string(sim_->smtp_port()) +
        "\nCA = '" + ca_file_ + "'\n";
    return RunCommand("python3 " + dir_.Write("script.py", prelude + script));
  }
};

TEST_F(SmtpTest, SwaksMessageIsRecordedWithSubjectBodyAndDeliveryId) {
  CommandResult r = Swaks(
      "--to user@example.com --header 'Subject: Welcome aboard' "
      "--header 'X-Herald-Delivery-Id: dlv-42' --body 'Hello from swaks'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("250-AUTH PLAIN LOGIN"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("250 2.0.0 Ok queued as "), std::string::npos);
  json messages = Messages("?provider=smtp");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["address"], "user@example.com");
  EXPECT_EQ(messages[0]["title"], "Welcome aboard");
  EXPECT_EQ(messages[0]["body"], "Hello from swaks");
  EXPECT_EQ(messages[0]["delivery_id"], "dlv-42");
  // The same delivery id again is a duplicate.
  ASSERT_EQ(Swaks("--to user@example.com --header 'X-Herald-Delivery-Id: dlv-42'").exit_code, 0);
  json smtp = Stats()["smtp"];
  EXPECT_EQ(smtp["accepted"], 2);
  EXPECT_EQ(smtp["duplicates"], 1);
}

TEST_F(SmtpTest, SwaksInvalidRecipientGets550) {
  PutFaults("smtp", {{"invalid_addresses", {"nobody@example.com"}}});
  CommandResult r = Swaks("--to nobody@example.com");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("550 5.1.1"), std::string::npos) << r.output;
  EXPECT_EQ(Stats()["smtp"]["refused"], 1);
  EXPECT_TRUE(Messages("?provider=smtp").empty());
}

TEST_F(SmtpTest, SwaksAuthPlainAndLoginAreAccepted) {
  for (const char* mech : {"PLAIN", "LOGIN"}) {
    CommandResult r = Swaks(std::string("--to a@example.com --auth ") + mech +
                            " --auth-user u --auth-password p");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("235 2.7.0"), std::string::npos) << r.output;
  }
  EXPECT_EQ(Stats()["smtp"]["accepted"], 2);
}

TEST_F(SmtpTest, SmtplibStarttlsAuthAndPartlyRefusedRecipients) {
  PutFaults("smtp", {{"invalid_addresses", {"gone@example.com"}}});
  CommandResult r = Python(R"(
ctx = ssl.create_default_context(cafile=CA)
with smtplib.SMTP('localhost', PORT, timeout=10) as s:
    s.ehlo()
    assert s.has_extn('starttls'), s.esmtp_features
    s.starttls(context=ctx)
    s.ehlo()
    assert not s.has_extn('starttls')
    s.login('user', 'secret')
    msg = ('Subject: =?utf-8?B?R3LDvMOfZQ==?=\r\nMessage-ID: <m1@herald.test>\r\n'
           'Content-Type: text/plain; charset=utf-8\r\n'
           'Content-Transfer-Encoding: quoted-printable\r\n\r\n'
           'Caf=C3=A9 time\r\n.leading dot\r\n')
    refused = s.sendmail('from@herald.test', ['one@example.com', 'gone@example.com'], msg)
    print('REFUSED', sorted(refused.items()))
    print('CIPHER', s.sock.version())
)");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("REFUSED [('gone@example.com', (550, b'5.1.1"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("CIPHER TLSv1."), std::string::npos) << r.output;
  json messages = Messages("?provider=smtp");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0]["address"], "one@example.com");
  EXPECT_EQ(messages[0]["title"], "Grüße");
  EXPECT_EQ(messages[0]["body"], "Café time\n.leading dot");  // QP decoded, dot unstuffed
  EXPECT_EQ(messages[0]["delivery_id"], "m1@herald.test");
  EXPECT_EQ(Stats()["smtp"]["refused"], 1);
}

TEST_F(SmtpTest, OutageAnswers421AtConnect) {
  PutFaults("smtp", {{"outage", true}});
  CommandResult r = Swaks("--to a@example.com");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("421 4.3.2"), std::string::npos) << r.output;
}

TEST_F(SmtpTest, ThrottleAndErrorsAnswerTheDataPhase) {
  PutFaults("smtp", {{"throttle_rate", 1.0}});
  CommandResult r = Swaks("--to a@example.com");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("451 4.7.1"), std::string::npos) << r.output;
  PutFaults("smtp", {{"error_rate", 1.0}, {"status", 554}});
  r = Swaks("--to a@example.com");
  EXPECT_NE(r.output.find("554 5.3.0"), std::string::npos) << r.output;
  PutFaults("smtp", {{"error_rate", 1.0}});
  r = Swaks("--to a@example.com");
  EXPECT_NE(r.output.find("451 4.3.0"), std::string::npos) << r.output;
  json smtp = Stats()["smtp"];
  EXPECT_EQ(smtp["refused"], 3);
  EXPECT_EQ(smtp["accepted"], 0);
}

TEST_F(SmtpTest, TimeoutAfterAcceptRecordsAndNeverReplies) {
  PutFaults("smtp", {{"timeout_after_accept_rate", 1.0}});
  CommandResult r = Python(R"(
s = smtplib.SMTP('127.0.0.1', PORT, timeout=1)
try:
    s.sendmail('f@herald.test', ['late@example.com'], 'Subject: s\r\n\r\nbody\r\n')
    print('ANSWERED')
except (socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected) as e:
    print('TIMEOUT', type(e).__name__)
)");
  EXPECT_NE(r.output.find("TIMEOUT"), std::string::npos) << r.output;
  EXPECT_EQ(Stats()["smtp"]["accepted"], 1);
}

TEST_F(SmtpTest, LatencyDelaysTheFinalReply) {
  PutFaults("smtp", {{"latency_ms", 500}});
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(Swaks("--to a@example.com").exit_code, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
}

TEST_F(SmtpTest, ProtocolErrorsAreReported) {
  CommandResult r = Python(R"(
s = smtplib.SMTP('127.0.0.1', PORT, timeout=5)
print('RCPT-FIRST', s.docmd('RCPT', 'TO:<a@example.com>')[0])
s.ehlo()
print('NOOP', s.noop()[0])
print('DATA-EARLY', s.docmd('DATA')[0])
print('MAIL', s.docmd('MAIL', 'FROM:<f@herald.test>')[0])
print('NESTED', s.docmd('MAIL', 'FROM:<f@herald.test>')[0])
print('RSET', s.rset()[0])
print('BOGUS', s.docmd('FROB')[0])
print('QUIT', s.quit()[0])
)");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* expected : {"RCPT-FIRST 503", "NOOP 250", "DATA-EARLY 503", "MAIL 250",
                               "NESTED 503", "RSET 250", "BOGUS 502", "QUIT 221"}) {
    EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
  }
}

}  // namespace
}  // namespace herald::sim::testing
