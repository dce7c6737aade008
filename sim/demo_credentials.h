// The simulator's published demo credentials: what `herald serve --sim` hands to tenants that
// have no provider settings of their own (providers/sim_defaults.h), and what `herald sim`
// trusts out of the box. The private keys below are PUBLIC (they are in this repository); they
// authenticate nothing but deliveries to the simulator. Never configure them for a real
// provider.
//
//   APNs: the simulator registers kDemoApnsKeyId with the public half of kDemoApnsPrivateKeyPem
//         (SimulatorOptions::trust_demo_apns_key), so it verifies the ES256 signature of demo
//         provider tokens fully, like any key registered with PUT /sim/apns/keys/{kid}.
//   FCM:  the simulator checks the RS256 assertion's structure and claims only, so the key's
//         signature is not verified; it is an RSA key so the real client code signs with it.
//   SMTP, SendGrid, Twilio, Vonage: the simulator accepts any well-formed credentials.
#pragma once

#include <string_view>

namespace herald::sim {

inline constexpr std::string_view kDemoApnsTeamId = "HERALDDEMO";  // 10 characters, like Apple's
inline constexpr std::string_view kDemoApnsKeyId = "SIMDEMOKEY";
inline constexpr std::string_view kDemoApnsTopic = "dev.herald.demo";
// PKCS#8 P-256 private key (a .p8 file's content).
inline constexpr std::string_view kDemoApnsPrivateKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgadimmAeOWZ7H1qrY\n"
    "y/09maqwJNKmg0xGp+evdKvr4smhRANCAASmkwac6XwJzbAOdKOEpS+jzCLd1xTc\n"
    "kqRzy36A3p9q3VybZ+A026pGl5+b0JtJ+ied22No9Cxq8NMooSTIHcxs\n"
    "-----END PRIVATE KEY-----\n";

inline constexpr std::string_view kDemoFcmProjectId = "herald-demo";
inline constexpr std::string_view kDemoFcmClientEmail =
    "herald-demo@herald-demo.iam.gserviceaccount.com";
// PKCS#8 RSA-2048 private key (a service account's "private_key").
inline constexpr std::string_view kDemoFcmPrivateKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEuwIBADANBgkqhkiG9w0BAQEFAASCBKUwggShAgEAAoIBAQCuzHEf27lKYGCg\n"
    "3Hpfqeg4HS1iojpXXMmUvY0ec5P5POiXd+YS1Bd9CEeRFA1mcd3dfrWQzNXQiUYs\n"
    "Xv5RhMN2bAEFzGQDFi+GF6HDBYp44lSfBDvMs3+/n79pqCqm8fYSw/BT/VcklPSu\n"
    "gCR3/HjpFo+rXX+xQe8ZyO9g6RqhRIkSYCyEuv99Ygu8hXdHqSysq+OpJf258L0+\n"
    "sTBLDMN++9sO5SWbVQ9QlmZR7MXpWrtevb1ZQNbZgCk36aHfmdK312kSs0YbAP5m\n"
    "BebrjYxZxhRZna7/aCEyFPwZoP//1RzIAkvuGSiwWnCl2Dcu2niXxR5pGNAeBKVP\n"
    "tqyYOuFhAgMBAAECgf9lasxy4mat83uMhCsGF74l5ESWpUR5M9sQJ9AGAL2M85pV\n"
    "DH8JalB+rAvTVxw0KxsKERY20VmSTcSIZkz26C/pTBlffU+xEcBCsn09qBU+PybJ\n"
    "ZHiPVFRjCYLFadg0ixDqS8gs2Le1J51MK3lmUlkwojofBszZdj7SpQKnZ0KumUSi\n"
    "Faf5cB7W1wWPh/zUen0riGkJ04ptUyCDdP8Ad3i42T+heUR9wy2UEcwPADQL6k5j\n"
    "qaGoi1n17yA3mpU/QqofGe6Mgag2nsSrbdu6EkN/KdJNKb0Q/Z7H8O3Z8R49DIoO\n"
    "g6z+FpEX47NhHdQ3r319+/kpw0x4o4vXmabsqP0CgYEA5LyzQn9GoAZRQUPJqq0C\n"
    "xubVDRL+X5o1IIdlm64GMekz1Whel3CMK7E6Qh0pfbd0rgY/AZY679rltES5VmZO\n"
    "5ITK/SSCSSCkswIuRRVL5kxzSDTjLqm/o2QyTCfdZpTwn+HyGAgwql4R0SZm9Fj5\n"
    "FkdhxpcvR8MiLbY5vRurE30CgYEAw6Hz4Dr3CETxAzt3zVn/oye+qJ0ERTk7cnsi\n"
    "1weBx+ppbAa/shRIb+lxZFdzAbauvnow2fHlb8ZZvdFfJwoQLy3Zwvx+qANq1SYY\n"
    "gPbv3985IAniv2aNuzH/sQUtZShb5Om6LYW7HYYe0Vky68u5Yn51kOgTq5fhH00X\n"
    "PB6ForUCgYBrzFqXDjCUniWRIodaPms+ne7uWHM1TxGWoPjL47nbr9HT03ow2MPW\n"
    "m5GfMuso6lq84Qi0kL5556m1yWWnSFQJ8mNP5fLYz9+O1YpE2IKKqKDz+KjQhwNf\n"
    "14q0xVzcSXkVgIB9vu5gfDDdZsHCimPpkf6MfxezNE1ZSbXwX6fCaQKBgQCWTGB/\n"
    "Dw4nLkA0CYYbIF/ES46xICDdxgCkDXJQ3ZWZr8BanDy+ZdLZF/Jj8sOKt309HcdW\n"
    "Sf/JhgwAR1DhP1v7wzAgG7h7AFUdeO0ud4kG6AqNUMsB3ZpaDSmyKJYdt4oSLnc4\n"
    "7hs5rYcTs4HpolTFFP7h20rxc/gjAiktqQ1mWQKBgDZmOWsfx4i73apw9OLFjS85\n"
    "/vTI/lAWr1DFHllQq2JhBc7+tAi4GTFTMvoV40By4yIpUjj11HjBwliv3FsEPjgE\n"
    "RBnyXvMju4EJJ7Opcjchcr3YqXCv6Nrqvcf6bkkDUmf6EtexX7B1YOemxzuv1Skx\n"
    "URdqy1awAZqEMlhUwWD9\n"
    "-----END PRIVATE KEY-----\n";

inline constexpr std::string_view kDemoSendgridApiKey = "SG.herald-demo.simulator-only";
inline constexpr std::string_view kDemoTwilioAccountSid = "AC00000000000000000000000000000000";
inline constexpr std::string_view kDemoTwilioAuthToken = "herald-demo-simulator-only";
inline constexpr std::string_view kDemoVonageApiKey = "heralddemo";
inline constexpr std::string_view kDemoVonageApiSecret = "herald-demo-simulator-only";
inline constexpr std::string_view kDemoSmtpUsername = "herald-demo";
inline constexpr std::string_view kDemoSmtpPassword = "herald-demo-simulator-only";

}  // namespace herald::sim
