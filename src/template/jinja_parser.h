// Jinja parser: tokens -> statement tree, following jinja2/parser.py precedence and statement grammar.
#pragma once

#include <string_view>

#include "template/jinja_ast.h"
#include "template/jinja_lexer.h"

namespace tqlm::jinja {

// Throws tqlm::Error "template syntax error (line N): ..." naming the offending token.
Body parse_template(std::string_view source, const LexOptions& opt = {});

// Names the interpreter implements; the parser rejects unknown filters/tests as jinja2 does at compile time.
bool filter_exists(std::string_view name);
bool test_exists(std::string_view name);

}  // namespace tqlm::jinja
