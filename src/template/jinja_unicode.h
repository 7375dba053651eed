// Code-point helpers for the Jinja interpreter: Python str semantics over UTF-8 std::string.
// Python strings are sequences of code points; these helpers decode/encode UTF-8 and classify code points the
// way CPython's str methods do (whitespace, line breaks, simple case mapping for the common scripts).
#pragma once

#include <string>
#include <string_view>

namespace tqlm::jinja {

// Decodes UTF-8; an invalid byte b becomes U+DC00+b (Python's surrogateescape) so encode() round-trips it.
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
// Python's escape of a code point: \xNN below 0x100, \uNNNN below 0x10000, else \UNNNNNNNN.
void py_escape_append(std::string& out, char32_t c);
bool is_ascii(std::string_view s);
size_t codepoint_count(std::string_view s);

bool py_isspace(char32_t c);      // str.isspace / str.split() / str.strip() whitespace
bool py_islinebreak(char32_t c);  // str.splitlines() boundaries (\r\n handled by the caller)
bool py_isdigit(char32_t c);
bool py_isalpha(char32_t c);
bool py_iscased(char32_t c);
bool py_isupper(char32_t c);
bool py_islower(char32_t c);
char32_t py_upper(char32_t c);
char32_t py_lower(char32_t c);
char32_t py_title(char32_t c);  // titlecase mapping (digraphs have their own)

std::string str_upper(std::string_view s);
std::string str_lower(std::string_view s);
std::string str_title(std::string_view s);       // Python str.title()
std::string str_capitalize(std::string_view s);  // Python str.capitalize()
std::string str_swapcase(std::string_view s);

// strip/lstrip/rstrip: chars == nullptr means Python's default (whitespace).
std::string str_strip(std::string_view s, const std::string* chars, bool left, bool right);

}  // namespace tqlm::jinja
