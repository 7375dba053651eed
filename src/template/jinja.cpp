// Template front end: parse once, render with jinja2's globals (range, dict, namespace, joiner, cycler)
// plus transformers' raise_exception and strftime_now.
#include "template/jinja.h"

#include <ctime>
#include <new>
#include <stdexcept>

#include "template/jinja_builtins.h"
#include "template/jinja_interp.h"
#include "template/jinja_limits.h"
#include "template/jinja_parser.h"

namespace tqlm::jinja {

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value range_fn(CallArgs& a) {
  if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty()) fail("range expected 1 to 3 integer arguments");
  for (const auto& v : a.pos)
    if (!v.is_int()) fail("'{}' object cannot be interpreted as an integer", type_name(v));
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = a.pos[0].i;
  } else {
    start = a.pos[0].i;
    stop = a.pos[1].i;
    if (a.pos.size() == 3) step = a.pos[2].i;
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  ValueList out;
  for (int64_t k = start; step > 0 ? k < stop : k > stop;) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange)
      fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange);
    out.push_back(Value::integer(k));
    if (__builtin_add_overflow(k, step, &k)) break;  // past the ends of int64 is past stop too
  }
  return Value::make_list(std::move(out));
}

Value dict_from_args(CallArgs& a, const char* fn) {
  Value d = Value::make_dict();
  if (a.pos.size() > 1) fail("{} expected at most 1 positional argument, got {}", fn, a.pos.size());
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.kind == Kind::Dict) {
      *d.dict = *src.dict;
    } else {
      for (const auto& pair : iterate(src)) {
        ValueList kv = iterate(pair);
        if (kv.size() != 2) fail("{} update sequence element has length {}; 2 is required", fn, kv.size());
        d.dict->set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& kv : a.kw) d.dict->set(kv.first, kv.second);
  return d;
}

ScopeP make_globals() {
  auto g = std::make_shared<Scope>();
  g->set("range", Value::callable("range", range_fn));
  g->set("dict", Value::callable("dict", [](CallArgs& a) { return dict_from_args(a, "dict"); }));
  g->set("namespace", Value::callable("namespace", [](CallArgs& a) {
           Value ns = dict_from_args(a, "namespace");
           ns.kind = Kind::Namespace;
           return ns;
         }));
  g->set("raise_exception", Value::callable("raise_exception", [](CallArgs& a) -> Value {
           throw RaisedException(to_str(a.get(0, "message")));
         }));
  g->set("strftime_now", Value::callable("strftime_now", [](CallArgs& a) {
           std::string f = to_str(a.get(0, "format"));
           std::time_t now = std::time(nullptr);
           std::tm tm{};
           localtime_r(&now, &tm);
           char buf[512];
           size_t n = f.empty() ? 0 : std::strftime(buf, sizeof buf, f.c_str(), &tm);
           return Value::string(std::string(buf, n));
         }));
  g->set("joiner", Value::callable("joiner", [](CallArgs& a) {
           std::string sep = to_str(a.get(0, "sep", Value::string(", ")));
           auto used = std::make_shared<bool>(false);
           return Value::callable("joiner", [sep, used](CallArgs&) {
             if (!*used) {
               *used = true;
               return Value::string("");
             }
             return Value::string(sep);
           });
         }));
  g->set("cycler", Value::callable("cycler", [](CallArgs& a) {
           auto items = std::make_shared<ValueList>(a.pos);
           auto pos = std::make_shared<size_t>(0);
           Value c = Value::make_namespace();
           c.dict->set("next", Value::callable("next", [items, pos](CallArgs&) {
                         if (items->empty()) return Value::none();
                         Value v = (*items)[*pos % items->size()];
                         ++*pos;
                         return v;
                       }));
           return c;
         }));
  return g;
}

}  // namespace

Template::Template(std::string_view source, const LexOptions& opt) : body_(parse_template(source, opt)) {}

std::string Template::render(const Value& context) const {
  auto ctx = std::make_shared<Scope>();
  ctx->parent = make_globals();
  if (context.kind == Kind::Dict)
    for (const auto& kv : context.dict->items) ctx->set(to_str(kv.first), kv.second);
  RenderBudget budget;
  Interp in(ctx);
  try {
    return in.render(body_);
  } catch (const RenderError& e) {
    if (e.from_raise) throw TemplateRaised(e.what());
    throw Error(e.what());
  } catch (const std::bad_alloc&) {  // the limits should make this unreachable; never let it escape bare
    throw Error("template render ran out of memory");
  } catch (const std::length_error& e) {
    throw Error(fmt::format("template render: size error: {}", e.what()));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // a library call's own exception: still a template error
    throw Error(fmt::format("template render failed: {}", e.what()));
  }
}

}  // namespace tqlm::jinja
