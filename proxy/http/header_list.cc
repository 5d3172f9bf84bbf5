#include "proxy/http/header_list.h"

namespace palisade::proxy::http {

namespace {

char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

void HeaderList::add(std::string_view name, std::string_view value) {
  Header& h = addEmpty();
  h.name.assign(name);
  toLower(h.name);
  h.value.assign(value);
}

Header& HeaderList::addEmpty() {
  if (size_ == entries_.size()) {
    entries_.emplace_back();
  }
  Header& h = entries_[size_++];
  h.name.clear();
  h.value.clear();
  return h;
}

const std::string* HeaderList::find(std::string_view name) const {
  for (std::size_t i = 0; i < size_; ++i) {
    if (entries_[i].name == name) {
      return &entries_[i].value;
    }
  }
  return nullptr;
}

void HeaderList::remove(std::string_view name) {
  std::size_t out = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    if (entries_[i].name == name) {
      continue;
    }
    if (out != i) {
      std::swap(entries_[out], entries_[i]);
    }
    ++out;
  }
  size_ = out;
}

std::size_t HeaderList::byteSize() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    n += entries_[i].name.size() + entries_[i].value.size();
  }
  return n;
}

void toLower(std::string& s) {
  for (char& c : s) {
    c = lowerChar(c);
  }
}

bool equalsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (lowerChar(s[i]) != lower[i]) {
      return false;
    }
  }
  return true;
}

bool hasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = trimOws(list.substr(0, comma));
    if (equalsLower(item, token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace palisade::proxy::http
