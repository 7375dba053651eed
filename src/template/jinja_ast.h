// Jinja syntax tree: expression and statement nodes produced by the parser, walked by the interpreter.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/jinja_value.h"

namespace tqlm::jinja {

struct Expr;
struct Stmt;
using ExprP = std::unique_ptr<Expr>;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

enum class EK {
  Const,     // value
  Name,      // name
  NSRef,     // name.attr as an assignment target
  List,      // args
  Tuple,     // args
  Dict,      // args = k0, v0, k1, v1, ...
  Getattr,   // a . name
  Getitem,   // a [ b ]
  Slice,     // args = start, stop, step (null when omitted)
  Call,      // a ( args, kwargs )
  Filter,    // a | name ( args, kwargs ); a null inside filter blocks
  Test,      // a is name ( args, kwargs )
  Neg,       // - a
  Pos,       // + a
  Not,       // not a
  Binary,    // a op b: + - * / // % **
  Concat,    // args joined with ~
  Compare,   // a, then ops[k] against args[k]
  And,       // a and b
  Or,        // a or b
  CondExpr,  // a if b else c (c may be null)
};

struct Expr {
  EK kind;
  int line = 0;
  int depth = 1;  // 1 + the deepest child's depth (bounded by kMaxNesting at parse time)
  Value value;
  std::string name;
  ExprP a, b, c;
  std::vector<ExprP> args;
  std::vector<std::pair<std::string, ExprP>> kwargs;
  std::vector<std::string> ops;
};

enum class SK {
  Output,
  Print,
  If,
  For,
  Set,
  SetBlock,
  Macro,
  CallBlock,
  FilterBlock,
  Break,
  Continue,
  Scope
};

struct Stmt {
  SK kind;
  int line = 0;
  std::string text;  // Output: literal data; Macro: name
  ExprP expr;        // Print / If test / For iterable / Set value / CallBlock call / FilterBlock filter
  ExprP target;      // For / Set / SetBlock target
  ExprP cond;        // For: inline `if` filter; SetBlock: optional filter (a Filter node)
  bool recursive = false;
  std::vector<std::string> params;  // Macro / CallBlock parameters
  std::vector<ExprP> defaults;      // defaults for the last params
  Body body, else_body;
};

}  // namespace tqlm::jinja
