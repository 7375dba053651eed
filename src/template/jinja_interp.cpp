// Jinja tree-walking interpreter. Runtime errors are annotated with the template line of the statement
// being executed; raise_exception() messages pass through verbatim.
#include "template/jinja_interp.h"

#include <algorithm>

#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"

namespace tqlm::jinja {

const Value* Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get())
    for (const auto& kv : s->vars)
      if (kv.first == name) return &kv.second;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& kv : vars)
    if (kv.first == name) {
      kv.second = std::move(v);
      return;
    }
  vars.emplace_back(name, std::move(v));
}

ScopeP Interp::child(const ScopeP& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

void Interp::leave(const ScopeP& scope) noexcept {
  // Held by the caller and by each macro defined in it that nothing else holds: a cycle only, empty it now.
  long own = 1;
  for (const auto& kv : scope->vars)
    if (kv.second.kind == Kind::Callable && kv.second.fn->owner == scope.get() &&
        kv.second.fn.use_count() == 1)
      ++own;
  if (scope.use_count() <= own) {
    scope->vars.clear();
    return;
  }
  try {
    kept_.push_back(scope);
    if (kept_.size() >= 2 * kept_compacted_) {
      std::erase_if(kept_, [](const std::weak_ptr<Scope>& w) { return w.expired(); });
      kept_compacted_ = std::max<size_t>(64, kept_.size());
    }
  } catch (...) {  // no memory to remember it: it may leak, the render goes on
  }
}

Interp::~Interp() {
  for (auto& w : kept_)
    if (auto s = w.lock()) s->vars.clear();
  for (auto& w : namespaces_)
    if (auto d = w.lock()) d->items.clear();
}

static void emit(std::string& out, std::string_view piece) {
  if (out.size() + piece.size() > kMaxOutputBytes)
    fail_limit("template output", "kMaxOutputBytes", kMaxOutputBytes);
  out.append(piece);
}

std::string Interp::render(const Body& body) {
  std::string out;
  Block root(*this, globals_);
  exec(body, root.scope, out);
  return out;
}

Flow Interp::exec(const Body& body, const ScopeP& scope, std::string& out) {
  DepthGuard guard(render_depth_, kMaxRenderDepth, "rendering depth", "kMaxRenderDepth");
  for (const auto& s : body) {
    Flow f;
    try {
      f = exec_stmt(*s, scope, out);
    } catch (const RenderError&) {
      throw;
    } catch (const RaisedException& e) {
      throw RenderError(e.what(), true);
    } catch (const Error& e) {
      throw RenderError(fmt::format("template error (line {}): {}", s->line, e.what()), false);
    }
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Flow Interp::exec_stmt(const Stmt& s, const ScopeP& scope, std::string& out) {
  switch (s.kind) {
    case SK::Output:
      emit(out, s.text);
      return Flow::Normal;
    case SK::Print:
      emit(out, to_str(eval(*s.expr, scope)));
      return Flow::Normal;
    case SK::If:
      return exec(truthy(eval(*s.expr, scope)) ? s.body : s.else_body, scope, out);
    case SK::For:
      return exec_for(s, scope, out);
    case SK::Set:
      assign(*s.target, eval(*s.expr, scope), scope);
      return Flow::Normal;
    case SK::SetBlock: {
      std::string buf;
      exec(s.body, Block(*this, scope).scope, buf);
      Value v = Value::string(std::move(buf));
      if (s.cond) v = eval_filter(*s.cond, scope, &v);
      assign(*s.target, v, scope);
      return Flow::Normal;
    }
    case SK::Macro:
      scope->set(s.text, make_macro(s, scope, s.text));
      return Flow::Normal;
    case SK::CallBlock: {
      const Expr& call = *s.expr;
      Value fn = eval(*call.a, scope);
      CallArgs args;
      eval_args(call, scope, args);
      args.kw.emplace_back("caller", make_macro(s, scope, "caller"));
      emit(out, to_str(this->call(fn, args)));
      return Flow::Normal;
    }
    case SK::FilterBlock: {
      std::string buf;
      exec(s.body, Block(*this, scope).scope, buf);
      Value v = Value::string(std::move(buf));
      emit(out, to_str(eval_filter(*s.expr, scope, &v)));
      return Flow::Normal;
    }
    case SK::Break:
      return Flow::Break;
    case SK::Continue:
      return Flow::Continue;
    case SK::Scope:
      return exec(s.body, scope, out);
  }
  return Flow::Normal;
}

Flow Interp::exec_for(const Stmt& s, const ScopeP& scope, std::string& out) {
  Value iterable = eval(*s.expr, scope);
  ValueList items = iterate(iterable);
  if (s.cond) {
    ValueList kept;
    for (auto& item : items) {
      Block tmp(*this, scope);
      assign(*s.target, item, tmp.scope);
      if (truthy(eval(*s.cond, tmp.scope))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec(s.else_body, Block(*this, scope).scope, out);
    return Flow::Normal;
  }
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t k = 0; k < n; ++k) {
    charge_iterations(1);
    Block block(*this, scope);
    const ScopeP& iter_scope = block.scope;
    assign(*s.target, items[static_cast<size_t>(k)], iter_scope);
    Value loop = Value::make_dict();
    auto& d = loop.dict->items;  // distinct keys: appended without the lookups of Dict::set
    d.emplace_back(Value::string("index"), Value::integer(k + 1));
    d.emplace_back(Value::string("index0"), Value::integer(k));
    d.emplace_back(Value::string("revindex"), Value::integer(n - k));
    d.emplace_back(Value::string("revindex0"), Value::integer(n - k - 1));
    d.emplace_back(Value::string("first"), Value::boolean(k == 0));
    d.emplace_back(Value::string("last"), Value::boolean(k == n - 1));
    d.emplace_back(Value::string("length"), Value::integer(n));
    d.emplace_back(Value::string("depth"), Value::integer(1));
    d.emplace_back(Value::string("depth0"), Value::integer(0));
    d.emplace_back(Value::string("previtem"),
                   k > 0 ? items[static_cast<size_t>(k - 1)] : Value::undefined("there is no previous item"));
    d.emplace_back(Value::string("nextitem"),
                   k + 1 < n ? items[static_cast<size_t>(k + 1)] : Value::undefined("there is no next item"));
    d.emplace_back(Value::string("cycle"), Value::callable("cycle", [k](CallArgs& a) -> Value {
                     if (a.pos.empty()) fail("no items for cycling given");
                     return a.pos[static_cast<size_t>(k) % a.pos.size()];
                   }));
    iter_scope->set("loop", std::move(loop));
    Flow f = exec(s.body, iter_scope, out);
    if (f == Flow::Break) break;
  }
  return Flow::Normal;
}

void Interp::assign(const Expr& target, const Value& v, const ScopeP& scope) {
  if (target.kind == EK::Name) {
    scope->set(target.name, v);
  } else if (target.kind == EK::NSRef) {
    const Value* ns = scope->find(target.name);
    if (!ns || ns->kind != Kind::Namespace)
      fail("cannot assign attribute on non-namespace object '{}'", target.name);
    ns->dict->set(target.ops[0], v);
    if (!ns->dict
             ->tracked) {  // `set ns.x = ns` makes a cycle: every assigned namespace is emptied at the end
      namespaces_.push_back(ns->dict);
      ns->dict->tracked = true;
    }
  } else if (target.kind == EK::Tuple) {
    ValueList items = iterate(v);
    if (items.size() != target.args.size())
      fail("{} values to unpack (expected {}, got {})",
           items.size() > target.args.size() ? "too many" : "not enough", target.args.size(), items.size());
    for (size_t k = 0; k < items.size(); ++k) assign(*target.args[k], items[k], scope);
  } else {
    fail("cannot assign to this expression");
  }
}

Value Interp::make_macro(const Stmt& s, const ScopeP& defining, const std::string& name) {
  const Stmt* sp = &s;
  Value macro = Value::callable(name, [this, sp, defining, name](CallArgs& args) -> Value {
    DepthGuard guard(macro_depth_, kMaxMacroDepth, fmt::format("recursion of macro '{}'", name),
                     "kMaxMacroDepth");
    Block block(*this, defining);
    const ScopeP& sc = block.scope;
    const size_t np = sp->params.size(), nd = sp->defaults.size();
    for (size_t k = 0; k < np; ++k) {
      const std::string& p = sp->params[k];
      if (k < args.pos.size()) {
        sc->set(p, args.pos[k]);
      } else if (const Value* kv = args.kwarg(p)) {
        sc->set(p, *kv);
      } else if (k >= np - nd) {
        sc->set(p, eval(*sp->defaults[k - (np - nd)], sc));
      } else {
        sc->set(p, Value::undefined("parameter '" + p + "' was not provided"));
      }
    }
    ValueList extra;
    for (size_t k = np; k < args.pos.size(); ++k) extra.push_back(args.pos[k]);
    sc->set("varargs", Value::make_tuple(std::move(extra)));
    Value kwargs = Value::make_dict();
    for (const auto& kv : args.kw) {
      bool is_param = false;
      for (const auto& p : sp->params) is_param = is_param || p == kv.first;
      if (kv.first == "caller")
        sc->set("caller", kv.second);
      else if (!is_param)
        kwargs.dict->set(kv.first, kv.second);
    }
    sc->set("kwargs", kwargs);
    std::string out;
    exec(sp->body, sc, out);
    return Value::string(std::move(out));
  });
  macro.fn->owner = defining.get();
  return macro;
}

Value Interp::call(const Value& fn, CallArgs& args) {
  if (fn.is_undefined()) undefined_error(fn);
  if (fn.kind != Kind::Callable) fail("'{}' object is not callable", type_name(fn));
  return fn.fn->fn(args);
}

void Interp::eval_args(const Expr& e, const ScopeP& scope, CallArgs& args) {
  for (const auto& a : e.args) args.pos.push_back(eval(*a, scope));
  for (const auto& kv : e.kwargs) args.kw.emplace_back(kv.first, eval(*kv.second, scope));
}

Value Interp::eval_filter(const Expr& e, const ScopeP& scope, const Value* block_input) {
  Value input;
  if (!e.a)
    input = *block_input;
  else if (e.a->kind == EK::Filter)
    input = eval_filter(*e.a, scope, block_input);
  else
    input = eval(*e.a, scope);
  CallArgs args;
  eval_args(e, scope, args);
  return call_filter(*this, e.name, input, args);
}

Value Interp::eval(const Expr& e, const ScopeP& scope) {
  DepthGuard guard(render_depth_, kMaxRenderDepth, "rendering depth", "kMaxRenderDepth");
  switch (e.kind) {
    case EK::Const:
      return e.value;
    case EK::Name: {
      const Value* v = scope->find(e.name);
      if (!v) return Value::undefined("'" + e.name + "' is undefined");
      charge_bytes(v->s.size());  // a copy
      return *v;
    }
    case EK::NSRef:
      fail("namespace reference used outside an assignment");
    case EK::List:
    case EK::Tuple: {
      ValueList items;
      for (const auto& a : e.args) items.push_back(eval(*a, scope));
      return e.kind == EK::List ? Value::make_list(std::move(items)) : Value::make_tuple(std::move(items));
    }
    case EK::Dict: {
      Value d = Value::make_dict();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2)
        d.dict->set(eval(*e.args[k], scope), eval(*e.args[k + 1], scope));
      return d;
    }
    case EK::Getattr:
      return get_attr(eval(*e.a, scope), e.name);
    case EK::Getitem: {
      Value obj = eval(*e.a, scope);
      if (e.b->kind == EK::Slice) {
        auto part = [&](size_t k) { return e.b->args[k] ? eval(*e.b->args[k], scope) : Value::none(); };
        return slice_value(obj, part(0), part(1), part(2));
      }
      return get_item(obj, eval(*e.b, scope));
    }
    case EK::Slice:
      fail("slice used outside a subscript");
    case EK::Call: {
      Value fn = eval(*e.a, scope);
      CallArgs args;
      eval_args(e, scope, args);
      return call(fn, args);
    }
    case EK::Filter:
      return eval_filter(e, scope, nullptr);
    case EK::Test: {
      Value v = eval(*e.a, scope);
      CallArgs args;
      eval_args(e, scope, args);
      return Value::boolean(call_test(*this, e.name, v, args));
    }
    case EK::Neg:
      return negate(eval(*e.a, scope), true);
    case EK::Pos:
      return negate(eval(*e.a, scope), false);
    case EK::Not:
      return Value::boolean(!truthy(eval(*e.a, scope)));
    case EK::Binary:
      return binary_op(e.name, eval(*e.a, scope), eval(*e.b, scope));
    case EK::Concat: {
      std::string out;
      for (const auto& a : e.args) append_checked(out, to_str(eval(*a, scope)), "~");
      return Value::string(std::move(out));
    }
    case EK::Compare: {
      Value left = eval(*e.a, scope);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.args[k], scope);
        if (!compare_op(e.ops[k], left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case EK::And: {
      Value l = eval(*e.a, scope);
      return truthy(l) ? eval(*e.b, scope) : l;
    }
    case EK::Or: {
      Value l = eval(*e.a, scope);
      return truthy(l) ? l : eval(*e.b, scope);
    }
    case EK::CondExpr:
      if (truthy(eval(*e.b, scope))) return eval(*e.a, scope);
      return e.c ? eval(*e.c, scope)
                 : Value::undefined(
                       "the inline if-expression evaluated to false and no else section was defined");
  }
  return Value::undefined();
}

}  // namespace tqlm::jinja
