// Jinja2 template engine for chat templates: the subset HF chat templates use, rendering byte-identical to
// jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
// with transformers' globals (raise_exception, strftime_now) and `tojson` filter.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

#include "template/jinja_ast.h"
#include "template/jinja_lexer.h"

namespace tqlm::jinja {

class Template {
 public:
  // Parses `source`; throws tqlm::Error "template syntax error (line N): ..." on bad syntax.
  explicit Template(std::string_view source, const LexOptions& opt = {});
  Template(const Template&) = delete;
  Template& operator=(const Template&) = delete;
  Template(Template&&) = default;
  Template& operator=(Template&&) = default;

  // `context` must be a Dict value; its entries become template variables. Throws tqlm::Error:
  // "template error (line N): ..." for runtime errors, or the raise_exception() message verbatim (see
  // raised_by_template()).
  std::string render(const Value& context) const;

 private:
  Body body_;
};

// Error thrown when the template itself called raise_exception(msg); what() is msg.
struct TemplateRaised : Error {
  using Error::Error;
};

}  // namespace tqlm::jinja
