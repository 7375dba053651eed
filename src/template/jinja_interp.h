// Jinja tree-walking interpreter: scopes (a fresh scope per loop iteration and per macro call, as jinja2
// compiles them), statements, expressions and macro/caller closures.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "template/jinja_ast.h"

namespace tqlm::jinja {

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find(const std::string& name) const;
  void set(const std::string& name, Value v);
};
using ScopeP = std::shared_ptr<Scope>;

// A render error already annotated with its template line; raised() marks raise_exception() messages.
struct RenderError : Error {
  RenderError(const std::string& msg, bool raised) : Error(msg), from_raise(raised) {}
  bool from_raise;
};
// Thrown by the raise_exception() global; carries the template's own message.
struct RaisedException : Error {
  using Error::Error;
};

enum class Flow { Normal, Break, Continue };

class Interp {
 public:
  explicit Interp(ScopeP globals) : globals_(std::move(globals)) {}
  // Macros hold their defining scope, which holds them: a reference cycle. A scope is emptied when its block
  // ends if nothing but its own macros holds it (see leave()); the few others are emptied here.
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;
  std::string render(const Body& body);
  Flow exec(const Body& body, const ScopeP& scope, std::string& out);
  Value eval(const Expr& e, const ScopeP& scope);
  Value call(const Value& fn, CallArgs& args);

 private:
  Flow exec_stmt(const Stmt& s, const ScopeP& scope, std::string& out);
  Flow exec_for(const Stmt& s, const ScopeP& scope, std::string& out);
  void assign(const Expr& target, const Value& v, const ScopeP& scope);
  Value eval_filter(const Expr& e, const ScopeP& scope, const Value* block_input);
  void eval_args(const Expr& e, const ScopeP& scope, CallArgs& args);
  Value make_macro(const Stmt& s, const ScopeP& defining, const std::string& name);
  ScopeP child(const ScopeP& parent);
  void leave(const ScopeP& scope) noexcept;
  // A scope made by child() for one block; leave() runs when the block ends, however it ends.
  struct Block {
    Interp& in;
    ScopeP scope;
    Block(Interp& i, const ScopeP& parent) : in(i), scope(i.child(parent)) {}
    ~Block() { in.leave(scope); }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;
  };

  ScopeP globals_;
  std::vector<std::weak_ptr<Scope>> kept_;  // scopes still held when their block ended (escaped macros)
  size_t kept_compacted_ = 64;
  std::vector<std::weak_ptr<Dict>> namespaces_;  // namespaces assigned to (see assign())
  int macro_depth_ = 0;
  int render_depth_ = 0;
};

}  // namespace tqlm::jinja
