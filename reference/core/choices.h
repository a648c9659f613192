// One way to name, parse and refuse a choice among words: a command-line option (--rope-scaling,
// --attention), an environment variable (ZIMAGE_ATTENTION), a config key. Every refusal reads
//   <what> must be <a>, <b> or <c>, not '<s>'
// where <what> names the option or variable the user wrote, so one table serves the CLI and the
// environment with the right name in each message.
#pragma once
#include <array>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/error.h"

namespace zimage {

// One accepted word and the value it stands for.
template <class E>
struct Choice {
  E value;
  std::string_view name;
};

template <class E, std::size_t N>
using ChoiceTable = std::array<Choice<E>, N>;

// "a", "a or b", "a, b or c": the words in the order given.
template <class Names>
std::string choices_text(const Names& names) {
  std::string out;
  std::size_t i = 0;
  const std::size_t n = std::size(names);
  for (const auto& name : names) {
    if (i > 0) out += i + 1 == n ? " or " : ", ";
    out += std::string(name);
    ++i;
  }
  return out;
}

inline std::string choices_text(std::initializer_list<std::string_view> names) {
  return choices_text<std::initializer_list<std::string_view>>(names);
}

// The refusal's one line: "<what> must be a, b or c, not '<s>'".
inline std::string choice_refusal(const std::string& what, const std::string& choices, std::string_view s) {
  return what + " must be " + choices + ", not '" + std::string(s) + "'";
}

// Throws the refusal unless s is one of names.
inline void require_choice(std::string_view s, std::initializer_list<std::string_view> names,
                           const std::string& what) {
  for (std::string_view name : names)
    if (s == name) return;
  throw Error(choice_refusal(what, choices_text(names), s));
}

template <class E, std::size_t N>
std::array<std::string_view, N> choice_names(const ChoiceTable<E, N>& table) {
  std::array<std::string_view, N> names;
  for (std::size_t i = 0; i < N; ++i) names[i] = table[i].name;
  return names;
}

// The value s names in the table; the refusal naming `what` when it names none.
template <class E, std::size_t N>
E parse_choice(const ChoiceTable<E, N>& table, std::string_view s, const std::string& what) {
  for (const Choice<E>& c : table)
    if (s == c.name) return c.value;
  throw Error(choice_refusal(what, choices_text(choice_names(table)), s));
}

// v's word in the table, or "?" for a value the table does not hold.
template <class E, std::size_t N>
const char* choice_name(const ChoiceTable<E, N>& table, E v) {
  for (const Choice<E>& c : table)
    if (c.value == v) return c.name.data();  // every name is a string literal: NUL-terminated
  return "?";
}

// The environment variable `var` parsed with the table (the refusal names the variable), or
// `unset` when it is unset or empty.
template <class E, std::size_t N>
E choice_from_env(const ChoiceTable<E, N>& table, const char* var, E unset) {
  const char* env = std::getenv(var);
  return env && *env ? parse_choice(table, env, var) : unset;
}

}  // namespace zimage
