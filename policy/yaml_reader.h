#pragma once

// YamlReader: the walk over one YAML file's nodes that every manifest loader shares. It turns
// yaml-cpp marks into file:line:col, refuses unknown and duplicate fields, type-checks
// scalars, lists and maps, bounds the work one file may cause (aliases included), and reads
// the parts every Kubernetes-style manifest has (metadata, a workload selector). Diagnostics
// go to the LoadResult. Thread: one reader per file, on one thread.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "policy/loader.h"
#include "policy/model.h"

namespace palisade::policy {

class YamlReader {
 public:
  YamlReader(const std::string& file, LoadResult& out) : file_(file), out_(out) {}

  const std::string& file() const { return file_; }
  LoadResult& out() { return out_; }
  bool budgetExceeded() const { return budget_exceeded_; }
  // The line of the current document's first line in the file (0-based): marks of nodes
  // parsed from that document alone are shifted by it.
  void setLineOffset(int line) { line_offset_ = line; }

  // Parses one YAML document whose first line is line `first_line` (0-based) of the file;
  // a syntax error becomes a diagnostic with its place, and nullopt.
  std::optional<YAML::Node> parse(std::string_view text, int first_line = 0) {
    setLineOffset(first_line);
    try {
      return YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      error(Mark{file_, e.mark.line >= 0 ? e.mark.line + 1 + first_line : 0,
                 e.mark.column >= 0 ? e.mark.column + 1 : 0},
            "yaml: " + e.msg);
      return std::nullopt;
    }
  }

  Mark mark(const YAML::Node& node) const {
    YAML::Mark m = node.Mark();
    return Mark{file_, m.line >= 0 ? m.line + 1 + line_offset_ : 0,
                m.column >= 0 ? m.column + 1 : 0};
  }

  void error(const Mark& m, std::string message) {
    if (budget_exceeded_) {
      return;  // what follows the refusal is a partial walk; its errors would mislead
    }
    out_.diagnostics.push_back(Diagnostic{Diagnostic::Severity::kError, m, std::move(message)});
  }
  void warning(const Mark& m, std::string message) {
    out_.diagnostics.push_back(Diagnostic{Diagnostic::Severity::kWarning, m, std::move(message)});
  }

  bool spend() {
    if (++values_ > kMaxValuesPerFile) {
      if (!budget_exceeded_) {
        error(Mark{file_, 0, 0}, "more than " + std::to_string(kMaxValuesPerFile) +
                                     " values in one file (aliases included); refusing it");
        budget_exceeded_ = true;
      }
      return false;
    }
    return true;
  }

  // Iterates a mapping, checking each key against `allowed` and refusing duplicates.
  // `fn(key, value)` is called for known keys.
  template <typename Fn>
  void forEachField(const YAML::Node& map, const std::string& where,
                    std::initializer_list<std::string_view> allowed, Fn fn) {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!spend()) {
        return;
      }
      // Copies, not references: yaml-cpp's iterator hands out a temporary proxy, and a
      // reference into it dangles at the end of the statement.
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      if (!k.IsScalar()) {
        error(mark(k), "expected a field name in " + where);
        continue;
      }
      const std::string key = k.Scalar();
      if (!seen.insert(key).second) {
        error(mark(k), "duplicate field \"" + key + "\" in " + where);
        continue;
      }
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(mark(k), "unknown field \"" + key + "\" in " + where);
        continue;
      }
      fn(key, v, mark(k));
    }
  }

  bool expectMap(const YAML::Node& node, const Mark& at, const std::string& where) {
    if (node.IsMap()) {
      return true;
    }
    error(node.IsNull() ? at : mark(node), where + " must be a mapping");
    return false;
  }

  std::optional<std::string> scalar(const YAML::Node& node, const Mark& at,
                                    const std::string& where) {
    if (!node.IsScalar()) {
      error(node.IsNull() ? at : mark(node), where + " must be a string");
      return std::nullopt;
    }
    return node.Scalar();
  }

  // A list of non-empty strings ("empty value not allowed", as Istio's CheckEmptyValues).
  Values stringList(const YAML::Node& node, const Mark& at, const std::string& where) {
    Values out;
    if (node.IsNull()) {
      return out;
    }
    if (!node.IsSequence()) {
      error(mark(node), where + " must be a list of strings");
      return out;
    }
    for (const YAML::Node& item : node) {
      if (!spend()) {
        return out;
      }
      if (!item.IsScalar()) {
        error(item.IsNull() ? at : mark(item), where + " must be a list of strings");
        continue;
      }
      if (item.Scalar().empty()) {
        error(mark(item), "empty value not allowed in " + where);
        continue;
      }
      out.push_back(Value{item.Scalar(), mark(item)});
    }
    return out;
  }

  std::map<std::string, std::string> stringMap(const YAML::Node& node, const Mark& at,
                                               const std::string& where) {
    std::map<std::string, std::string> out;
    if (node.IsNull()) {
      return out;
    }
    if (!expectMap(node, at, where)) {
      return out;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!spend()) {
        return out;
      }
      const YAML::Node k = it->first;
      const YAML::Node v = it->second;
      if (!k.IsScalar() || !v.IsScalar()) {
        error(mark(k), where + " must map strings to strings");
        continue;
      }
      if (!out.emplace(k.Scalar(), v.Scalar()).second) {
        error(mark(k), "duplicate key \"" + k.Scalar() + "\" in " + where);
      }
    }
    return out;
  }

  ObjectMeta metadata(const YAML::Node& node, const Mark& at, const std::string& kind) {
    ObjectMeta meta;
    meta.mark = at;
    if (!node || node.IsNull()) {
      error(at, kind + " has no metadata");
      return meta;
    }
    if (!expectMap(node, at, "metadata")) {
      return meta;
    }
    meta.mark = mark(node);
    bool has_name = false;
    // Fields Kubernetes writes into objects (kubectl get -o yaml) are accepted so that
    // exported policies load unchanged; they carry nothing for authorization.
    forEachField(
        node, "metadata",
        {"name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
         "creationTimestamp", "managedFields", "finalizers", "ownerReferences", "generateName",
         "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"},
        [&](const std::string& key, const YAML::Node& v, const Mark& key_at) {
          if (key == "name") {
            if (auto s = scalar(v, key_at, "metadata.name")) {
              meta.name = *s;
              has_name = !s->empty();
            }
          } else if (key == "namespace") {
            if (auto s = scalar(v, key_at, "metadata.namespace")) {
              meta.ns = *s;
            }
          } else if (key == "creationTimestamp") {
            if (v.IsScalar()) {
              meta.creation_timestamp = v.Scalar();
            }
          } else if (key == "annotations") {
            meta.annotations = stringMap(v, key_at, "metadata.annotations");
          } else if (key == "labels") {
            stringMap(v, key_at, "metadata.labels");
          }
        });
    if (!has_name) {
      error(meta.mark, "metadata.name is required");
    }
    if (meta.ns.empty()) {
      meta.ns = "default";
    }
    return meta;
  }

  std::optional<WorkloadSelector> selector(const YAML::Node& node, const Mark& at) {
    WorkloadSelector sel;
    sel.mark = at;
    if (node.IsNull()) {
      warning(at, "workload selector specified without labels: it selects every workload");
      return sel;
    }
    if (!expectMap(node, at, "spec.selector")) {
      return std::nullopt;
    }
    forEachField(
        node, "spec.selector", {"matchLabels"},
        [&](const std::string&, const YAML::Node& v, const Mark& key_at) {
          sel.match_labels = stringMap(v, key_at, "spec.selector.matchLabels");
          for (const auto& [k, val] : sel.match_labels) {
            if (k.empty()) {
              error(key_at, "empty key is not supported in selector: \"" + k + "=" + val + "\"");
            }
            if (k.find('*') != std::string::npos || val.find('*') != std::string::npos) {
              error(key_at, "wildcard is not supported in selector: \"" + k + "=" + val + "\"");
            }
          }
        });
    if (sel.match_labels.empty()) {
      warning(at, "workload selector specified without labels: it selects every workload");
    }
    return sel;
  }

 protected:
  const std::string& file_;
  LoadResult& out_;
  std::size_t values_ = 0;
  bool budget_exceeded_ = false;
  int line_offset_ = 0;
};

}  // namespace palisade::policy
