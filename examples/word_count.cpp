// herd's flagship: a word count over a folder of text files, as a pipeline. The files, in groups,
// are the source; a stage of worker processes reads and tokenizes each group's files and counts
// their words; the parent merges the counts, then prints the top 20 words and the throughput,
// with the progress display on stderr.
//
//   word_count [folder]         count the words of every regular file in the folder
//   word_count                  the same over a generated corpus (~200 MB, made once under the
//                               temporary directory and reused)
//   word_count --generate-mib N a generated corpus of N MiB instead
//
// Python's twin is bench/python/word_count.py (Pool.imap_unordered over the same groups of
// files and a Counter merge), timed side by side by bench/run.py.
#include <herd/herd.hpp>

#include "main.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/container_hash/hash.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include <sys/resource.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t corpus_file_bytes = 1 << 20;

// [snippet:count]
using word_counts = std::vector<std::pair<std::string, std::uint64_t>>;

// Boost 1.81's open-addressing map, looked up by string_view (no string made for a word seen
// before): twice as fast as std::unordered_map here.
struct text_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return boost::hash<std::string_view>{}(s); }
};
using counts_map = boost::unordered_flat_map<std::string, std::uint64_t, text_hash, std::equal_to<>>;

// In a worker: the words of a group of files (runs of ASCII letters, lower-cased) and their
// counts: one map for the group, so the parent merges one answer per group, not per file.
word_counts count_files(std::vector<std::string> paths) {
  counts_map counts;
  std::string text;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw std::runtime_error("cannot read " + path);
    text.resize(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    for (char& c : text) c = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? static_cast<char>(c | 0x20) : ' ';
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t start = text.find_first_not_of(' ', at);
      if (start == std::string::npos) break;
      const std::size_t end = std::min(text.find(' ', start), text.size());
      const std::string_view word(text.data() + start, end - start);
      if (auto it = counts.find(word); it != counts.end())
        ++it->second;
      else
        counts.emplace(word, 1);
      at = end;
    }
  }
  return word_counts(counts.begin(), counts.end());
}
// [/snippet]

// A deterministic corpus: words of a made-up vocabulary, drawn so that a few are frequent and
// most are rare, as in real text (the rank is log-uniform).
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string vocabulary_word(std::uint64_t rank) {
  static const char* syllables[] = {"the", "an", "of", "to", "in", "er", "ing", "on", "at", "re", "is", "ou",
                                    "ar", "ed", "or", "al", "it", "ly", "st", "ch", "ma", "ne", "ti", "so"};
  std::string word;
  do {
    word += syllables[rank % 24];
    rank /= 24;
  } while (rank > 0);
  return word;
}

// In a worker: writes corpus file `index` (1 MiB of text).
int write_corpus_file(std::string path) {
  std::uint64_t state = std::hash<std::string>{}(fs::path(path).filename().string());
  std::string text;
  text.reserve(corpus_file_bytes + 64);
  while (text.size() < corpus_file_bytes) {
    const double u = static_cast<double>(splitmix64(state) >> 11) / static_cast<double>(1ull << 53);
    const auto rank = static_cast<std::uint64_t>(std::exp(u * std::log(60000.0))) - 1;
    text += vocabulary_word(rank);
    text += (splitmix64(state) % 12 == 0) ? ".\n" : " ";
  }
  std::ofstream(path, std::ios::binary) << text;
  return 1;
}

// Groups of files for the workers, as Python's Pool.map cuts its input: four per worker.
std::vector<std::vector<std::string>> groups_of(const std::vector<std::string>& files) {
  const std::size_t groups = std::min<std::size_t>(files.size(), 4 * herd::cpu_count());
  std::vector<std::vector<std::string>> out(groups);
  for (std::size_t i = 0; i < files.size(); ++i) out[i % groups].push_back(files[i]);
  return out;
}

std::vector<std::string> regular_files(const fs::path& folder) {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(folder))
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

asio::awaitable<void> co_main(asio::any_io_executor ex, int argc, char** argv) {
  fs::path folder;
  std::size_t generate_mib = 200;
  if (argc == 3 && std::string(argv[1]) == "--generate-mib") generate_mib = std::stoul(argv[2]);
  if (argc == 2) folder = argv[1];
  if (folder.empty()) {
    folder = fs::temp_directory_path() / ("herd-word-count-corpus-" + std::to_string(generate_mib) + "mib");
    const fs::path done = folder / ".complete";
    if (!fs::exists(done)) {
      std::fprintf(stderr, "generating a %zu MiB corpus in %s (once)\n", generate_mib, folder.c_str());
      fs::create_directories(folder / "text");
      std::vector<std::string> paths;
      for (std::size_t i = 0; i < generate_mib; ++i) paths.push_back((folder / "text" / ("part-" + std::to_string(i) + ".txt")).string());
      // The corpus is written by a pipeline too: each file by a worker.
      herd::stage_options writers;
      writers.ordered = false;
      auto generate = herd::from_range(ex, paths).map("generate", write_corpus_file, writers);
      co_await generate.async_for_each([](int) {});
      std::ofstream(done) << "complete\n";
    }
    folder /= "text";
  }
  if (!fs::is_directory(folder)) throw std::runtime_error("word_count: " + folder.string() + " is not a folder");
  const std::vector<std::string> files = regular_files(folder);
  std::uintmax_t bytes = 0;
  for (const std::string& f : files) bytes += fs::file_size(f);

  const auto start = std::chrono::steady_clock::now();
  // [snippet:pipeline]
  herd::pipeline_options display;
  display.progress = true;
  herd::stage_options counting;
  counting.ordered = false;  // merge in whatever order the groups are done
  auto counts = herd::from_range(ex, groups_of(files), display).map("count", count_files, counting);

  counts_map total;
  co_await counts.async_for_each([&total](const word_counts& file) {
    for (const auto& [word, n] : file) total[word] += n;
  }, "merge");
  // [/snippet]
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::vector<std::pair<std::string, std::uint64_t>> top(total.begin(), total.end());
  const std::size_t shown = std::min<std::size_t>(20, top.size());
  std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(shown), top.end(),
                    [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  std::uint64_t words = 0;
  for (const auto& [word, n] : total) words += n;
  std::printf("corpus: %s (%zu files, %.1f MB)\n", folder.c_str(), files.size(), static_cast<double>(bytes) / 1e6);
  std::printf("words: %llu (%zu distinct)\ntop %zu:\n", static_cast<unsigned long long>(words), total.size(), shown);
  for (std::size_t i = 0; i < shown; ++i)
    std::printf("  %-12s %llu\n", top[i].first.c_str(), static_cast<unsigned long long>(top[i].second));
  std::printf("throughput: %.1f MB/s, %.0f files/s (%.2f s, %u processes)\n", static_cast<double>(bytes) / 1e6 / seconds,
              static_cast<double>(files.size()) / seconds, seconds, herd::cpu_count());
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  std::printf("parent peak RSS: %.1f MiB\n", static_cast<double>(usage.ru_maxrss) / 1024);
}
