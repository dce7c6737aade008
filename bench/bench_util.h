// Small helpers shared by the benchmarks: flags, timing, peak RSS, a temp directory.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace herald::bench {

// --name=value from argv, else the fallback.
inline std::string Flag(int argc, char** argv, std::string_view name, std::string fallback) {
  const std::string prefix = "--" + std::string(name) + "=";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, prefix.size()) == prefix) return std::string(a.substr(prefix.size()));
  }
  return fallback;
}

inline double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

inline long PeakRssMiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// CPU seconds (user + system) this process has used so far.
inline double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

// CPU seconds used so far by process `pid` and its children, live (from /proc) and reaped (its
// cutime and cstime): a database server's postmaster and its backends. 0 when unreadable.
inline double ProcessTreeCpuSeconds(pid_t pid) {
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  // utime, stime, cutime, cstime and the parent of one /proc/N/stat; false when unreadable.
  auto read = [&](const std::filesystem::path& stat, long long& ppid, double& own, double& reaped) {
    std::FILE* f = std::fopen(stat.c_str(), "r");
    if (f == nullptr) return false;
    char line[1024] = {};
    const size_t n = std::fread(line, 1, sizeof(line) - 1, f);
    std::fclose(f);
    const char* after = std::strrchr(line, ')');  // the command may hold spaces
    if (n == 0 || after == nullptr) return false;
    char state = 0;
    unsigned long long ut = 0, st = 0;
    long long cut = 0, cst = 0;
    if (std::sscanf(after + 2, "%c %lld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
                    &state, &ppid, &ut, &st, &cut, &cst) != 6) {
      return false;
    }
    own = static_cast<double>(ut + st) / tick;
    reaped = static_cast<double>(cut + cst) / tick;
    return true;
  };
  double total = 0;
  long long ppid = 0;
  double own = 0, reaped = 0;
  if (!read("/proc/" + std::to_string(pid) + "/stat", ppid, own, reaped)) return 0;
  total = own + reaped;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (read(entry.path() / "stat", ppid, own, reaped) && ppid == pid) total += own;
  }
  return total;
}

inline std::filesystem::path TempDir(std::string_view name) {
  auto dir = std::filesystem::temp_directory_path() /
             (std::string(name) + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace herald::bench
