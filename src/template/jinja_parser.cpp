// Jinja parser following jinja2/parser.py: the same precedence climbing (condexpr > or > and > not >
// compare > + - > ~ > * / // % > ** > unary > postfix/filters/tests) and statement grammar.
#include "template/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "core/error.h"
#include "template/jinja_limits.h"

namespace tqlm::jinja {

namespace {

using Rules = std::initializer_list<const char*>;

struct Parser {
  std::vector<Token> toks;
  size_t p = 0;
  int depth = 0;  // blocks, brackets and unary operators being parsed inside each other (kMaxNesting)

  const Token& cur() const { return toks[p]; }
  const Token& look() const { return toks[std::min(p + 1, toks.size() - 1)]; }
  const Token& next() { return toks[p < toks.size() - 1 ? p++ : p]; }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Eof:
        return "end of template";
      case Tok::BlockEnd:
        return "end of statement block";
      case Tok::VarEnd:
        return "end of print statement";
      case Tok::BlockBegin:
        return "begin of statement block";
      case Tok::VarBegin:
        return "begin of print statement";
      case Tok::Data:
        return "template data / text";
      case Tok::String:
        return "string";
      case Tok::Int:
        return "integer";
      case Tok::Float:
        return "float";
      default:
        return t.text;
    }
  }
  [[noreturn]] void error(int line, const std::string& msg) const {
    fail("template syntax error (line {}): {}", line, msg);
  }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool is_op(const char* o) const { return cur().type == Tok::Op && cur().text == o; }
  bool test_any(Rules rules) const {
    for (const char* r : rules)
      if (is_name(r)) return true;
    return false;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  bool skip_op(const char* o) {
    if (!is_op(o)) return false;
    next();
    return true;
  }
  void expect_op(const char* o) {
    if (!skip_op(o))
      error(cur().line, "expected token '" + std::string(o) + "', got '" + describe(cur()) + "'");
  }
  void expect(Tok t, const char* what) {
    if (cur().type != t)
      error(cur().line, std::string("expected token '") + what + "', got '" + describe(cur()) + "'");
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error(cur().line, "expected token 'name', got '" + describe(cur()) + "'");
    return next().text;
  }

  // One more nesting level while alive: a syntax error naming kMaxNesting past the limit.
  struct Nest {
    Parser& ps;
    explicit Nest(Parser& p) : ps(p) {
      if (ps.depth >= kMaxNesting)
        ps.error(ps.cur().line,
                 fmt::format("nesting exceeds the template limit kMaxNesting = {}", kMaxNesting));
      ++ps.depth;
    }
    ~Nest() { --ps.depth; }
  };

  // Sets e's depth from its children; a syntax error when the tree passes kMaxNesting (operator chains).
  ExprP fin(ExprP e) const {
    int d = 0;
    for (const Expr* c : {e->a.get(), e->b.get(), e->c.get()})
      if (c) d = std::max(d, c->depth);
    for (const auto& c : e->args)
      if (c) d = std::max(d, c->depth);
    for (const auto& kv : e->kwargs) d = std::max(d, kv.second->depth);
    e->depth = d + 1;
    if (e->depth > kMaxNesting)
      error(e->line,
            fmt::format("expression nested deeper than the template limit kMaxNesting = {}", kMaxNesting));
    return e;
  }

  static ExprP make(EK k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }
  static StmtP make_stmt(SK k, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = line;
    return s;
  }

  // ---- statements ----
  Body subparse(Rules end_tokens, bool top) {
    Body body;
    while (cur().type != Tok::Eof) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        auto s = make_stmt(SK::Output, t.line);
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::VarBegin) {
        int line = t.line;
        next();
        auto s = make_stmt(SK::Print, line);
        s->expr = parse_tuple(false, true, {}, false, false);
        expect(Tok::VarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        next();
        if (!top && test_any(end_tokens)) return body;
        body.push_back(parse_statement());
        expect(Tok::BlockEnd, "end of statement block");
      } else {
        error(t.line, "unexpected '" + describe(t) + "'");
      }
    }
    return body;
  }

  Body parse_statements(Rules end_tokens, bool drop_needle, const char* opener, int open_line) {
    skip_op(":");
    expect(Tok::BlockEnd, "end of statement block");
    Body body = subparse(end_tokens, false);
    if (cur().type == Tok::Eof) {
      std::string want;
      for (const char* r : end_tokens) want += (want.empty() ? "'" : " or '") + std::string(r) + "'";
      error(open_line, "unexpected end of template: '" + std::string(opener) +
                           "' block opened here is not closed (" + "looking for " + want + ")");
    }
    if (drop_needle) next();
    return body;
  }

  StmtP parse_statement() {
    Nest nest(*this);
    const Token& t = cur();
    if (t.type != Tok::Name) error(t.line, "tag name expected");
    std::string tag = t.text;
    int line = t.line;
    if (tag == "for") return parse_for();
    if (tag == "if") return parse_if();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") return parse_filter_block();
    if (tag == "break" || tag == "continue") {
      next();
      return make_stmt(tag == "break" ? SK::Break : SK::Continue, line);
    }
    if (tag == "generation") {  // transformers' AssistantTracker extension: renders its body unchanged
      next();
      auto s = make_stmt(SK::Scope, line);
      s->body = parse_statements({"endgeneration"}, true, "generation", line);
      return s;
    }
    error(line, "encountered unknown or unsupported tag '" + tag + "'");
  }

  StmtP parse_for() {
    int line = next().line;
    auto s = make_stmt(SK::For, line);
    s->target = parse_assign_target(true, false, {"in"}, false);
    if (!skip_name("in")) error(cur().line, "expected 'in', got '" + describe(cur()) + "'");
    s->expr = parse_tuple(false, false, {"recursive"}, false, false);
    if (skip_name("if")) s->cond = parse_expression(true);
    s->recursive = skip_name("recursive");
    if (s->recursive) error(line, "recursive for loops are not supported");
    s->body = parse_statements({"endfor", "else"}, false, "for", line);
    if (next().text != "endfor") s->else_body = parse_statements({"endfor"}, true, "for", line);
    return s;
  }

  StmtP parse_if() {
    int line = next().line;
    auto root = make_stmt(SK::If, line);
    Stmt* node = root.get();
    const int outer_depth = depth;  // each elif nests one If inside the previous one's else branch
    for (;;) {
      node->expr = parse_tuple(false, false, {}, false, false);
      node->body = parse_statements({"elif", "else", "endif"}, false, "if", line);
      const Token& t = next();
      if (t.text == "elif") {
        if (++depth > kMaxNesting)
          error(t.line, fmt::format("elif chain exceeds the template limit kMaxNesting = {}", kMaxNesting));
        auto elif = make_stmt(SK::If, t.line);
        Stmt* raw = elif.get();
        node->else_body.push_back(std::move(elif));
        node = raw;
        continue;
      }
      if (t.text == "else") node->else_body = parse_statements({"endif"}, true, "if", line);
      break;
    }
    depth = outer_depth;
    return root;
  }

  StmtP parse_set() {
    int line = next().line;
    ExprP target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      auto s = make_stmt(SK::Set, line);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false, false);
      return s;
    }
    auto s = make_stmt(SK::SetBlock, line);
    s->target = std::move(target);
    if (is_op("|")) s->cond = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true, "set", line);
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      s.params.push_back(expect_name());
      if (skip_op("=")) {
        s.defaults.push_back(parse_expression(true));
      } else if (!s.defaults.empty()) {
        error(cur().line, "non-default argument follows default argument");
      }
    }
    expect_op(")");
  }

  StmtP parse_macro() {
    int line = next().line;
    auto s = make_stmt(SK::Macro, line);
    s->text = expect_name();
    parse_signature(*s);
    s->body = parse_statements({"endmacro"}, true, "macro", line);
    return s;
  }

  StmtP parse_call_block() {
    int line = next().line;
    auto s = make_stmt(SK::CallBlock, line);
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != EK::Call) error(line, "expected call");
    s->body = parse_statements({"endcall"}, true, "call", line);
    return s;
  }

  StmtP parse_filter_block() {
    int line = next().line;
    auto s = make_stmt(SK::FilterBlock, line);
    s->expr = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true, "filter", line);
    return s;
  }

  ExprP parse_assign_target(bool with_tuple, bool name_only, Rules extra_end, bool with_namespace) {
    ExprP target;
    if (name_only) {
      target = make(EK::Name, cur().line);
      target->name = expect_name();
    } else if (with_tuple) {
      target = parse_tuple(true, true, extra_end, false, with_namespace);
    } else {
      target = parse_primary(with_namespace);
    }
    check_assignable(*target);
    return target;
  }
  void check_assignable(const Expr& e) const {
    if (e.kind == EK::Name || e.kind == EK::NSRef) return;
    if (e.kind == EK::Tuple) {
      for (const auto& x : e.args) check_assignable(*x);
      return;
    }
    error(e.line, "can't assign to this expression");
  }

  // ---- expressions ----
  bool is_tuple_end(Rules extra_end) const {
    Tok t = cur().type;
    if (t == Tok::VarEnd || t == Tok::BlockEnd || is_op(")")) return true;
    return test_any(extra_end);
  }

  ExprP parse_tuple(bool simplified, bool with_condexpr, Rules extra_end, bool explicit_parens,
                    bool with_ns) {
    int line = cur().line;
    std::vector<ExprP> args;
    bool is_tuple = false;
    for (;;) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_ns) : parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
      line = cur().line;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) error(cur().line, "expected an expression, got '" + describe(cur()) + "'");
    }
    auto e = make(EK::Tuple, line);
    e->args = std::move(args);
    return fin(std::move(e));
  }

  ExprP parse_expression(bool with_condexpr) {
    Nest nest(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprP parse_condexpr() {
    int line = cur().line;
    ExprP expr1 = parse_or();
    while (skip_name("if")) {
      auto e = make(EK::CondExpr, line);
      e->b = parse_or();
      if (skip_name("else")) {
        Nest nest(*this);
        e->c = parse_condexpr();
      }
      e->a = std::move(expr1);
      expr1 = fin(std::move(e));
      line = cur().line;
    }
    return expr1;
  }

  ExprP binary(EK k, ExprP l, ExprP r, int line, std::string op = {}) {
    auto e = make(k, line);
    e->a = std::move(l);
    e->b = std::move(r);
    e->name = std::move(op);
    return fin(std::move(e));
  }

  ExprP parse_or() {
    int line = cur().line;
    ExprP left = parse_and();
    while (skip_name("or")) left = binary(EK::Or, std::move(left), parse_and(), line);
    return left;
  }
  ExprP parse_and() {
    int line = cur().line;
    ExprP left = parse_not();
    while (skip_name("and")) left = binary(EK::And, std::move(left), parse_not(), line);
    return left;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      Nest nest(*this);
      int line = next().line;
      auto e = make(EK::Not, line);
      e->a = parse_not();
      return fin(std::move(e));
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    int line = cur().line;
    ExprP expr = parse_math1();
    auto e = make(EK::Compare, line);
    for (;;) {
      if (cur().type == Tok::Op &&
          (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        e->ops.push_back(next().text);
      } else if (skip_name("in")) {
        e->ops.push_back("in");
      } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
        next();
        next();
        e->ops.push_back("notin");
      } else {
        break;
      }
      e->args.push_back(parse_math1());
    }
    if (e->ops.empty()) return expr;
    e->a = std::move(expr);
    return fin(std::move(e));
  }
  ExprP parse_math1() {
    int line = cur().line;
    ExprP left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      left = binary(EK::Binary, std::move(left), parse_concat(), line, op);
      line = cur().line;
    }
    return left;
  }
  ExprP parse_concat() {
    int line = cur().line;
    ExprP first = parse_math2();
    if (!is_op("~")) return first;
    auto e = make(EK::Concat, line);
    e->args.push_back(std::move(first));
    while (skip_op("~")) e->args.push_back(parse_math2());
    return fin(std::move(e));
  }
  ExprP parse_math2() {
    int line = cur().line;
    ExprP left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      left = binary(EK::Binary, std::move(left), parse_pow(), line, op);
      line = cur().line;
    }
    return left;
  }
  ExprP parse_pow() {
    int line = cur().line;
    ExprP left = parse_unary(true);
    while (skip_op("**")) {
      left = binary(EK::Binary, std::move(left), parse_unary(true), line, "**");
      line = cur().line;
    }
    return left;
  }
  ExprP parse_unary(bool with_filter) {
    int line = cur().line;
    ExprP node;
    if (is_op("-") || is_op("+")) {
      Nest nest(*this);
      bool neg = next().text == "-";
      node = make(neg ? EK::Neg : EK::Pos, line);
      node->a = parse_unary(false);
      node = fin(std::move(node));
    } else {
      node = parse_primary(false);
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprP parse_primary(bool with_namespace) {
    const Token& t = cur();
    int line = t.line;
    if (t.type == Tok::Name) {
      std::string n = next().text;
      auto e = make(EK::Const, line);
      if (n == "true" || n == "True" || n == "false" || n == "False") {
        e->value = Value::boolean(n == "true" || n == "True");
      } else if (n == "none" || n == "None") {
        e->value = Value::none();
      } else if (with_namespace && is_op(".")) {
        next();
        e->kind = EK::NSRef;
        e->name = n;
        e->ops.push_back(expect_name());
      } else {
        e->kind = EK::Name;
        e->name = n;
      }
      return e;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) s += next().text;
      auto e = make(EK::Const, line);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      auto e = make(EK::Const, line);
      e->value = t.type == Tok::Int ? Value::integer(t.ival) : Value::number(t.fval);
      next();
      return e;
    }
    if (is_op("(")) {
      next();
      ExprP e = parse_tuple(false, true, {}, true, false);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      auto e = make(EK::List, line);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return fin(std::move(e));
    }
    if (is_op("{")) {
      next();
      auto e = make(EK::Dict, line);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      expect_op("}");
      return fin(std::move(e));
    }
    error(line, "unexpected '" + describe(t) + "'");
  }

  ExprP parse_postfix(ExprP node) {
    for (;;) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }
  ExprP parse_filter_expr(ExprP node) {
    for (;;) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprP parse_subscript(ExprP node) {
    const Token& t = next();
    int line = t.line;
    if (t.text == ".") {
      const Token& attr = next();
      if (attr.type == Tok::Name) {
        auto e = make(EK::Getattr, line);
        e->a = std::move(node);
        e->name = attr.text;
        return fin(std::move(e));
      }
      if (attr.type != Tok::Int) error(attr.line, "expected name or number");
      auto e = make(EK::Getitem, line);
      e->a = std::move(node);
      e->b = make(EK::Const, line);
      e->b->value = Value::integer(attr.ival);
      return fin(std::move(e));
    }
    std::vector<ExprP> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = make(EK::Getitem, line);
    e->a = std::move(node);
    if (args.size() == 1) {
      e->b = std::move(args[0]);
    } else {
      e->b = make(EK::Tuple, line);
      e->b->args = std::move(args);
      e->b = fin(std::move(e->b));
    }
    return fin(std::move(e));
  }

  ExprP parse_subscribed() {
    int line = cur().line;
    std::vector<ExprP> args;
    if (is_op(":")) {
      next();
      args.push_back(nullptr);
    } else {
      ExprP node = parse_expression(true);
      if (!is_op(":")) return node;
      next();
      args.push_back(std::move(node));
    }
    if (is_op(":") || is_op("]") || is_op(",")) {
      args.push_back(nullptr);
    } else {
      args.push_back(parse_expression(true));
    }
    if (skip_op(":")) {
      args.push_back((is_op("]") || is_op(",")) ? nullptr : parse_expression(true));
    } else {
      args.push_back(nullptr);
    }
    auto e = make(EK::Slice, line);
    e->args = std::move(args);
    return fin(std::move(e));
  }

  void parse_call_args(Expr& e) {
    int line = cur().line;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) error(line, "*args / **kwargs in calls are not supported");
      if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error(line, "invalid syntax for function call expression");
        e.args.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprP parse_call(ExprP node) {
    auto e = make(EK::Call, cur().line);
    e->a = std::move(node);
    parse_call_args(*e);
    return fin(std::move(e));
  }

  ExprP parse_filter(ExprP node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      int line = cur().line;
      std::string name = expect_name();
      while (skip_op(".")) name.append(".").append(expect_name());
      if (!filter_exists(name)) error(line, fmt::format("no filter named '{}'", name));
      auto e = make(EK::Filter, line);
      e->a = std::move(node);
      e->name = name;
      if (is_op("(")) parse_call_args(*e);
      node = fin(std::move(e));
      start_inline = false;
    }
    return node;
  }

  ExprP parse_test(ExprP node) {
    int line = next().line;
    bool negated = skip_name("not");
    std::string name = expect_name();
    while (skip_op(".")) name.append(".").append(expect_name());
    if (!test_exists(name)) error(line, fmt::format("no test named '{}'", name));
    auto e = make(EK::Test, line);
    e->a = std::move(node);
    e->name = name;
    Tok t = cur().type;
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((t == Tok::Name || t == Tok::String || t == Tok::Int || t == Tok::Float || is_op("[") ||
                is_op("{")) &&
               !test_any({"else", "or", "and"})) {
      if (is_name("is")) error(cur().line, "You cannot chain multiple tests with is");
      e->args.push_back(parse_postfix(parse_primary(false)));
    }
    if (!negated) return fin(std::move(e));
    auto n = make(EK::Not, line);
    n->a = fin(std::move(e));
    return fin(std::move(n));
  }
};

}  // namespace

Body parse_template(std::string_view source, const LexOptions& opt) {
  Parser ps;
  ps.toks = lex(source, opt);
  return ps.subparse({}, true);
}

}  // namespace tqlm::jinja
