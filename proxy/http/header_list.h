#pragma once

// HeaderList: the header fields of one request or response head (or its trailers), names in
// lower case, in arrival order, duplicates kept. Entries are reused across clear() so a
// keep-alive connection stops allocating once its buffers have grown. Thread: the owner's.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace palisade::proxy::http {

struct Header {
  std::string name;  // lower case
  std::string value;
};

class HeaderList {
 public:
  // Drops the fields but keeps their storage for reuse.
  void clear() { size_ = 0; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const Header& operator[](std::size_t i) const { return entries_[i]; }
  Header& operator[](std::size_t i) { return entries_[i]; }
  const Header* begin() const { return entries_.data(); }
  const Header* end() const { return entries_.data() + size_; }

  // Appends a field; `name` is lower-cased.
  void add(std::string_view name, std::string_view value);
  // Appends an empty field whose name and value the caller fills piece by piece (http-parser
  // delivers them in fragments).
  Header& addEmpty();
  // The first value of `name` (lower case), or nullptr.
  const std::string* find(std::string_view name) const;
  // Removes every field named `name` (lower case); keeps the order of the others.
  void remove(std::string_view name);
  // Total bytes of names and values.
  std::size_t byteSize() const;

 private:
  std::vector<Header> entries_;
  std::size_t size_ = 0;
};

// ASCII lower-casing in place.
void toLower(std::string& s);
bool equalsLower(std::string_view s, std::string_view lower);
// Whether `list` (a comma-separated token list such as a Connection value) holds `token`,
// case-insensitively.
bool hasToken(std::string_view list, std::string_view token);

}  // namespace palisade::proxy::http
