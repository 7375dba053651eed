#include "eval/report.h"

#include <fmt/ranges.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/memory.h"
#include "eval/bench.h"
#include "eval/data_path.h"
#include "eval/heatmap_svg.h"
#include "eval/mmlu.h"
#include "eval/niah.h"
#include "eval/perplexity.h"
#include "eval/plot_svg.h"
#include "eval/svg_file.h"
#include "io/checkpoint.h"
#include "kv/kv_spec.h"
#include "quant/inspect.h"

namespace tqlm {

namespace {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// The sizes of each step: --quick (minutes on the default model) or the full report.
struct Sizes {
  int64_t ppl_ctx, ppl_windows;
  std::vector<std::string> mmlu_subjects;  // empty: every subject
  int64_t mmlu_n;
  std::vector<int64_t> niah_contexts;
  std::vector<double> niah_depths;
  std::vector<int64_t> bench_contexts;
  int64_t bench_decode;
};

Sizes sizes(bool quick) {
  if (quick)
    return {512,         4,           {"high_school_geography", "marketing", "philosophy"},
            20,          {512, 1024}, {10, 50, 90},
            {128, 1024}, 16};
  return {2048, 10, {}, 20, {1024, 2048, 4096, 8192}, {0, 25, 50, 75, 100}, {128, 2048, 8192}, 32};
}

void step(const std::string& what) {
  std::fprintf(stderr, "report: %s\n", what.c_str());
  std::fflush(stderr);
}

std::string base_name(const std::string& path) {
  const std::string n = fs::path(path).filename().string();
  return n.empty() ? fs::path(path).parent_path().filename().string() : n;
}

// Writes an SVG and, where rsvg-convert exists, a PNG beside it; returns the file name to link.
// name as a safe file name ("niah-auto:3s" -> "niah-auto_3s"): a ':' or '/' from a KV mode would make a bad
// file name and a markdown link that reads as a URL scheme.
std::string write_plot(const fs::path& dir, const std::string& raw_name, const std::string& svg) {
  const std::string name = safe_file_name(raw_name);
  write_svg_and_png((dir / (name + ".svg")).string(), svg, "report plot");
  return name + ".svg";
}

std::vector<int32_t> wiki_tokens(const std::string& path, const Tokenizer& tok) {
  return tok.encode(read_text_file(path, "WikiText file"), false);
}

PerplexityResult ppl(Model& m, const std::vector<int32_t>& tokens, const Sizes& z, const KVSpec& kv,
                     const std::string& save, const std::string& base) {
  PerplexityOptions po;
  po.ctx = z.ppl_ctx;
  po.samples = z.ppl_windows;
  po.kv = kv;
  po.parallel = 4;
  po.save_logits = save;
  po.kl_base = base;
  return run_perplexity(m, tokens, po);
}

double checkpoint_bpw(const std::string& path) {
  return inspect_checkpoint(Checkpoint(path)).total.bpw();
}
}  // namespace

ojson run_report(const ReportOptions& opt) {
  const Sizes z = sizes(opt.quick);
  const fs::path dir = opt.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("--out {}: cannot create the directory: {}", opt.out_dir, ec.message());
  const std::string wiki = opt.wiki.empty()
                               ? default_data_path((fs::path("wikitext-2") / "wiki.test.raw").string(), false)
                               : opt.wiki;
  const std::string mmlu_dir = opt.mmlu_dir.empty() ? default_data_path("mmlu", true) : opt.mmlu_dir;
  const std::string hay = opt.haystack.empty() ? wiki : opt.haystack;
  if (wiki.empty()) fail("report: no WikiText file: pass --wiki FILE or set TQLM_DATA");
  if (mmlu_dir.empty()) fail("report: no MMLU directory: pass --mmlu DIR or set TQLM_DATA");
  if (opt.kv_modes.empty()) fail("report: at least one --kv mode");
  const std::string calib = !opt.kv_calib.empty() ? opt.kv_calib
                            : fs::is_regular_file(fs::path(opt.model) / "kv-calib.json")
                                ? (fs::path(opt.model) / "kv-calib.json").string()
                                : "";
  auto spec = [&](const std::string& kv) { return KVSpec(kv, 2, calib); };

  ojson J;
  J["model"] = opt.model;
  J["baseline"] = opt.baseline;
  J["quick"] = opt.quick;
  J["kv_modes"] = opt.kv_modes;
  J["kv_calib"] = calib;
  J["data"] = {{"wiki", wiki}, {"mmlu", mmlu_dir}, {"haystack", hay}};

  step("inspect " + opt.model);
  const InspectReport ins = inspect_checkpoint(Checkpoint(opt.model));
  J["inspect"] = inspect_to_json(ins);
  const std::string inspect_table = format_inspect_table(ins);

  // Perplexity and KL: the reference run first (saved), then every mode against it.
  const std::string ref_file = (dir / "reference.logits").string();
  ChatSession cs({opt.model, opt.threads, KVSpec("bf16"), "", false, 1});
  // every mode checked against this model (and its calibration) now, not an hour in
  for (const auto& m : opt.kv_modes) kv_layout(spec(m), cs.model().config().kv_shape());
  const std::vector<int32_t> tokens = wiki_tokens(wiki, cs.tokenizer());
  ojson P = ojson::array();
  std::string ref_name;
  if (!opt.baseline.empty()) {
    step(fmt::format("perplexity: baseline {} (bf16 KV), {} windows of {}", opt.baseline, z.ppl_windows,
                     z.ppl_ctx));
    Model base(opt.baseline, opt.threads);
    const PerplexityResult r = ppl(base, tokens, z, spec("bf16"), ref_file, "");
    P.push_back({{"checkpoint", opt.baseline},
                 {"kv", "bf16"},
                 {"bpw", checkpoint_bpw(opt.baseline)},
                 {"ppl", r.ppl},
                 {"ppl_se", r.ppl_se},
                 {"kl", 0.0},
                 {"top1", 1.0}});
    ref_name = base_name(opt.baseline) + " with a bf16 cache";
  } else {
    ref_name = base_name(opt.model) + " with a bf16 cache (KL then measures the KV cache only)";
  }
  const double model_bpw = ins.total.bpw();
  for (size_t i = 0; i < opt.kv_modes.size(); ++i) {
    const std::string& kv = opt.kv_modes[i];
    const bool is_ref = opt.baseline.empty() && i == 0 && kv == "bf16";
    step(fmt::format("perplexity: {} (KV {})", opt.model, kv));
    if (opt.baseline.empty() && i == 0 && kv != "bf16") {  // the reference is the bf16 cache
      ppl(cs.model(), tokens, z, spec("bf16"), ref_file, "");
    }
    const PerplexityResult r =
        ppl(cs.model(), tokens, z, spec(kv), is_ref ? ref_file : "", is_ref ? "" : ref_file);
    P.push_back({{"checkpoint", opt.model},
                 {"kv", kv},
                 {"bpw", model_bpw},
                 {"ppl", r.ppl},
                 {"ppl_se", r.ppl_se},
                 {"kl", is_ref ? 0.0 : r.kl_mean},
                 {"top1", is_ref ? 1.0 : r.top1_agree}});
  }
  for (const std::string& other : opt.also) {
    step(fmt::format("perplexity: {} (bf16 KV)", other));
    Model m(other, opt.threads);
    const PerplexityResult r = ppl(m, tokens, z, spec("bf16"), "", ref_file);
    P.push_back({{"checkpoint", other},
                 {"kv", "bf16"},
                 {"bpw", checkpoint_bpw(other)},
                 {"ppl", r.ppl},
                 {"ppl_se", r.ppl_se},
                 {"kl", r.kl_mean},
                 {"top1", r.top1_agree}});
  }
  fs::remove(ref_file, ec);
  J["perplexity"] = {{"ctx", z.ppl_ctx}, {"windows", z.ppl_windows}, {"reference", ref_name}, {"runs", P}};

  // MMLU, NIAH and speed for every mode.
  const auto subjects = load_mmlu(mmlu_dir, z.mmlu_subjects, z.mmlu_n, 0, 5);
  const std::string hay_text = read_text_file(hay, "--haystack file");
  ojson M = ojson::array(), N = ojson::array(), S = ojson::array();
  std::vector<double> point_gbps;  // the read bandwidth measured beside each bench point
  std::vector<std::string> niah_files;
  const int64_t max_ctx = cs.model().config().max_position;
  for (const std::string& kv : opt.kv_modes) {
    step(fmt::format(
        "mmlu: {} questions (KV {})",
        [&] {
          size_t n = 0;
          for (const auto& s : subjects) n += s.test.size();
          return n;
        }(),
        kv));
    MmluOptions mo;
    mo.kv = spec(kv);
    const MmluResult mr = run_mmlu(cs, subjects, mo);
    ojson subj = ojson::array();
    for (const auto& s : mr.subjects)
      subj.push_back({{"subject", s.name}, {"n", s.n}, {"accuracy", s.acc()}});
    M.push_back({{"kv", kv},
                 {"n", mr.overall.n},
                 {"accuracy", mr.overall.acc()},
                 {"se", mr.overall.se()},
                 {"subjects", subj}});

    NiahOptions no;
    no.contexts.clear();
    for (int64_t c : z.niah_contexts)
      if (c <= max_ctx) no.contexts.push_back(c);
    no.contexts = no.contexts.empty() ? std::vector<int64_t>{std::min<int64_t>(512, max_ctx)} : no.contexts;
    no.depths = z.niah_depths;
    no.kv = spec(kv);
    no.haystack_name = hay;
    step(fmt::format("niah: {} contexts x {} depths (KV {})", no.contexts.size(), no.depths.size(), kv));
    const NiahResult nr = run_niah(cs, hay_text, no);
    Heatmap h;
    h.title = fmt::format("NIAH: {}, KV {}", base_name(opt.model), kv);
    h.subtitle =
        fmt::format("passed {}/{} (answer contains the 5-digit number)", nr.passed, nr.trials.size());
    h.x_name = "context (tokens)";
    h.y_name = "needle depth";
    for (int64_t c : no.contexts) h.cols.push_back(std::to_string(c));
    for (double d : no.depths) h.rows.push_back(fmt::format("{:g}%", d));
    h.values.assign(no.depths.size(), std::vector<double>(no.contexts.size()));
    h.text.assign(no.depths.size(), std::vector<std::string>(no.contexts.size()));
    ojson cells = ojson::array();
    for (size_t c = 0; c < no.contexts.size(); ++c)
      for (size_t d = 0; d < no.depths.size(); ++d) {
        const NiahTrial& t = nr.trials[c * no.depths.size() + d];
        h.values[d][c] = t.pass ? 1 : 0;
        h.text[d][c] = t.pass ? "ok" : "miss";
        cells.push_back({{"context", t.context_target}, {"depth", t.depth}, {"pass", t.pass}});
      }
    niah_files.push_back(write_plot(dir, "niah-" + kv, heatmap_svg(h)));
    N.push_back({{"kv", kv}, {"passed", nr.passed}, {"total", nr.trials.size()}, {"cells", cells}});

    BenchOptions bo;
    bo.contexts.clear();
    for (int64_t c : z.bench_contexts)
      if (c + z.bench_decode < max_ctx) bo.contexts.push_back(c);
    bo.decode = z.bench_decode;
    bo.kv = spec(kv);
    bo.probe_bandwidth = true;
    step(fmt::format("bench: contexts {} (KV {})", bo.contexts.size(), kv));
    const auto pts = run_bench(cs.model(), bo, [](const std::string&) {});
    ojson pj = ojson::array();
    for (const auto& p : pts) {
      pj.push_back({{"context", p.context},
                    {"prefill_tps", p.prefill_tps},
                    {"decode_tps", p.decode_tps},
                    {"achieved_gbps", p.achieved_gbps},
                    {"read_gbps", p.read_gbps},
                    {"bandwidth_fraction", p.bandwidth_share()}});
      point_gbps.push_back(p.read_gbps);
    }
    S.push_back({{"kv", kv}, {"points", pj}});
  }
  const double bw = median_of(point_gbps);
  J["mmlu"] = {{"mode", "loglik"}, {"shots", 5}, {"per_subject", z.mmlu_n}, {"runs", M}};
  J["niah"] = N;
  J["speed"] = {{"threads", cs.model().pool().size()}, {"isa", kernel_isa()},
                {"linear", linear_family()},           {"attention", attention_isa()},
                {"read_bandwidth_gbps", bw},           {"runs", S}};

  // KV plan: bytes per token for every mode, and the longest context in a memory budget.
  const KVShape shape = cs.model().config().kv_shape();
  ojson K = ojson::array();
  Plot kvp{"KV cache bytes against context", "context (tokens)", "KV cache (MiB)", true, true, true, {}};
  for (const std::string& kv : opt.kv_modes) {
    const KVLayout L = kv_layout(spec(kv), shape);
    K.push_back({{"kv", kv}, {"bytes_per_token", L.bytes_per_token()}, {"real_ratio", L.real_ratio()}});
    PlotSeries s{kv, {}, {}};
    for (int64_t c = 512; c <= std::max<int64_t>(max_ctx, 1024); c *= 2)
      s.points.push_back({double(c), double(c) * double(L.bytes_per_token()) / double(1 << 20)});
    kvp.series.push_back(std::move(s));
  }
  J["kv_plan"] = K;

  // Plots.
  step("plots and report.md");
  Plot pp{"Perplexity against bits per weight",
          "bits per weight",
          "perplexity (WikiText-2)",
          false,
          false,
          false,
          {}};
  for (const auto& r : P) {
    PlotSeries s{fmt::format("{} (KV {})", base_name(r["checkpoint"]), r["kv"].get<std::string>()), {}, {}};
    s.points.push_back({r["bpw"].get<double>(), r["ppl"].get<double>()});
    s.labels.push_back(fmt::format("{:.2f}", r["ppl"].get<double>()));
    pp.series.push_back(std::move(s));
  }
  const std::string ppl_svg = write_plot(dir, "perplexity-vs-bpw", plot_svg(pp));
  const std::string kv_svg = write_plot(dir, "kv-bytes", plot_svg(kvp));
  Plot sp{"Decode speed against depth",
          "context before decoding (tokens)",
          "decode tokens/s",
          true,
          true,
          true,
          {}};
  for (const auto& r : S) {
    PlotSeries s{r["kv"], {}, {}};
    for (const auto& p : r["points"])
      s.points.push_back({p["context"].get<double>(), p["decode_tps"].get<double>()});
    sp.series.push_back(std::move(s));
  }
  const std::string speed_svg = write_plot(dir, "speed-vs-depth", plot_svg(sp));

  // report.md
  std::string md = fmt::format("# tqlm report: {}\n\n", base_name(opt.model));
  md += fmt::format("`tqlm report {}{} --kv {}{}{}` ({}). Data: {}, {}.\n\n", opt.model,
                    opt.baseline.empty() ? "" : " --baseline " + opt.baseline, fmt::join(opt.kv_modes, ","),
                    calib.empty() ? "" : " --kv-calib " + calib, opt.quick ? " --quick" : "",
                    opt.quick ? "quick: small windows, subsets and grids" : "full", wiki, mmlu_dir);
  md += "## Checkpoint\n\n```\n" + inspect_table + "```\n\n";
  md += fmt::format("## Perplexity and KL (WikiText-2, {} windows of {} tokens; reference: {})\n\n",
                    z.ppl_windows, z.ppl_ctx, ref_name);
  md +=
      "| checkpoint | KV | bits/weight | PPL | +/- | KL | top-1 agreement |\n|---|---|---|---|---|---|---|\n";
  for (const auto& r : P)
    md +=
        fmt::format("| {} | {} | {:.3f} | {:.4f} | {:.4f} | {:.5f} | {:.3f} |\n", base_name(r["checkpoint"]),
                    r["kv"].get<std::string>(), r["bpw"].get<double>(), r["ppl"].get<double>(),
                    r["ppl_se"].get<double>(), r["kl"].get<double>(), r["top1"].get<double>());
  md += fmt::format("\n![perplexity against bits per weight]({})\n\n", ppl_svg);
  md += fmt::format(
      "## MMLU (loglik, 5-shot, {} questions per subject, {} subjects)\n\n| KV | questions | "
      "accuracy % | +/- |\n|---|---|---|---|\n",
      z.mmlu_n, subjects.size());
  for (const auto& r : M)
    md += fmt::format("| {} | {} | {:.2f} | {:.2f} |\n", r["kv"].get<std::string>(), r["n"].get<int64_t>(),
                      100 * r["accuracy"].get<double>(), 100 * r["se"].get<double>());
  md += "\n## Needle in a haystack\n\n| KV | passed |\n|---|---|\n";
  for (const auto& r : N)
    md += fmt::format("| {} | {}/{} |\n", r["kv"].get<std::string>(), r["passed"].get<int64_t>(),
                      r["total"].get<int64_t>());
  md += "\n";
  for (const auto& f : niah_files) md += fmt::format("![{}]({})\n", f, f);
  md += fmt::format(
      "\n## Speed ({} threads, linear {}, attention {}, measured read bandwidth {:.1f} GB/s)\n\n| KV | "
      "context | prefill "
      "tok/s | decode tok/s | GB/s | % of bandwidth |\n|---|---|---|---|---|---|\n",
      cs.model().pool().size(), linear_family(), attention_isa(), bw);
  for (const auto& r : S)
    for (const auto& p : r["points"])
      md += fmt::format("| {} | {} | {:.1f} | {:.1f} | {:.2f} | {:.1f} |\n", r["kv"].get<std::string>(),
                        p["context"].get<int64_t>(), p["prefill_tps"].get<double>(),
                        p["decode_tps"].get<double>(), p["achieved_gbps"].get<double>(),
                        100 * p["bandwidth_fraction"].get<double>());
  md += fmt::format(
      "\n![decode speed against depth]({})\n\n## KV cache\n\n| KV | bytes/token | vs bf16 |\n|---|---|"
      "---|\n",
      speed_svg);
  for (const auto& r : K)
    md += fmt::format("| {} | {} | {:.2f}x smaller |\n", r["kv"].get<std::string>(),
                      r["bytes_per_token"].get<int64_t>(), r["real_ratio"].get<double>());
  md += fmt::format("\n![KV bytes against context]({})\n", kv_svg);
  write_file_atomic((dir / "report.md").string(), md, "report");
  write_file_atomic((dir / "report.json").string(), J.dump(1) + "\n", "report");
  step(fmt::format("wrote {}/report.md, report.json and the plots", opt.out_dir));
  return J;
}

}  // namespace tqlm
