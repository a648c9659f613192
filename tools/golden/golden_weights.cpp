// zimage_golden_weights: writes back the synthetic-weight files of golden/models/ that git
// does not keep (docs/goldens.md, "Materialized weights"; tools/golden/split_weights.py made
// what it reads).
//
//   zimage_golden_weights GOLDEN_DIR [--force]
//
// For each row of GOLDEN_DIR/weights/MANIFEST.tsv (path, golden holding the spec, bytes):
// the file's header is GOLDEN_DIR/weights/<path>.header.json, verbatim as diffusers wrote it;
// every tensor's bytes are zimage::synthetic_fill of the golden's `synthetic_weights` spec
// (bit-identical to tools/golden/synthetic.py, tests/unit/test_synthetic_crosscheck.cpp), at
// the header's offsets. A file that exists with the manifest's size is kept unless --force.
// Each file is written to a temporary name of its own (mkstemp) and renamed, so a reader (or a
// second build tree writing the same file) never sees half a file. cmake/golden_weights.cmake runs this and
// then compares every file with weights/SHA256SUMS, the digests of the files diffusers wrote.
//
// Bad input (a missing or malformed manifest, header or spec; a tensor the spec does not
// describe) is one line naming the file and exit 2.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/param_source.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zimage;

namespace {

struct Row {
  std::string path, spec_golden;
  int64_t bytes = 0;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  ZIMAGE_CHECK(f.good(), p.string() + ": cannot open");
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<Row> read_manifest(const fs::path& file) {
  std::vector<Row> rows;
  std::istringstream in(read_bytes(file));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream f(line);
    Row r;
    std::string bytes;
    ZIMAGE_CHECK(std::getline(f, r.path, '\t') && std::getline(f, r.spec_golden, '\t') && std::getline(f, bytes) &&
                     !r.path.empty() && !r.spec_golden.empty(),
                 file.string() + ":" + std::to_string(n) + ": expected path TAB golden TAB bytes");
    try {
      size_t used = 0;
      r.bytes = std::stoll(bytes, &used);
      ZIMAGE_CHECK(used == bytes.size() && r.bytes > 8, "");
    } catch (const std::exception&) {
      throw Error(file.string() + ":" + std::to_string(n) + ": bytes '" + bytes + "' is not a size");
    }
    ZIMAGE_CHECK(r.path.find("..") == std::string::npos && r.path[0] != '/',
                 file.string() + ":" + std::to_string(n) + ": path '" + r.path + "' leaves golden/");
    rows.push_back(r);
  }
  ZIMAGE_CHECK(!rows.empty(), file.string() + ": no rows");
  return rows;
}

// The file as diffusers wrote it: 8-byte little-endian header length, the header, the data.
std::string build_file(const fs::path& golden, const Row& row, const ParamSource& spec) {
  const fs::path hdr_path = golden / "weights" / (row.path + ".header.json");
  const std::string hdr = read_bytes(hdr_path);
  const std::string ctx = hdr_path.string();
  json h;
  try {
    h = json::parse(hdr);
  } catch (const json::exception&) {
    throw Error(ctx + ": not valid JSON");
  }
  ZIMAGE_CHECK(h.is_object(), ctx + ": not a JSON object");
  const int64_t data_start = 8 + int64_t(hdr.size());
  ZIMAGE_CHECK(row.bytes >= data_start, ctx + ": the manifest's " + std::to_string(row.bytes) +
                                            " bytes do not hold the header");
  std::string out(size_t(row.bytes), '\0');
  uint64_t n = hdr.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, hdr.data(), hdr.size());
  const auto shapes = spec.shapes();
  for (const auto& [name, t] : h.items()) {
    if (name == "__metadata__") continue;
    const std::string tctx = ctx + ": tensor '" + name + "'";
    ZIMAGE_CHECK(t.is_object() && t.value("dtype", "") == "F32", tctx + ": not an F32 entry");
    const auto it = shapes.find(name);
    ZIMAGE_CHECK(it != shapes.end(), tctx + ": not in " + row.spec_golden + "'s synthetic_weights");
    ZIMAGE_CHECK(t.contains("shape") && t["shape"] == json(it->second), tctx + ": shape differs from the spec's");
    const json& off = t.value("data_offsets", json());
    ZIMAGE_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
                 tctx + ": bad data_offsets");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    const uint64_t numel = uint64_t(shape_numel(it->second));
    ZIMAGE_CHECK(b <= e && e <= uint64_t(row.bytes - data_start) && e - b == 4 * numel,
                 tctx + ": data_offsets do not fit");
    const Tensor<double> v = spec.load(name);  // float32 values, exact in double
    float* dst = reinterpret_cast<float*>(out.data() + data_start + b);
    for (uint64_t k = 0; k < numel; ++k) {
      const float x = float(v[k]);
      std::memcpy(dst + k, &x, 4);
    }
  }
  return out;
}

void write_atomically(const fs::path& out, const std::string& bytes) {
  fs::create_directories(out.parent_path());
  // A name no other writer uses (mkstemp), so two build trees never share a temporary file.
  std::string tmpl = out.string() + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  ZIMAGE_CHECK(fd >= 0, out.string() + ": cannot create a temporary file beside it");
  const fs::path tmp = tmpl;
  std::error_code ec;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += size_t(n);
  }
  const bool closed = ::close(fd) == 0;
  if (done != bytes.size() || !closed) {
    fs::remove(tmp, ec);
    throw Error(tmp.string() + ": write failed");
  }
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read,
                  ec);
  fs::rename(tmp, out, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(out.string() + ": cannot rename the written file into place");
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    ZIMAGE_CHECK(argc == 2 || (argc == 3 && std::string(argv[2]) == "--force"),
                 "usage: zimage_golden_weights GOLDEN_DIR [--force]");
    const fs::path golden = argv[1];
    const bool force = argc == 3;
    std::map<std::string, std::shared_ptr<ParamSource>> specs;
    int written = 0, kept = 0;
    for (const Row& row : read_manifest(golden / "weights" / "MANIFEST.tsv")) {
      const fs::path out = golden / row.path;
      std::error_code ec;
      if (!force && fs::is_regular_file(out, ec) && int64_t(fs::file_size(out, ec)) == row.bytes) {
        ++kept;
        continue;
      }
      auto& spec = specs[row.spec_golden];
      if (!spec) {
        const fs::path g = golden / row.spec_golden;
        const auto file = SafetensorsFile::open(g.string());
        const auto& meta = file->metadata();
        const auto it = meta.find("synthetic_weights");
        ZIMAGE_CHECK(it != meta.end(), g.string() + ": no synthetic_weights metadata");
        spec = synthetic_param_source(it->second);
      }
      write_atomically(out, build_file(golden, row, *spec));
      ++written;
    }
    std::printf("zimage_golden_weights: %d written, %d kept (%s)\n", written, kept, golden.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zimage_golden_weights: error: %s\n", e.what());
    return 2;
  }
}
